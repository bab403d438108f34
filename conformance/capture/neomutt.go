package main

// neomutt in a private tmux server (its own socket), keys sent with
// tmux send-keys as a person types them; the screen is read with
// capture-pane and kept in NAME.screens.

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"decimail/conformance"
)

func init() {
	needs["neomutt"] = []string{"neomutt", "tmux"}
	clientVersions["neomutt"] = func() (string, error) {
		out, err := exec.Command("neomutt", "-v").Output()
		if err != nil {
			return "", fmt.Errorf("neomutt -v: %w", err)
		}
		first, _, _ := strings.Cut(string(out), "\n")
		return strings.TrimSpace(first) + ", Debian package neomutt " + debVersion("neomutt"), nil
	}
	register(&scenario{client: "neomutt", name: "01-unread-delete", account: conformance.AccountSeedViews,
		text: "neomutt in tmux (132x40), -f imap://.../Unread, muttrc below; on the index: d (delete the first message), $ (sync: store \\Deleted, expunge), wait 3s quiet, q",
		run:  neomuttUnreadDelete})
}

// neomuttRC is conformance.MuttRC for the tap's port plus the answer to
// neomutt's question before appending.
func neomuttRC(addr string) string {
	return conformance.MuttRC(conformance.SeedUser, conformance.SeedPassword, addr) + "set confirmappend = no\n"
}

type tmuxSession struct {
	r    *runCtx
	sock string
	home string
	shot []string
}

func (s *tmuxSession) tmux(args ...string) (string, error) {
	cmd := exec.Command("tmux", append([]string{"-S", s.sock}, args...)...)
	// A private tmux server, also when the harness itself runs inside tmux.
	cmd.Env = slices.DeleteFunc(os.Environ(), func(e string) bool { return strings.HasPrefix(e, "TMUX=") })
	cmd.Env = append(cmd.Env, "HOME="+s.home, "TERM=xterm")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("tmux %v: %v %s", args, err, out)
	}
	return string(out), nil
}

func (s *tmuxSession) screen() string {
	out, _ := s.tmux("capture-pane", "-p")
	return out
}

// snap keeps the screen in NAME.screens.
func (s *tmuxSession) snap(what string) {
	s.shot = append(s.shot, fmt.Sprintf("==== %s (+%.1fs)\n%s", what, time.Since(s.r.tap.start).Seconds(), strings.TrimRight(s.screen(), "\n")))
	s.r.logf("screen %q", what)
}

func (s *tmuxSession) waitScreen(want string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if strings.Contains(s.screen(), want) {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("the screen did not show %q within %v:\n%s", want, d, s.screen())
}

func (s *tmuxSession) keys(keys ...string) error {
	s.r.logf("keys %q", keys)
	_, err := s.tmux(append([]string{"send-keys"}, keys...)...)
	return err
}

// settle waits until no IMAP line has passed for quiet, at most max.
func settle(r *runCtx, quiet, max time.Duration) {
	deadline := time.Now().Add(max)
	for time.Now().Before(deadline) && r.tap.Quiet() < quiet {
		time.Sleep(200 * time.Millisecond)
	}
	r.logf("quiet for %v", r.tap.Quiet().Round(time.Millisecond))
}

func neomuttUnreadDelete(ctx context.Context, r *runCtx) error {
	s := &tmuxSession{r: r, sock: filepath.Join(r.tmp, "tmux.sock"), home: r.tmp}
	rc := filepath.Join(r.tmp, "muttrc")
	if err := os.WriteFile(rc, []byte(neomuttRC(r.tap.Addr())), 0o600); err != nil {
		return err
	}
	defer func() {
		os.WriteFile(r.path(".screens"), []byte(strings.Join(s.shot, "\n")+"\n"), 0o644)
	}()
	host, port, _ := net.SplitHostPort(r.tap.Addr())
	cmd := fmt.Sprintf("env HOME=%s TERM=xterm neomutt -n -F %s -f 'imap://%s@%s:%s/Unread'", r.tmp, rc, conformance.SeedUser, host, port)
	r.logf("start %s", cmd)
	if _, err := s.tmux("new-session", "-d", "-x", "132", "-y", "40", cmd); err != nil {
		return err
	}
	defer exec.Command("tmux", "-S", s.sock, "kill-server").Run()
	// The index of Unread: its status line names the mailbox.
	if err := s.waitScreen("Unread", 20*time.Second); err != nil {
		return err
	}
	settle(r, 2*time.Second, 20*time.Second)
	s.snap("Unread opened")
	if err := s.keys("d"); err != nil {
		return err
	}
	time.Sleep(500 * time.Millisecond)
	s.snap("after d")
	if err := s.keys("$"); err != nil {
		return err
	}
	settle(r, 3*time.Second, 20*time.Second)
	s.snap("after $")
	if err := s.keys("q"); err != nil {
		return err
	}
	// quit=yes: neomutt exits, and with it the tmux session.
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if _, err := s.tmux("has-session"); err != nil {
			r.logf("neomutt quit")
			return nil
		}
	}
	s.snap("did not quit")
	return fmt.Errorf("neomutt did not quit within 20s of q")
}
