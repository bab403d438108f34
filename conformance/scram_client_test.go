package conformance

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"decimail/internal/testwait"
)

// TestRealClientSCRAM: mutt (Debian's 2.2, built with GNU SASL) logs in
// with AUTHENTICATE SCRAM-SHA-256 (RFC 7677) when that is the only
// authenticator it may use, checks the server's signature, and shows
// INBOX; with a wrong password it shows no message. Its debug log shows
// the mechanism on the wire, so a fallback to PLAIN or LOGIN would fail
// the test. GNU SASL sends an authzid equal to the user ("n,a=testuser,"),
// which the server accepts. (curl 7.88 in Debian 12 is built without a
// SASL library: "No known authentication mechanisms supported".)
func TestRealClientSCRAM(t *testing.T) {
	if err := MissingClients(); err != nil {
		t.Fatal(err)
	}
	env := startSeedServer(t)
	_, port, _ := strings.Cut(env.addr, ":")
	for _, tc := range []struct {
		pass string
		ok   bool
	}{{"pass", true}, {"wrong", false}} {
		t.Run(tc.pass, func(t *testing.T) {
			screen, debug := muttSCRAM(t, port, tc.pass, tc.ok)
			if !strings.Contains(debug, "AUTHENTICATE SCRAM-SHA-256") {
				t.Errorf("mutt did not send AUTHENTICATE SCRAM-SHA-256; its log:\n%s", outputTail([]byte(debug)))
			}
			if strings.Contains(debug, "AUTHENTICATE PLAIN") || strings.Contains(debug, " LOGIN ") {
				t.Errorf("mutt fell back to a password mechanism:\n%s", outputTail([]byte(debug)))
			}
			if got := strings.Contains(screen, "Lunch on Friday?"); got != tc.ok {
				t.Errorf("INBOX shown: %v, want %v; screen:\n%s", got, tc.ok, screen)
			}
			if !tc.ok && !strings.Contains(debug, "NO [AUTHENTICATIONFAILED]") {
				t.Errorf("no AUTHENTICATIONFAILED in mutt's log:\n%s", outputTail([]byte(debug)))
			}
		})
	}
}

// muttSCRAM runs mutt in a private tmux server with imap_authenticators
// set to SCRAM-SHA-256 only, waits for INBOX (ok) or for its login to
// fail, quits, and returns the last screen and mutt's debug log.
func muttSCRAM(t *testing.T, port, pass string, ok bool) (screen, debug string) {
	dir := t.TempDir()
	rc := filepath.Join(dir, "muttrc")
	conf := MuttRC("testuser", pass, "127.0.0.1:"+port) + "set imap_authenticators = \"scram-sha-256\"\n"
	if err := os.WriteFile(rc, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "tmux.sock")
	tmux := func(args ...string) string {
		cmd := exec.Command("tmux", append([]string{"-S", sock}, args...)...)
		cmd.Env = slices.DeleteFunc(os.Environ(), func(e string) bool { return strings.HasPrefix(e, "TMUX=") })
		cmd.Env = append(cmd.Env, "HOME="+dir, "TERM=xterm")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Logf("tmux %v: %v %s", args, err, out)
		}
		return string(out)
	}
	// -d 5: the IMAP conversation goes to $HOME/.muttdebug0.
	mutt := fmt.Sprintf("mutt -d 5 -n -F %s -f imap://testuser@127.0.0.1:%s/INBOX", rc, port)
	tmux("new-session", "-d", "-x", "132", "-y", "40", "env HOME="+dir+" TERM=xterm "+mutt)
	defer exec.Command("tmux", "-S", sock, "kill-server").Run()
	var panePid int
	if _, err := fmt.Sscan(tmux("display-message", "-p", "#{pane_pid}"), &panePid); err != nil {
		t.Fatalf("tmux pane_pid: %v", err)
	}
	proc, err := testwait.Pin(panePid)
	if err != nil {
		t.Fatal(err)
	}
	defer proc.Close()
	readDebug := func() string {
		b, _ := os.ReadFile(filepath.Join(dir, ".muttdebug0"))
		return string(b)
	}
	want := "Lunch on Friday?"
	testwait.For(t, 20*time.Second, "mutt to show INBOX or fail its login", func() (bool, string) {
		screen = tmux("capture-pane", "-p")
		if ok {
			return strings.Contains(screen, want), "\n" + screen
		}
		d := readDebug()
		return strings.Contains(d, "AUTHENTICATIONFAILED"), "\n" + screen + "\n" + outputTail([]byte(d))
	})
	time.Sleep(200 * time.Millisecond) // let a failed login's screen settle
	screen = tmux("capture-pane", "-p")
	tmux("kill-server")
	testwait.Exited(t, 20*time.Second, "mutt to end", proc)
	return screen, readDebug()
}
