package conformance

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"decimail/internal/dovecot"
)

// DovecotBinary is where Debian's dovecot-core installs the server.
const DovecotBinary = dovecot.Binary

// dovecotUsers is the number of accounts in the passwd-file; every Reset
// uses the next one, so one run can reset at most this many times.
const dovecotUsers = 5000

// Dovecot is a private Dovecot instance on a free loopback port, configured
// like the one used for the client transcripts (shared/transcripts/server)
// but with a fresh maildir per account and no auto-created mailboxes.
type Dovecot struct {
	srv  *dovecot.Server
	next atomic.Int64
}

// dovecotOptions: accounts u1..u5000 with password "pass", the special-use
// mailboxes declared (not created), Dovecot's default mail_fsync and limits.
func dovecotOptions() dovecot.Options {
	accounts := make([]dovecot.Account, dovecotUsers)
	for i := range accounts {
		accounts[i] = dovecot.Account{User: fmt.Sprintf("u%d", i+1), Pass: "pass"}
	}
	return dovecot.Options{
		Name:                 "decimail-conformance",
		Accounts:             accounts,
		Greeting:             "Dovecot ready.",
		SpecialUse:           true,
		MaxUserIPConnections: 1000,
		Compress:             true, // COMPRESS=DEFLATE (extensions/compress)
		StartTimeout:         10 * time.Second,
	}
}

// StartDovecot starts a private Dovecot and stops it when t ends.
func StartDovecot(t testing.TB) *Dovecot {
	t.Helper()
	if err := dovecot.Installed(); err != nil {
		t.Fatal(err)
	}
	srv, err := dovecot.Start(dovecotOptions())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return &Dovecot{srv: srv}
}

func (d *Dovecot) Name() string { return "dovecot" }

// Reset hands out the next unused account; its maildir does not exist yet.
func (d *Dovecot) Reset(t testing.TB) (string, string, string) {
	n := d.next.Add(1)
	if n > dovecotUsers {
		t.Fatalf("dovecot: all %d accounts used", dovecotUsers)
	}
	return d.srv.Addr, fmt.Sprintf("u%d", n), "pass"
}

// External is a server given by address with a single account; Reset empties
// the account over IMAP, so scenarios must not run in parallel against it.
type External struct {
	Addr, User, Pass string
}

func (e *External) Name() string { return "external" }

func (e *External) Reset(t testing.TB) (string, string, string) {
	CleanAccount(t, e.Addr, e.User, e.Pass)
	return e.Addr, e.User, e.Pass
}
