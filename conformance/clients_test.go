package conformance

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"decimail/fixtures"
	"decimail/internal/imaptest"
	"decimail/internal/testwait"
)

// TestRealClients drives the real clients of the transcripts (curl, mbsync,
// fetchmail, mutt; Debian packages that `make test-deps` installs) against
// our server with the seed account and checks what they got. Each client
// starts from a fresh seed. Outcomes are checked, not exit codes. A missing
// client fails the test; it never skips.
func TestRealClients(t *testing.T) {
	if err := MissingClients(); err != nil {
		t.Fatal(err)
	}
	env := startSeedServer(t)
	_, port, _ := strings.Cut(env.addr, ":")
	seed, err := fixtures.Seed()
	if err != nil {
		t.Fatal(err)
	}
	first := true
	run := func(name string, f func(t *testing.T)) {
		if !first {
			env.reset(t)
		}
		first = false
		t.Run(name, f)
	}
	run("curl", func(t *testing.T) { testCurl(t, env, port, seed) })
	run("mbsync", func(t *testing.T) { testMbsync(t, env, port, seed) })
	run("fetchmail", func(t *testing.T) { testFetchmail(t, env, port, seed) })
	run("mutt", func(t *testing.T) { testMutt(t, env, port) })
}

// runClient runs a client with a deadline and returns its combined output.
func runClient(t *testing.T, d time.Duration, dir string, env []string, name string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Errorf("%s %v: killed after %v\n%s", name, args, d, out)
	} else if err != nil {
		t.Logf("%s %v: %v (checking the outcome anyway)\n%s", name, args, err, outputTail(out))
	}
	return out
}

func seedFile(seed []fixtures.SeedMessage, folder string, uid int) []byte {
	for _, m := range seed {
		if m.Folder == folder && m.UID == uid {
			return m.Raw
		}
	}
	return nil
}

// dovecotFetch returns the literal Dovecot sent for item in the response to
// tag in a transcript.
func dovecotFetch(t *testing.T, file, tag, item string) []byte {
	t.Helper()
	tr := loadTranscript(t, file)
	for _, c := range tr.Cmds {
		if c.Tag != tag {
			continue
		}
		for _, f := range classify(c.Untagged, nil).fetch {
			if v, ok := f.items[item]; ok {
				return []byte(v.S)
			}
		}
	}
	t.Fatalf("%s: no %s in the response to %s", file, item, tag)
	return nil
}

func testCurl(t *testing.T, env *seedEnv, port string, seed []fixtures.SeedMessage) {
	base := "imap://testuser:pass@127.0.0.1:" + port
	curl := func(args ...string) []byte {
		return runClient(t, 30*time.Second, t.TempDir(), nil, "curl", append([]string{"-s", "--max-time", "20"}, args...)...)
	}
	t.Run("fetch-uid", func(t *testing.T) {
		got := curl(base + "/INBOX;UID=7")
		if want := seedFile(seed, "INBOX", 7); !bytes.Equal(got, want) {
			t.Errorf("INBOX;UID=7: got %d bytes %q, want the seed's 07-INBOX.eml (%d bytes)", len(got), abbrev(string(got), 200), len(want))
		}
	})
	t.Run("list", func(t *testing.T) {
		got := string(curl(base + "/"))
		var names []string
		for _, l := range strings.Split(strings.TrimSpace(got), "\n") {
			if i := strings.LastIndex(l, `"/" `); strings.HasPrefix(l, "* LIST ") && i > 0 {
				names = append(names, strings.Trim(strings.TrimSpace(l[i+4:]), `"`))
			}
		}
		sort.Strings(names)
		// Dovecot lists the same names (curl/01-list-top); its Lists is
		// \Noselect, ours a real folder (TRANSCRIPTS.md, list-parents).
		want := []string{"Archive", "Archive/2025", "Drafts", "INBOX", "Lists", "Lists/golang", "Sent", "Trash"}
		if !slices.Equal(names, want) {
			t.Errorf("LIST names %v, want %v; output:\n%s", names, want, got)
		}
	})
	t.Run("uid-search", func(t *testing.T) {
		got := strings.TrimSpace(string(curl(base+"/INBOX", "-X", "UID SEARCH SUBJECT offsite")))
		if want := "* SEARCH 3 4 5 6"; got != want { // curl/06-uid-search-X
			t.Errorf("UID SEARCH SUBJECT offsite: %q, want %q", got, want)
		}
	})
	t.Run("section", func(t *testing.T) {
		got := curl(base + "/INBOX/;UID=12/;SECTION=1")
		if want := dovecotFetch(t, "curl/04-fetch-uid-section-conn1.txt", "A004", "BODY[1]"); !bytes.Equal(got, want) {
			t.Errorf(";UID=12/;SECTION=1: got %q, Dovecot %q", abbrev(string(got), 200), abbrev(string(want), 200))
		}
	})
	t.Run("partial", func(t *testing.T) {
		got := curl(base + "/INBOX/;MAILINDEX=18/;SECTION=TEXT;PARTIAL=0.200")
		want := dovecotFetch(t, "curl/09-fetch-mailindex-partial-conn1.txt", "A004", "BODY[TEXT]<0>")
		if len(want) != 200 || !bytes.Equal(got, want) {
			t.Errorf(";MAILINDEX=18/;SECTION=TEXT;PARTIAL=0.200: got %d bytes %q, Dovecot %d bytes %q", len(got), abbrev(string(got), 100), len(want), abbrev(string(want), 100))
		}
	})
}

// seedFolders groups the seed by folder.
func seedFolders(seed []fixtures.SeedMessage) map[string][]fixtures.SeedMessage {
	out := map[string][]fixtures.SeedMessage{}
	for _, m := range seed {
		out[m.Folder] = append(out[m.Folder], m)
	}
	return out
}

func testMbsync(t *testing.T, env *seedEnv, port string, seed []fixtures.SeedMessage) {
	dir := t.TempDir()
	mail := filepath.Join(dir, "mail")
	rc := filepath.Join(dir, "mbsyncrc")
	// client-configs/mbsyncrc, pointed at our port and a temporary Maildir.
	conf := fmt.Sprintf(`IMAPAccount test
Host 127.0.0.1
Port %s
User testuser
Pass pass
SSLType None
AuthMechs LOGIN PLAIN

IMAPStore test-remote
Account test

MaildirStore test-local
Path %s/
Inbox %s/INBOX
SubFolders Verbatim

Channel test
Far :test-remote:
Near :test-local:
Patterns *
Create Near
SyncState *
`, port, mail, mail)
	if err := os.WriteFile(rc, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(mail, 0o700); err != nil {
		t.Fatal(err)
	}
	sync := func() {
		out := runClient(t, 60*time.Second, dir, []string{"HOME=" + dir}, "mbsync", "-c", rc, "test")
		t.Logf("mbsync: %s", outputTail(out))
	}
	want := seedFolders(seed)
	check := func(t *testing.T, extra []byte) {
		boxes, err := ReadMaildirs(mail)
		if err != nil {
			t.Fatal(err)
		}
		for folder, msgs := range want {
			local := boxes[folder]
			n := len(msgs)
			if folder == "INBOX" && extra != nil {
				n++
			}
			if len(local) != n {
				t.Errorf("%s: %d messages in the Maildir, want %d", folder, len(local), n)
			}
			byData := map[string][]MaildirMsg{}
			for _, m := range local {
				// mbsync writes Maildir files with LF line ends and adds an
				// X-TUID header (its transaction id) at the end of the
				// header; it did the same with Dovecot.
				data := xTUIDRe.ReplaceAll(m.Data, nil)
				byData[string(data)] = append(byData[string(data)], m)
			}
			for _, m := range msgs {
				got, ok := byData[string(ToLF(m.Raw))]
				if !ok {
					t.Errorf("%s: %s not in the Maildir byte-equal", folder, m.File)
					continue
				}
				if len(got) != 1 {
					t.Errorf("%s: %s %d times", folder, m.File, len(got))
				}
				if w := MaildirFlags(m.Flags); got[0].Flags != w {
					t.Errorf("%s: %s flags %q (from %s), want %q (manifest %v)", folder, m.File, got[0].Flags, filepath.Base(got[0].Path), w, m.Flags)
				}
			}
			if folder == "INBOX" && extra != nil {
				if got := byData[string(ToLF(extra))]; len(got) != 1 {
					t.Errorf("INBOX: the new message arrived %d times, want once", len(got))
				}
			}
		}
		for folder, msgs := range boxes {
			if _, ok := want[folder]; !ok && len(msgs) > 0 {
				t.Errorf("unexpected local folder %s with %d messages", folder, len(msgs))
			}
		}
	}
	sync()
	t.Run("full", func(t *testing.T) { check(t, nil) })
	extra := readExtra(t, "extra-mbsync-incremental.eml")
	env.deliver(t, "extra-mbsync-incremental.eml")
	sync()
	t.Run("incremental", func(t *testing.T) { check(t, extra) })
}

func testFetchmail(t *testing.T, env *seedEnv, port string, seed []fixtures.SeedMessage) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	if err := os.Mkdir(out, 0o700); err != nil {
		t.Fatal(err)
	}
	// client-configs/fetchmailrc with our port, fetchall (every INBOX
	// message, not only the unseen ones), invisible (no Received: line of
	// its own) and an mda that writes each message to its own file.
	rc := filepath.Join(dir, "fetchmailrc")
	conf := fmt.Sprintf(`set no syslog
poll 127.0.0.1 protocol IMAP port %s auth password
  user "testuser" there with password "pass" is "root" here
  keep
  fetchall
  sslproto ''
  mda "/bin/sh -c 'cat > $(mktemp %s/msg.XXXXXX)'"
`, port, out)
	if err := os.WriteFile(rc, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	o := runClient(t, 60*time.Second, dir, []string{"HOME=" + dir, "FETCHMAILHOME=" + dir}, "fetchmail",
		"-v", "--invisible", "-f", rc, "--pidfile", filepath.Join(dir, "pid"))
	ents, err := os.ReadDir(out)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(out, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		got[string(b)]++
	}
	inbox := seedFolders(seed)["INBOX"]
	if len(ents) != len(inbox) {
		t.Errorf("fetchmail delivered %d messages, INBOX has %d; fetchmail said:\n%s", len(ents), len(inbox), outputTail(o))
	}
	for _, m := range inbox {
		// fetchmail hands messages to the mda with LF line ends.
		if got[string(ToLF(m.Raw))] != 1 && got[string(m.Raw)] != 1 {
			t.Errorf("%s not received byte-equal (modulo CRLF->LF)", m.File)
		}
	}
}

func testMutt(t *testing.T, env *seedEnv, port string) {
	dir := t.TempDir()
	rc := filepath.Join(dir, "muttrc")
	conf := MuttRC("testuser", "pass", "127.0.0.1:"+port)
	if err := os.WriteFile(rc, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "tmux.sock")
	tmux := func(args ...string) string {
		cmd := exec.Command("tmux", append([]string{"-S", sock}, args...)...)
		// A private tmux server (own socket), also when the test itself
		// runs inside tmux.
		cmd.Env = slices.DeleteFunc(os.Environ(), func(e string) bool { return strings.HasPrefix(e, "TMUX=") })
		cmd.Env = append(cmd.Env, "HOME="+dir, "TERM=xterm")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Logf("tmux %v: %v %s", args, err, out)
		}
		return string(out)
	}
	mutt := fmt.Sprintf("mutt -n -F %s -f imap://testuser@127.0.0.1:%s/INBOX", rc, port)
	tmux("new-session", "-d", "-x", "132", "-y", "40", "env HOME="+dir+" TERM=xterm "+mutt)
	defer exec.Command("tmux", "-S", sock, "kill-server").Run() // already gone when mutt quit
	screen := func() string { return tmux("capture-pane", "-p") }
	// mutt, pinned to wait for its exit: the pane's process (the shell
	// running it, or mutt itself).
	var panePid int
	if _, err := fmt.Sscan(tmux("display-message", "-p", "#{pane_pid}"), &panePid); err != nil {
		t.Fatalf("tmux pane_pid: %v", err)
	}
	muttProc, err := testwait.Pin(panePid)
	if err != nil {
		t.Fatal(err)
	}
	defer muttProc.Close()
	// waitScreen polls the screen (mutt has no other observable state)
	// until it shows want.
	waitScreen := func(want string) {
		t.Helper()
		testwait.For(t, 20*time.Second, fmt.Sprintf("mutt's screen to show %q", want), func() (bool, string) {
			s := screen()
			return strings.Contains(s, want), "\n" + s
		})
	}
	waitScreen("Lunch on Friday?")
	// An idler on INBOX sees mutt's flag change as it is stored.
	idler, err := Dial("idler", env.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idler.Close()
	if err := idler.Login("testuser", "pass"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := idler.Command("I1", "EXAMINE INBOX"); err != nil {
		t.Fatal(err)
	}
	if err := idler.Write([]byte("I2 IDLE\r\n")); err != nil {
		t.Fatal(err)
	}
	if r := idler.Next(DefaultTimeout); r == nil || r.Tag != "+" {
		t.Fatalf("IDLE: %v", r)
	}
	// Jump to message 2 (sort=date: "Lunch on Friday?", INBOX UID 2,
	// unflagged), flag it, sync.
	tmux("send-keys", "2")
	waitScreen("Jump to message:")
	tmux("send-keys", "Enter")
	tmux("send-keys", "F")
	tmux("send-keys", "$")
	// The outcome: \Flagged on INBOX UID 2, seen through the store, checked
	// after each update the idler gets.
	for deadline := time.Now().Add(20 * time.Second); ; {
		flags := uidFlags(t, env, "INBOX", 2)
		if slices.Contains(flags, `\Flagged`) {
			break
		}
		switch r := idler.Next(time.Until(deadline)); {
		case r == nil:
			t.Fatalf("INBOX UID 2 flags %v 20 s after mutt's F and $, want \\Flagged; screen:\n%s", flags, screen())
		case r.EOF:
			t.Fatalf("the idler's connection ended: %v", r)
		}
	}
	tmux("send-keys", "q")
	// quit=yes: mutt exits, and with it the tmux session.
	testwait.Exited(t, 20*time.Second, "mutt to quit on q", muttProc)
	// No other message was flagged or changed beyond the seed's flags.
	for uid, want := range map[uint32][]string{1: {`\Seen`}, 3: {`\Seen`}, 6: {`\Flagged`}, 27: {`\Flagged`}, 28: nil} {
		if got := uidFlags(t, env, "INBOX", uid); !slices.Equal(got, want) {
			t.Errorf("INBOX UID %d flags %v, want %v (unchanged)", uid, got, want)
		}
	}
}

var xTUIDRe = regexp.MustCompile(`(?m)^X-TUID: [^\n]*\n`)

var flagsRe = regexp.MustCompile(`FLAGS \(([^)]*)\)`)

// uidFlags reads a message's flags over IMAP (EXAMINE: no side effects).
func uidFlags(t *testing.T, env *seedEnv, mailbox string, uid uint32) []string {
	t.Helper()
	c, err := Dial("check", env.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login("testuser", "pass"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Command("X1", "EXAMINE "+imaptest.Quote(mailbox)); err != nil {
		t.Fatal(err)
	}
	untagged, _, err := c.Command("X2", fmt.Sprintf("UID FETCH %d (FLAGS)", uid))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range untagged {
		if m := flagsRe.FindStringSubmatch(r.Raw); m != nil {
			f := strings.Fields(m[1])
			f = slices.DeleteFunc(f, func(s string) bool { return strings.EqualFold(s, `\Recent`) })
			sort.Strings(f)
			return f
		}
	}
	return nil
}
