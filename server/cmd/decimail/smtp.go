package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"sync"

	"decimail/server/metrics"
	"decimail/server/smtpd"
	"decimail/server/store"
)

func init() {
	register(&command{name: "delete-daemon", help: "remove spool files of deleted messages (delete_log), per delete_retention",
		run: withStore(func(ctx context.Context, s *store.Store, _ []string) error {
			cfg, err := smtpd.LoadDeleteConfig(ctx, s, smtpd.DeleteConfig{})
			if err != nil {
				return err
			}
			return smtpd.NewDeleteDaemon(s, cfg, slog.Default().With("daemon", "delete")).Run(ctx)
		})})
	register(&command{name: "auto add", args: "USER ADDRESS TEMPLATE",
		help: "make ADDRESS (e.g. auto@example.com) rewrite outgoing mail per correspondent; TEMPLATE e.g. %s@example.com; replies to those addresses reach USER",
		run: withUser(func(ctx context.Context, s *store.Store, u store.User, args []string) error {
			if err := needArgs(args, 2, "USER ADDRESS TEMPLATE"); err != nil {
				return err
			}
			if err := s.AddAutoUser(ctx, args[0], u.Name, args[1]); err != nil {
				if errors.Is(err, store.ErrAddressTaken) {
					return fmt.Errorf("%s is an address of another user", args[0])
				}
				return err
			}
			addr, name := printable(strings.ToLower(strings.TrimSpace(args[0]))), printable(u.Name)
			fmt.Printf("%s: mail %s sends From this address goes out From an address made for each correspondent,\n"+
				"such as %s (template %s), the same one every time for the same correspondent.\n"+
				"Those addresses and %s itself are addresses of %s: replies to them are delivered to %s's INBOX.\n"+
				"`decimail address list` shows them once made; `decimail address del ADDRESS` refuses mail to one.\n",
				addr, name, printable(strings.Replace(args[1], "%s", exampleToken(), 1)), printable(args[1]), addr, name, name)
			return nil
		})})
}

// startSMTP starts the MX and submission listeners, the relay worker and the
// delete daemon; stop ends them.
func startSMTP(ctx context.Context, s *store.Store, lf listenFlags, tlsCfg *tls.Config,
	serve func(addr string, fn func(net.Listener) error, what string) error, m *metrics.Metrics) (stop func(), err error) {
	log := slog.Default()
	cfg, err := smtpd.LoadConfig(ctx, s, smtpd.Config{Hostname: lf.hostname, TLS: tlsCfg})
	if err != nil {
		return nil, err
	}
	srv := smtpd.New(cfg, s, log.With("daemon", "smtp"))
	if m != nil {
		m.WatchSMTP(srv)
	}
	if err := serve(lf.smtp, srv.ServeMX, "smtp"); err != nil {
		return nil, err
	}
	if err := serve(lf.submission, srv.ServeSubmission, "submission"); err != nil {
		return nil, err
	}
	rcfg, err := smtpd.LoadRelayConfig(ctx, s, smtpd.RelayConfig{Hostname: lf.hostname})
	if err != nil {
		return nil, err
	}
	dcfg, err := smtpd.LoadDeleteConfig(ctx, s, smtpd.DeleteConfig{})
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); smtpd.NewRelay(s, rcfg, log.With("daemon", "relay")).Run(wctx) }()
	go func() { defer wg.Done(); smtpd.NewDeleteDaemon(s, dcfg, log.With("daemon", "delete")).Run(wctx) }()
	return func() {
		srv.Close()
		cancel()
		wg.Wait()
	}, nil
}

// exampleToken is a token like the ones the submission server puts in a
// template's %s (smtpd.Rewrite): 8 lowercase letters and digits.
func exampleToken() string {
	const chars = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 8)
	for i := range b {
		b[i] = chars[rand.IntN(len(chars))]
	}
	return string(b)
}
