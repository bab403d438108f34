package imapd

import (
	"fmt"
	"net"
	"testing"
	"time"

	"decimail/internal/imaptest"
	"decimail/internal/testwait"
	"decimail/server/store"
)

func TestSelectReportsMailboxState(t *testing.T) {
	e := newEnv(t)
	e.deliver("INBOX", testMsg("one"), store.Flags{Seen: true})
	e.deliver("INBOX", testMsg("two"), store.Flags{Keywords: []string{"$Forwarded"}})
	c := e.dial()
	u, done := c.Do("SELECT inbox")
	ib, _ := e.st.Mailbox(t.Context(), e.user.ID, "INBOX")
	imaptest.Expect(t, u,
		`* FLAGS (\Answered \Flagged \Deleted \Seen \Draft $Forwarded)`,
		"* 2 EXISTS",
		"* 2 RECENT",
		"* OK [UNSEEN 2] first unseen message",
		`* OK [PERMANENTFLAGS (\Answered \Flagged \Deleted \Seen \Draft $Forwarded \*)] flags permitted`,
		fmt.Sprintf("* OK [UIDVALIDITY %d] UIDs valid", ib.UIDValidity),
		"* OK [UIDNEXT 3] predicted next UID",
		fmt.Sprintf("* OK [MAILBOXID (%s)] mailbox id", e.st.ObjectIDs().Mailbox(ib.ID)),
		// On every SELECT while CONDSTORE is advertised: "When opening a
		// mailbox" (rfc7162.txt:422-428; condstore.go selectReportsModSeq).
		fmt.Sprintf("* OK [HIGHESTMODSEQ %d] highest mod-sequence", hms(t, e, ib)),
	)
	imaptest.ExpectDone(t, done, "OK [READ-WRITE] SELECT completed")
	// A second session sees no \Recent; EXAMINE is read-only.
	c2 := e.dial()
	u, done = c2.Do("EXAMINE INBOX")
	if len(u) < 5 {
		t.Fatalf("EXAMINE: %q", u)
	}
	imaptest.Expect(t, u[2:3], "* 0 RECENT")
	if !imaptest.MatchStatus(u[4], "OK [PERMANENTFLAGS ()] *") {
		t.Fatalf("EXAMINE: %s", u[4])
	}
	imaptest.ExpectDone(t, done, "OK [READ-ONLY] EXAMINE completed")
	_, done = c.Do("SELECT nosuch")
	imaptest.ExpectDone(t, done, "NO [NONEXISTENT] no such mailbox")
	// The failed SELECT deselected: CLOSE is now a state error.
	if _, done := c.Do("CLOSE"); done.Status != "BAD" {
		t.Fatalf("CLOSE after failed SELECT: %s", done)
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
	c.OK("SELECT INBOX")
	ib, _ := e.st.Mailbox(t.Context(), e.user.ID, "INBOX")
	e.deliver("INBOX", testMsg("new"), store.Flags{})
	if _, err := e.st.StoreFlags(t.Context(), ib.Box(), []uint32{1, 3}, store.FlagsAdd, store.Flags{Deleted: true}); err != nil {
		t.Fatal(err)
	}
	imaptest.Expect(t, c.OK("NOOP"), "* 4 EXISTS", "* 4 RECENT", `* 1 FETCH (FLAGS (\Deleted \Recent))`, `* 3 FETCH (FLAGS (\Deleted \Recent))`)
	if _, err := e.st.Expunge(t.Context(), ib.Box(), nil); err != nil {
		t.Fatal(err)
	}
	imaptest.Expect(t, c.OK("NOOP"), "* 1 EXPUNGE", "* 2 EXPUNGE")
	imaptest.Expect(t, c.OK("NOOP"))
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
	idler.OK("SELECT INBOX")
	// IDLE by hand: its updates come outside any command's responses.
	idler.Send("i1 IDLE")
	if r := idler.Next(); r.Tag != "+" {
		t.Fatalf("IDLE: %s", r)
	}
	writer := (&testEnv{t: t, st: other, user: e.user}).dialAddr(addr2)
	writer.OK("LOGIN u pw")
	writer.OK("SELECT INBOX")
	for i := range 3 {
		op, want := "+FLAGS", `* 1 FETCH (FLAGS (\Flagged \Recent))`
		if i%2 == 1 {
			op, want = "-FLAGS", `* 1 FETCH (FLAGS (\Recent))`
		}
		writer.OK("STORE 1 " + op + " (\\Flagged)")
		if d := imaptest.Diff([]*imaptest.Resp{idler.Next()}, want); d != "" {
			t.Fatalf("flag change during IDLE:\n%s", d)
		}
	}
	for i := range 3 {
		if _, err := other.Deliver(t.Context(), e.user.ID, []byte(testMsg(fmt.Sprint("new", i))), store.DeliverOptions{}); err != nil {
			t.Fatal(err)
		}
		imaptest.Expect(t, []*imaptest.Resp{idler.Next(), idler.Next()}, fmt.Sprintf("* %d EXISTS", i+2), fmt.Sprintf("* %d RECENT", i+2))
	}
	idler.Send("DONE")
	_, done := idler.Until("i1")
	imaptest.ExpectDone(t, done, "OK IDLE completed")
}

// A connection over the per-address limit gets BYE [UNAVAILABLE]; closing one
// frees its place.
func TestConnectionsPerAddress(t *testing.T) {
	e := newEnv(t)
	_, addr := e.serve(Config{AuthFailDelay: time.Millisecond, MaxConnsPerIP: 2, LimitLoopback: true})
	a := e.dialAddr(addr)
	e.dialAddr(addr)
	// greeting reads the greeting of a new connection, whatever it is.
	greeting := func() *imaptest.Resp {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c := imaptest.New(nc)
		defer c.Close()
		g, err := c.Read()
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	if g := greeting(); !imaptest.MatchStatus(g, "BYE [UNAVAILABLE] *") {
		t.Fatalf("third connection: %s", g)
	}
	u, _ := a.Do("LOGOUT")
	imaptest.Expect(t, u, "* BYE Decimail logging out")
	// The place is given back after the session has closed its socket; only
	// a new connection's greeting shows it.
	testwait.For(t, 30*time.Second, "the place freed by LOGOUT", func() (bool, string) {
		g := greeting()
		return g.Status == "OK", "greeting " + g.String()
	})
}
