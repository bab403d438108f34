package main

// offlineimap (offlineimap3): a config file with a local Maildir and the
// tap as the remote, run once (-o), single-threaded (-1, so its
// connections follow one another and the replay's sequential order is the
// capture's), a Maildir file deleted by hand, run again.

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"decimail/conformance"
)

func init() {
	needs["offlineimap"] = []string{"offlineimap"}
	clientVersions["offlineimap"] = func() (string, error) {
		out, err := exec.Command("offlineimap", "--version").CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("offlineimap --version: %w %s", err, out)
		}
		return "offlineimap " + strings.TrimSpace(string(out)) + ", Debian package offlineimap3 " + debVersion("offlineimap3"), nil
	}
	register(&scenario{client: "offlineimap", name: "01-unread-local-delete", account: conformance.AccountSeedViews,
		text: "offlineimap -o -1 -u basic, folders INBOX, Unread, Trash into a Maildir; then rm of the Maildir file of <lunch-0002@example.test> (INBOX 2, Unread 1) in Unread (new/); offlineimap -o -1 again (syncs the local delete: \\Deleted + EXPUNGE in Unread), and a third time (brings the server's result into INBOX and Trash)",
		run:  offlineimapUnreadDelete})
}

const offlineimapRC = `[general]
accounts = decimail
metadata = %[1]s/meta
ui = basic

[Account decimail]
localrepository = local
remoterepository = remote

[Repository local]
type = Maildir
localfolders = %[1]s/Maildir

[Repository remote]
type = IMAP
remotehost = %[2]s
remoteport = %[3]s
remoteuser = %[4]s
remotepass = %[5]s
ssl = no
starttls = no
createfolders = False
folderfilter = lambda f: f in ['INBOX', 'Unread', 'Trash']
`

func offlineimapUnreadDelete(ctx context.Context, r *runCtx) error {
	host, port, _ := net.SplitHostPort(r.tap.Addr())
	rc := filepath.Join(r.tmp, "offlineimaprc")
	conf := fmt.Sprintf(offlineimapRC, r.tmp, host, port, conformance.SeedUser, conformance.SeedPassword)
	if err := os.WriteFile(rc, []byte(conf), 0o600); err != nil {
		return err
	}
	run := func(n int) error {
		r.logf("run %d: offlineimap -c offlineimaprc -o -1", n)
		cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(cctx, "offlineimap", "-c", rc, "-o", "-1")
		cmd.Env = append(os.Environ(), "HOME="+r.tmp)
		out, err := cmd.CombinedOutput()
		os.WriteFile(filepath.Join(r.tmp, fmt.Sprintf("offlineimap-run%d.log", n)), out, 0o644)
		r.logf("run %d: exit %v; last lines:\n%s", n, err, tail(out, 8))
		if err != nil {
			return fmt.Errorf("offlineimap run %d: %w", n, err)
		}
		return nil
	}
	if err := run(1); err != nil {
		return err
	}
	md, err := conformance.ReadMaildirs(filepath.Join(r.tmp, "Maildir"))
	if err != nil {
		return err
	}
	for name, msgs := range md {
		r.logf("after run 1: Maildir %s: %d messages", name, len(msgs))
	}
	const target = "<lunch-0002@example.test>"
	var victim string
	for _, m := range md["Unread"] {
		if bytes.Contains(m.Data, []byte("Message-ID: "+target)) {
			victim = m.Path
		}
	}
	if victim == "" {
		return fmt.Errorf("no file of %s in Maildir Unread after run 1", target)
	}
	rel, _ := filepath.Rel(r.tmp, victim)
	r.logf("rm %s (%s)", rel, target)
	if err := os.Remove(victim); err != nil {
		return err
	}
	// Run 2 syncs the delete; run 3 brings what the server made of it
	// into the other local folders (run 2 synced INBOX before Unread).
	for n := 2; n <= 3; n++ {
		if err := run(n); err != nil {
			return err
		}
		md, err = conformance.ReadMaildirs(filepath.Join(r.tmp, "Maildir"))
		if err != nil {
			return err
		}
		for _, name := range []string{"INBOX", "Trash", "Unread"} {
			where := "not there"
			for _, m := range md[name] {
				if bytes.Contains(m.Data, []byte("Message-ID: "+target)) {
					where = "there, flags " + strconv.Quote(m.Flags)
				}
			}
			r.logf("after run %d: Maildir %s: %d messages; %s %s", n, name, len(md[name]), target, where)
		}
	}
	return nil
}

func tail(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "    " + strings.Join(lines, "\n    ")
}
