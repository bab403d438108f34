package imapd

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"decimail/internal/testwait"
	"decimail/server/store"
)

func TestSelectReportsMailboxState(t *testing.T) {
	e := newEnv(t)
	e.deliver("INBOX", testMsg("one"), store.Flags{Seen: true})
	e.deliver("INBOX", testMsg("two"), store.Flags{Keywords: []string{"$Forwarded"}})
	c := e.dial()
	u, st := c.do("SELECT inbox")
	ib, _ := e.st.Mailbox(t.Context(), e.user.ID, "INBOX")
	expect(t, u,
		`* FLAGS (\Answered \Flagged \Deleted \Seen \Draft $Forwarded)`,
		"* 2 EXISTS",
		"* 2 RECENT",
		"* OK [UNSEEN 2] first unseen message",
		`* OK [PERMANENTFLAGS (\Answered \Flagged \Deleted \Seen \Draft $Forwarded \*)] flags permitted`,
		fmt.Sprintf("* OK [UIDVALIDITY %d] UIDs valid", ib.UIDValidity),
		"* OK [UIDNEXT 3] predicted next UID",
		fmt.Sprintf("* OK [MAILBOXID (M%d)] mailbox id", ib.ID),
	)
	if st != "OK [READ-WRITE] SELECT completed" {
		t.Fatalf("tagged %q", st)
	}
	// A second session sees no \Recent; EXAMINE is read-only.
	c2 := e.dial()
	u, st = c2.do("EXAMINE INBOX")
	if u[2] != "* 0 RECENT" || !strings.Contains(u[4], "PERMANENTFLAGS ()") || st != "OK [READ-ONLY] EXAMINE completed" {
		t.Fatalf("EXAMINE: %q %q", u, st)
	}
	if _, st := c.do("SELECT nosuch"); st != "NO [NONEXISTENT] no such mailbox" {
		t.Fatalf("SELECT nosuch: %q", st)
	}
	// The failed SELECT deselected: CLOSE is now a state error.
	if _, st := c.do("CLOSE"); !strings.HasPrefix(st, "BAD") {
		t.Fatalf("CLOSE after failed SELECT: %q", st)
	}
}

// Updates from another session arrive at NOOP: EXISTS, then FETCH FLAGS, and
// EXPUNGE with sequence numbers valid in the client's view.
func TestNoopReportsOtherSessionsChanges(t *testing.T) {
	e := newEnv(t)
	for i := range 3 {
		e.deliver("INBOX", testMsg(fmt.Sprint("m", i)), store.Flags{})
	}
	c := e.dial()
	c.ok("SELECT INBOX")
	ib, _ := e.st.Mailbox(t.Context(), e.user.ID, "INBOX")
	e.deliver("INBOX", testMsg("new"), store.Flags{})
	if _, err := e.st.StoreFlags(t.Context(), e.user.ID, ib.ID, []uint32{1, 3}, store.FlagsAdd, store.Flags{Deleted: true}); err != nil {
		t.Fatal(err)
	}
	expect(t, c.ok("NOOP"), "* 4 EXISTS", "* 4 RECENT", `* 1 FETCH (FLAGS (\Deleted \Recent))`, `* 3 FETCH (FLAGS (\Deleted \Recent))`)
	if _, err := e.st.Expunge(t.Context(), e.user.ID, ib.ID, nil); err != nil {
		t.Fatal(err)
	}
	expect(t, c.ok("NOOP"), "* 1 EXPUNGE", "* 2 EXPUNGE")
	expect(t, c.ok("NOOP"))
}

// IDLE across two server processes (two Server instances, each with its own
// store and notifier connection): flag changes and deliveries made through
// the other one reach the idling client. Each must arrive within the read
// deadline (10 s), well below idlePoll (30 s): by notification, not by the
// idler's periodic re-read. How fast they arrive is measured in bench/
// (BenchmarkIMAP/…/IdleFlagStore and IdleNotifyStore), not asserted here.
func TestIdleAcrossServers(t *testing.T) {
	if idlePoll <= 10*time.Second {
		t.Fatalf("idlePoll %v: an update could come from the idler's periodic re-read", idlePoll)
	}
	e := newEnv(t)
	e.deliver("INBOX", testMsg("first"), store.Flags{})
	other, err := store.Open(t.Context(), e.st.Pool().Config().ConnString(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	_, addr2 := (&testEnv{t: t, st: other, user: e.user}).serve(Config{AuthFailDelay: time.Millisecond})
	idler := e.dial()
	idler.ok("SELECT INBOX")
	idler.send("i1 IDLE")
	if l := idler.line(); !strings.HasPrefix(l, "+ ") {
		t.Fatalf("IDLE: %q", l)
	}
	writer := (&testEnv{t: t, st: other, user: e.user}).dialAddr(addr2)
	writer.ok("LOGIN u pw")
	writer.ok("SELECT INBOX")
	for i := range 3 {
		op, want := "+FLAGS", `* 1 FETCH (FLAGS (\Flagged \Recent))`
		if i%2 == 1 {
			op, want = "-FLAGS", `* 1 FETCH (FLAGS (\Recent))`
		}
		writer.ok("STORE 1 " + op + " (\\Flagged)")
		if l := idler.line(); l != want {
			t.Fatalf("flag change during IDLE: %q, want %q", l, want)
		}
	}
	for i := range 3 {
		if _, err := other.Deliver(t.Context(), e.user.ID, []byte(testMsg(fmt.Sprint("new", i))), store.DeliverOptions{}); err != nil {
			t.Fatal(err)
		}
		if l := idler.line(); l != fmt.Sprintf("* %d EXISTS", i+2) {
			t.Fatalf("delivery during IDLE: %q", l)
		}
		if l := idler.line(); l != fmt.Sprintf("* %d RECENT", i+2) {
			t.Fatalf("delivery during IDLE: %q after EXISTS", l)
		}
	}
	idler.send("DONE")
	if l := idler.line(); !strings.HasPrefix(l, "i1 OK") {
		t.Fatalf("after DONE: %q", l)
	}
}

// A connection over the per-address limit gets BYE [UNAVAILABLE]; closing one
// frees its place.
func TestConnectionsPerAddress(t *testing.T) {
	e := newEnv(t)
	_, addr := e.serve(Config{AuthFailDelay: time.Millisecond, MaxConnsPerIP: 2, LimitLoopback: true})
	a := e.dialAddr(addr)
	e.dialAddr(addr)
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	l, _ := bufio.NewReader(nc).ReadString('\n')
	if !strings.HasPrefix(l, "* BYE [UNAVAILABLE]") {
		t.Fatalf("third connection: %q", l)
	}
	a.ok("LOGOUT")
	// The place is given back after the session has closed its socket; only
	// a new connection's greeting shows it.
	testwait.For(t, 5*time.Second, "the place freed by LOGOUT", func() (bool, string) {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		l, err := bufio.NewReader(nc).ReadString('\n')
		return strings.HasPrefix(l, "* OK"), fmt.Sprintf("greeting %q (%v)", l, err)
	})
}
