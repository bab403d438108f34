package dovecot

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"decimail/internal/testwait"
)

// carolHash is bcrypt("hashed", cost 4) as golang.org/x/crypto/bcrypt
// writes it ($2a$): Account.Hash, as the benchmarks use it.
const carolHash = "{BLF-CRYPT}$2a$04$NxtpqsH4qoX6PVC4AAAGbevwXzjtNhpL2qcA1428ZNBF0H986cFzC"

// TestStartLoginClose starts an instance, logs in over a raw connection,
// selects INBOX (Dovecot creates the maildir) and closes it: the master and
// every child must be gone, and the directory too.
func TestStartLoginClose(t *testing.T) {
	if err := Installed(); err != nil {
		t.Skip(err) // only a missing binary skips; any other failure fails
	}
	s, err := Start(Options{Name: "decimail-dovecot-test", Accounts: []Account{{User: "alice", Pass: "secret"}, {User: "bob", Pass: "other"},
		{User: "carol", Hash: carolHash}}, SpecialUse: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if v := Version(); !strings.HasPrefix(v, "2.") {
		t.Errorf("Version() = %q", v)
	}

	c, cmd := dial(t, s)
	if got := cmd("a2", "LOGIN alice secret"); !strings.HasPrefix(got, "a2 OK") {
		t.Fatalf("LOGIN: %q\n%s", got, s.Log())
	}
	if got := cmd("a3", "SELECT INBOX"); !strings.HasPrefix(got, "a3 OK") {
		t.Fatalf("SELECT INBOX: %q\n%s", got, s.Log())
	}
	if _, err := os.Stat(s.Dir + "/mail/alice/Maildir"); err != nil {
		t.Errorf("maildir: %v", err)
	}
	if got := cmd("a4", "LOGOUT"); !strings.HasPrefix(got, "a4 OK") {
		t.Errorf("LOGOUT: %q", got)
	}
	c.Close()
	c, cmd = dial(t, s)
	if got := cmd("c1", "LOGIN carol hashed"); !strings.HasPrefix(got, "c1 OK") {
		t.Errorf("LOGIN with a BLF-CRYPT password: %q\n%s", got, s.Log())
	}
	c.Close()
	// Last, as Dovecot delays the next logins from this address after a
	// failure.
	c, cmd = dial(t, s)
	if got := cmd("b1", "LOGIN bob secret"); !strings.HasPrefix(got, "b1 NO") {
		t.Errorf("LOGIN with another account's password: %q", got)
	}
	c.Close()

	master := s.PID()
	if master == 0 {
		t.Fatal("PID() = 0 while running")
	}
	procs := tree(master)
	if len(procs) < 2 {
		t.Errorf("master %d has no children: %v", master, procs)
	}
	// Pin the children (not ours to wait for) before Close, so their exit
	// can be waited for and a reused pid is not taken for one of them.
	var pinned []*testwait.Process
	for _, p := range procs {
		if p.pid == master {
			continue
		}
		pp, err := testwait.Pin(p.pid)
		if err != nil {
			t.Fatal(err)
		}
		if !p.alive() { // exited, its pid maybe reused, before the pin
			pp.Close()
			continue
		}
		pinned = append(pinned, pp)
	}
	s.Close()
	s.Close() // idempotent

	if s.PID() != 0 {
		t.Errorf("PID() = %d after Close", s.PID())
	}
	if err := syscall.Kill(master, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("master %d still there after Close (kill 0: %v)", master, err)
	}
	// The children exit once the master told them to.
	testwait.Exited(t, 5*time.Second, fmt.Sprintf("the children of master %d to exit after Close (%v)", master, procs), pinned...)
	if _, err := os.Stat(s.Dir); !os.IsNotExist(err) {
		t.Errorf("directory %s left behind (%v)", s.Dir, err)
	}
	if c, err := net.Dial("tcp", s.Addr); err == nil {
		c.Close()
		t.Errorf("%s still accepts connections after Close", s.Addr)
	}
}

// dial connects to s, reads the greeting and returns a function that sends
// one command and returns its tagged status line.
func dial(t *testing.T, s *Server) (net.Conn, func(tag, line string) string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", s.Addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(20 * time.Second))
	r := bufio.NewReader(c)
	greeting, err := r.ReadString('\n')
	if err != nil || !strings.HasPrefix(greeting, "* OK") {
		t.Fatalf("greeting %q, %v", greeting, err)
	}
	return c, func(tag, line string) string {
		t.Helper()
		if _, err := fmt.Fprintf(c, "%s %s\r\n", tag, line); err != nil {
			t.Fatal(err)
		}
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("%s: %v\n%s", line, err, s.Log())
			}
			if strings.HasPrefix(l, tag+" ") {
				return strings.TrimSpace(l)
			}
		}
	}
}

func TestStartBadConfig(t *testing.T) {
	if err := Installed(); err != nil {
		t.Skip(err)
	}
	// A setting Dovecot rejects: it exits at once and Start says so, leaving
	// nothing behind.
	s, err := Start(Options{MailFsync: "sometimes", Accounts: []Account{{User: "u", Pass: "pw"}}})
	if err == nil {
		s.Close()
		t.Fatal("Start succeeded with mail_fsync = sometimes")
	}
	if !strings.Contains(err.Error(), "exited") {
		t.Errorf("error does not say Dovecot exited: %v", err)
	}
	if _, err := Start(Options{Accounts: []Account{{User: "a:b", Pass: "pw"}}}); err == nil {
		t.Error("Start accepted a user name with ':'")
	}
}

// proc identifies a process by pid and start time (pids are reused).
type proc struct {
	pid   int
	start string
	name  string
}

// stat reads /proc/PID/stat: command name, state, parent and start time.
func stat(pid int) (name, state string, ppid int, start string, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", "", 0, "", false
	}
	s := string(b)
	i, j := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if i < 0 || j < i {
		return "", "", 0, "", false
	}
	f := strings.Fields(s[j+2:]) // state ppid pgrp ... field 22 (starttime) is f[19]
	if len(f) < 20 {
		return "", "", 0, "", false
	}
	fmt.Sscan(f[1], &ppid)
	return s[i+1 : j], f[0], ppid, f[19], true
}

// alive: the same process still exists and is not a zombie.
func (p proc) alive() bool {
	_, state, _, start, ok := stat(p.pid)
	return ok && start == p.start && state != "Z"
}

// tree lists pid and every process below it.
func tree(pid int) []proc {
	children := map[int][]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		var p int
		if _, err := fmt.Sscan(e.Name(), &p); err != nil {
			continue
		}
		if _, _, ppid, _, ok := stat(p); ok {
			children[ppid] = append(children[ppid], p)
		}
	}
	var out []proc
	for todo := []int{pid}; len(todo) > 0; todo = todo[1:] {
		if name, _, _, start, ok := stat(todo[0]); ok {
			out = append(out, proc{todo[0], start, name})
		}
		todo = append(todo, children[todo[0]]...)
	}
	return out
}

// TestVirtualMailboxes: Options.Virtual are saved searches over INBOX that
// follow its flag changes (the benchmarks' like-for-like peer of views), and
// LIST "" "*" does not show them.
func TestVirtualMailboxes(t *testing.T) {
	if err := Installed(); err != nil {
		t.Skip(err)
	}
	s, err := Start(Options{Name: "decimail-dovecot-test", Accounts: []Account{{User: "alice", Pass: "secret"}},
		Virtual: map[string]string{"unread": "UNSEEN", "golang": `UNSEEN HEADER List-Id "golang"`}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c, err := net.DialTimeout("tcp", s.Addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	r := bufio.NewReader(c)
	r.ReadString('\n')
	n := 0
	// cmd sends one command and returns its untagged lines; it fails the
	// test unless the command succeeds.
	cmd := func(line string) []string {
		t.Helper()
		n++
		tag := fmt.Sprintf("t%d", n)
		fmt.Fprintf(c, "%s %s\r\n", tag, line)
		var untagged []string
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("%s: %v\n%s", line, err, s.Log())
			}
			l = strings.TrimSpace(l)
			if strings.HasPrefix(l, tag+" ") {
				if !strings.HasPrefix(l, tag+" OK") {
					t.Fatalf("%s: %s\n%s", line, l, s.Log())
				}
				return untagged
			}
			untagged = append(untagged, l)
		}
	}
	cmd("LOGIN alice secret")
	for i, m := range []struct{ flags, list string }{{`(\Seen)`, "golang"}, {"()", "golang"}, {"()", "other"}} {
		msg := fmt.Sprintf("From: a@example.com\r\nSubject: %d\r\nList-Id: <%s.example.com>\r\n\r\nbody\r\n", i, m.list)
		cmd(fmt.Sprintf("APPEND INBOX %s {%d+}\r\n%s", m.flags, len(msg), msg))
	}
	status := func(name string) string {
		t.Helper()
		got := cmd("STATUS " + name + " (MESSAGES)")
		if len(got) != 1 {
			t.Fatalf("STATUS %s: %q", name, got)
		}
		return got[0]
	}
	want := func(name, messages string) {
		t.Helper()
		if got := status(VirtualPrefix + name); !strings.HasSuffix(got, "(MESSAGES "+messages+")") {
			t.Errorf("STATUS %s%s: %q, want MESSAGES %s", VirtualPrefix, name, got, messages)
		}
	}
	want("unread", "2")
	want("golang", "1")
	cmd("SELECT INBOX")
	cmd(`STORE 1:* -FLAGS (\Seen)`)
	want("unread", "3")
	want("golang", "2")
	cmd(`STORE 1:2 +FLAGS (\Seen)`)
	want("unread", "1")
	want("golang", "0")
	for _, l := range cmd(`LIST "" "*"`) {
		if strings.Contains(l, VirtualPrefix) {
			t.Errorf("LIST \"\" \"*\" lists a virtual mailbox: %s", l)
		}
	}
}

// TestVirtualBadName: a virtual mailbox's name is one path element, its
// search one line; Start refuses others and leaves nothing behind.
func TestVirtualBadName(t *testing.T) {
	if err := Installed(); err != nil {
		t.Skip(err)
	}
	for _, v := range []map[string]string{{"a/b": "ALL"}, {"..": "ALL"}, {"x": "ALL\nINBOX"}} {
		s, err := Start(Options{Name: "decimail-dovecot-test", Virtual: v})
		if err == nil {
			s.Close()
			t.Errorf("Start with Virtual %q: no error", v)
		}
	}
}
