package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"

	"decimail/server/store"
)

// DKIM keys of the sending domains (issue 18): the relay signs outgoing
// mail whose From domain has one (smtpd/direct.go: sign).

func init() {
	var selector string
	register(&command{name: "dkim generate", args: "DOMAIN",
		help: "make (or replace) the DKIM signing key of DOMAIN and print the DNS TXT record to publish",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&selector, "selector", "decimail", "the DKIM selector (the record's name is SELECTOR._domainkey.DOMAIN)")
		},
		run: withStore(func(ctx context.Context, s *store.Store, args []string) error {
			if err := needArgs(args, 1, "DOMAIN"); err != nil {
				return err
			}
			k, err := s.GenerateDKIMKey(ctx, args[0], selector)
			if err != nil {
				return err
			}
			return printDKIM(k, true)
		})})
	register(&command{name: "dkim show", args: "[DOMAIN]", help: "print the DNS TXT record of DOMAIN's DKIM key (every domain's without DOMAIN)",
		run: withStore(func(ctx context.Context, s *store.Store, args []string) error {
			var keys []store.DKIMKey
			if len(args) == 1 {
				k, err := s.DKIMKey(ctx, args[0])
				if err != nil {
					return fmt.Errorf("dkim key of %s: %w", args[0], err)
				}
				keys = append(keys, k)
			} else if err := needArgs(args, 0, "[DOMAIN]"); err != nil {
				return err
			} else if keys, err = s.DKIMKeys(ctx); err != nil {
				return err
			}
			for _, k := range keys {
				if err := printDKIM(k, false); err != nil {
					return err
				}
			}
			return nil
		})})
}

func printDKIM(k store.DKIMKey, made bool) error {
	rec, err := k.DNSRecord()
	if err != nil {
		return err
	}
	if made {
		fmt.Fprintf(os.Stdout, "made a 2048-bit RSA key for %s (selector %s); outgoing mail From @%s is signed from now on.\nPublish:\n", k.Domain, k.Selector, k.Domain)
	}
	// A TXT string holds at most 255 octets (RFC 1035 §3.3.14): the record
	// is written as several, which DNS joins (RFC 6376 §3.6.2.2).
	var parts []string
	for len(rec) > 255 {
		parts, rec = append(parts, rec[:255]), rec[255:]
	}
	parts = append(parts, rec)
	fmt.Fprintf(os.Stdout, "%s. IN TXT \"%s\"\n", k.DNSName(), strings.Join(parts, "\" \""))
	return nil
}
