package main

import (
	"context"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"decimail/server/pgrun"
	"decimail/server/store"
)

// `dkim generate` stores a key and prints the TXT record (split into
// strings of at most 255 octets) whose public key is the stored key's;
// `dkim show` prints the same; a bad domain is refused.
func TestDKIMCommands(t *testing.T) {
	ctx := context.Background()
	dsn := pgrun.TestDB(t)
	st, err := store.Open(ctx, dsn, store.Options{PasswordCost: bcrypt.MinCost})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	bin := binary(t)
	run := func(wantOK bool, args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "DECIMAIL_DATABASE_URL="+dsn, "DECIMAIL_SPOOL="+t.TempDir())
		out, err := cmd.CombinedOutput()
		if (err == nil) != wantOK {
			t.Fatalf("decimail %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	out := run(true, "dkim", "generate", "-selector", "s1", "Example.Test")
	m := regexp.MustCompile(`(?m)^s1\._domainkey\.example\.test\. IN TXT ((?:"[^"]{1,255}" ?)+)$`).FindStringSubmatch(out)
	if m == nil || !strings.Contains(out, "outgoing mail From @example.test is signed") {
		t.Fatalf("dkim generate:\n%s", out)
	}
	record := strings.ReplaceAll(strings.ReplaceAll(m[1], `" "`, ""), `"`, "")
	k, err := st.DKIMKey(ctx, "example.test")
	if err != nil {
		t.Fatal(err)
	}
	want, err := k.DNSRecord()
	if err != nil || strings.TrimSpace(record) != want {
		t.Fatalf("printed record %q, the stored key's %q (%v)", record, want, err)
	}
	if show := run(true, "dkim", "show"); !strings.Contains(show, m[0]) {
		t.Fatalf("dkim show:\n%s\nwant the line %s", show, m[0])
	}
	run(false, "dkim", "generate", "bad domain")
	run(false, "dkim", "show", "nokey.example")
}
