package imapd

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"decimail/internal/imaptest"
	"decimail/server/store"
)

// selUIDValidity returns the UIDVALIDITY of a SELECT's responses.
func selUIDValidity(t *testing.T, rs []*imaptest.Resp) string {
	t.Helper()
	for _, r := range rs {
		if r.CodeName() == "UIDVALIDITY" {
			return r.Code[1].S
		}
	}
	t.Fatalf("no UIDVALIDITY in %v", rs)
	return ""
}

// only returns the responses named name, with each MODSEQ (n) as MODSEQ (0).
func only(rs []*imaptest.Resp, name string) []*imaptest.Resp {
	var out []*imaptest.Resp
	for _, r := range rs {
		if r.Name() == name {
			out = append(out, zeroModSeq(r))
		}
	}
	return out
}

func zeroModSeq(r *imaptest.Resp) *imaptest.Resp {
	z, err := imaptest.ParseLine(modseqRe.ReplaceAllString(r.String(), "MODSEQ (0)"))
	if err != nil {
		panic(err)
	}
	return z
}

// ENABLE QRESYNC enables CONDSTORE too ("have identical results"); QRESYNC
// is advertised, and switched off with CONDSTORE (imapd_disable), which it
// implies ("implies support for the CONDSTORE IMAP extension",
// rfc7162.txt:1386-1409), or by its own name.
func TestQresyncEnable(t *testing.T) {
	e := newEnv(t)
	e.deliver("INBOX", testMsg("one"), store.Flags{})
	c := e.dial()
	if caps := c.OK("CAPABILITY")[0].String(); !strings.Contains(caps, " QRESYNC") {
		t.Fatalf("QRESYNC not advertised: %s", caps)
	}
	// The parameter and the modifier before "ENABLE QRESYNC": BAD
	// (rfc7162.txt:1411-1417, 1446-1450, 1697-1699).
	if _, done := c.Do("SELECT INBOX (QRESYNC (1 1))"); done.Status != "BAD" {
		t.Errorf("SELECT (QRESYNC) before ENABLE: %s, want BAD", done)
	}
	c.OK("SELECT INBOX")
	if _, done := c.Do("UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)"); done.Status != "BAD" {
		t.Errorf("VANISHED before ENABLE: %s, want BAD", done)
	}
	c.OK("UNSELECT")
	imaptest.Expect(t, c.OK("ENABLE QRESYNC"), "* ENABLED QRESYNC")
	// CONDSTORE-aware now: SELECT reports HIGHESTMODSEQ, as it does
	// "after a CONDSTORE enabling command" (rfc7162.txt:417-420).
	highest(t, c.OK("SELECT INBOX"))
	// A mod-sequence of 0 ("nothing cached", as some clients send it) is
	// not one (mod-sequence-value is non-zero): BAD, and the README's
	// workaround is QRESYNC off for that user.
	c.OK("UNSELECT")
	if _, done := c.Do("SELECT INBOX (QRESYNC (1 0))"); done.Status != "BAD" {
		t.Errorf("SELECT (QRESYNC (1 0)): %s, want BAD", done)
	}

	for _, off := range []string{"CONDSTORE", "QRESYNC"} {
		_, addr := e.serve(Config{PerUserDisabled: func(string) map[string]bool { return map[string]bool{off: true} }})
		d := e.dialAddr(addr)
		d.OK("LOGIN u pw")
		if caps := d.OK("CAPABILITY")[0].String(); strings.Contains(caps, "QRESYNC") {
			t.Errorf("%s off: QRESYNC advertised: %s", off, caps)
		}
		imaptest.Expect(t, d.OK("ENABLE QRESYNC"), "* ENABLED")
		if _, done := d.Do("SELECT INBOX (QRESYNC (1 1))"); done.Status != "BAD" {
			t.Errorf("%s off: SELECT (QRESYNC): %s, want BAD", off, done)
		}
	}
}

// Once QRESYNC is enabled, VANISHED replaces EXPUNGE for this session's
// EXPUNGE (with "the updated per-mailbox modification sequence" in the
// tagged OK, rfc7162.txt:1799-1804), UID EXPUNGE, MOVE and another
// session's expunge seen at NOOP and in IDLE ("the VANISHED response
// without the EARLIER tag instead of the EXPUNGE response" also for
// "messages expunged in other connections", rfc7162.txt:1996-2005);
// a session without it still gets EXPUNGE.
func TestQresyncVanishedReplacesExpunge(t *testing.T) {
	e := newEnv(t)
	for i := range 8 {
		e.deliver("INBOX", testMsg(fmt.Sprint("m", i)), store.Flags{})
	}
	c := e.dial()
	c.OK("ENABLE QRESYNC")
	c.OK("SELECT INBOX")
	plain := e.dial()
	plain.OK("SELECT INBOX")

	c.OK("STORE 2,3,5 +FLAGS.SILENT (\\Deleted)")
	u, done := c.Do("EXPUNGE")
	imaptest.Expect(t, u, "* VANISHED 2:3,5")
	if done.Status != "OK" || done.CodeName() != "HIGHESTMODSEQ" {
		t.Fatalf("EXPUNGE: %s, want OK [HIGHESTMODSEQ n]", done)
	}
	h := highest(t, c.OK("STATUS INBOX (HIGHESTMODSEQ)"))
	if got := done.Code[1].S; got != fmt.Sprint(h) {
		t.Errorf("EXPUNGE's HIGHESTMODSEQ %s, STATUS says %d", got, h)
	}
	imaptest.Expect(t, plain.OK("NOOP"), "* 2 EXPUNGE", "* 2 EXPUNGE", "* 3 EXPUNGE")

	c.OK("UID STORE 7 +FLAGS.SILENT (\\Deleted)")
	imaptest.Expect(t, c.OK("UID EXPUNGE 6:7"), "* VANISHED 7")
	u, done = c.Do("UID MOVE 1 Archive")
	if len(u) != 2 || u[0].CodeName() != "COPYUID" || done.CodeName() != "HIGHESTMODSEQ" {
		t.Errorf("UID MOVE: %v %v, want COPYUID, VANISHED and OK [HIGHESTMODSEQ]", u, done)
	}
	imaptest.Expect(t, only(u, "VANISHED"), "* VANISHED 1")

	// Another session's expunge, at NOOP and in IDLE.
	plain.OK("NOOP")
	plain.OK("UID STORE 4 +FLAGS.SILENT (\\Deleted)")
	plain.OK("UID EXPUNGE 4")
	imaptest.Expect(t, c.OK("NOOP"), "* VANISHED 4")
	c.Send("i1 IDLE")
	if r, err := c.Read(); err != nil || r.Tag != "+" {
		t.Fatalf("IDLE: %v %v", r, err)
	}
	plain.OK("UID STORE 6 +FLAGS.SILENT (\\Deleted)")
	plain.OK("UID EXPUNGE 6")
	for {
		r, err := c.Poll(5 * time.Second)
		if err != nil || r == nil {
			t.Fatalf("in IDLE: %v %v, want * VANISHED 6", r, err)
		}
		if r.Name() == "FETCH" { // the \Deleted, if IDLE saw it before the expunge
			continue
		}
		if r.String() != "* VANISHED 6" {
			t.Fatalf("in IDLE: %v, want * VANISHED 6", r)
		}
		break
	}
	c.Send("DONE")
	c.Wait("i1")
	imaptest.Expect(t, c.OK("UID FETCH 1:* (UID)"), "* 1 FETCH (UID 8)")

	// Not during a UID SEARCH with message numbers (rfc7162.txt:2041-2045),
	// as during one without.
	e.deliver("INBOX", testMsg("m9"), store.Flags{})
	e.deliver("INBOX", testMsg("m10"), store.Flags{})
	c.OK("NOOP")
	plain.OK("NOOP")
	plain.OK("UID STORE 9 +FLAGS.SILENT (\\Deleted)")
	plain.OK("UID EXPUNGE 9")
	if u := c.OK("UID SEARCH 1:2"); len(only(u, "VANISHED")) != 0 {
		t.Errorf("UID SEARCH with message numbers: %v, want no VANISHED", u)
	}
	imaptest.Expect(t, only(c.OK("UID SEARCH UID 1:*"), "VANISHED"), "* VANISHED 9")
}

// SELECT (QRESYNC ...) on a folder: VANISHED (EARLIER) for the known UIDs
// expunged since the mod-sequence, then FETCH (UID FLAGS MODSEQ) of those
// changed since (rfc7162.txt:1519-1541); without known-uids, "1:<maxuid>"
// (rfc7162.txt:1523-1529); with another UIDVALIDITY a plain SELECT
// (rfc7162.txt:1470-1477); [CLOSED] when a mailbox was selected
// (rfc7162.txt:2111-2123).
func TestQresyncSelectFolder(t *testing.T) {
	e := newEnv(t)
	for i := range 6 {
		e.deliver("INBOX", testMsg(fmt.Sprint("m", i)), store.Flags{})
	}
	c := e.dial()
	c.OK("ENABLE QRESYNC")
	sel := c.OK("SELECT INBOX")
	uv, h0 := selUIDValidity(t, sel), highest(t, sel)
	c.OK("LOGOUT")

	o := e.dial()
	o.OK("SELECT INBOX")
	o.OK("STORE 1,4 +FLAGS.SILENT (\\Deleted)")
	o.OK("EXPUNGE")
	o.OK("UID STORE 3 +FLAGS.SILENT (\\Flagged)")
	e.deliver("INBOX", testMsg("new"), store.Flags{})

	c = e.dial()
	c.OK("ENABLE QRESYNC")
	c.OK("SELECT INBOX")
	u := c.OK(fmt.Sprintf("SELECT INBOX (QRESYNC (%s %d 1:6))", uv, h0))
	if u[0].String() != "* OK [CLOSED] previous mailbox closed" {
		t.Errorf("first response %s, want [CLOSED]", u[0])
	}
	imaptest.Expect(t, append(only(u, "VANISHED"), only(u, "FETCH")...),
		"* VANISHED (EARLIER) 1,4", `* 2 FETCH (UID 3 FLAGS (\Flagged) MODSEQ (0))`) // 7 is not known
	h1 := highest(t, u)

	// Without known-uids: every UID up to UIDNEXT-1. Nothing changed since h1.
	u = c.OK(fmt.Sprintf("EXAMINE INBOX (QRESYNC (%s %d))", uv, h1))
	imaptest.Expect(t, append(only(u, "VANISHED"), only(u, "FETCH")...))
	u = c.OK(fmt.Sprintf("EXAMINE INBOX (QRESYNC (%s %d))", uv, h0))
	imaptest.Expect(t, append(only(u, "VANISHED"), only(u, "FETCH")...),
		"* VANISHED (EARLIER) 1,4", `* 2 FETCH (UID 3 FLAGS (\Flagged) MODSEQ (0))`, `* 5 FETCH (UID 7 FLAGS () MODSEQ (0))`)
	// Another UIDVALIDITY: a plain EXAMINE.
	u = c.OK(fmt.Sprintf("EXAMINE INBOX (QRESYNC (%d %d 1:6))", 1, h0))
	imaptest.Expect(t, append(only(u, "VANISHED"), only(u, "FETCH")...))

	// Syntax: BAD, and no mailbox is selected.
	for _, p := range []string{"(QRESYNC)", "(QRESYNC ())", "(QRESYNC (0 5))", "(QRESYNC (1 0))", "(QRESYNC (1 5 1:*))",
		"(QRESYNC (1 5 1:3 (1:2 1:3)))", "(QRESYNC (1 5) QRESYNC (1 5))", "(QRESYNC (1 5 1 2 3))"} {
		if _, done := c.Do("EXAMINE INBOX " + p); done.Status != "BAD" {
			t.Errorf("EXAMINE INBOX %s: %s, want BAD", p, done)
		}
	}
}

// UID FETCH ... (CHANGEDSINCE n VANISHED): VANISHED (EARLIER) of "those
// messages from the UID set parameter that have been expunged" first
// (rfc7162.txt:1706-1716); VANISHED "NOT allowed with a FETCH command",
// only with CHANGEDSINCE (rfc7162.txt:1693-1704).
func TestQresyncFetchVanished(t *testing.T) {
	e := newEnv(t)
	for i := range 5 {
		e.deliver("INBOX", testMsg(fmt.Sprint("m", i)), store.Flags{})
	}
	c := e.dial()
	c.OK("ENABLE QRESYNC")
	h0 := highest(t, c.OK("SELECT INBOX"))
	c.OK("UID STORE 2,4 +FLAGS.SILENT (\\Deleted)")
	c.OK("UID EXPUNGE 2")
	c.OK("UID STORE 3 +FLAGS.SILENT (\\Seen)")
	u := c.OK(fmt.Sprintf("UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)", h0))
	imaptest.Expect(t, append(only(u, "VANISHED"), only(u, "FETCH")...),
		"* VANISHED (EARLIER) 2",
		`* 2 FETCH (UID 3 FLAGS (\Seen \Recent) MODSEQ (0))`, `* 3 FETCH (UID 4 FLAGS (\Deleted \Recent) MODSEQ (0))`)
	u = c.OK(fmt.Sprintf("UID FETCH 3:5 (FLAGS) (VANISHED CHANGEDSINCE %d)", h0))
	if len(u) != 2 {
		t.Errorf("UID FETCH 3:5: %v, want two FETCH responses", u)
	}
	imaptest.Expect(t, only(u, "FETCH"),
		`* 2 FETCH (UID 3 FLAGS (\Seen \Recent) MODSEQ (0))`, `* 3 FETCH (UID 4 FLAGS (\Deleted \Recent) MODSEQ (0))`)
	// Expunged by another session, not yet announced: the VANISHED after
	// the FETCH, not also (EARLIER) before it (rfc7162.txt:1972-1977).
	o := e.dial()
	o.OK("SELECT INBOX")
	o.OK("UID EXPUNGE 4")
	u = c.OK(fmt.Sprintf("UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)", h0))
	imaptest.Expect(t, only(u, "VANISHED"), "* VANISHED (EARLIER) 2", "* VANISHED 4")
	for _, cmd := range []string{"FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)", "UID FETCH 1:* (FLAGS) (VANISHED)",
		"UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED VANISHED)"} {
		if _, done := c.Do(cmd); done.Status != "BAD" {
			t.Errorf("%s: %s, want BAD", cmd, done)
		}
	}
}

// A known-uids set and match data of tens of kilobytes (a Nextcloud Mail
// set over 4 KB broke another server): every other UID of 20,000, the
// mailbox holding every third. Past the tombstone horizon (pruned), the
// answer is every known UID not in the mailbox ("as if it was requested to
// report all expunged messages", rfc7162.txt:1718-1721), narrowed by the
// match data ("no UIDs equal to or less than 8 are present in the VANISHED
// response", rfc7162.txt:1595-1601).
func TestQresyncLargeKnownUIDs(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	const n = 300
	for i := range n {
		e.deliver("INBOX", testMsg(fmt.Sprint("m", i)), store.Flags{})
	}
	c := e.dial()
	c.OK("ENABLE QRESYNC")
	sel := c.OK("SELECT INBOX")
	uv, h0 := selUIDValidity(t, sel), highest(t, sel)
	var del []string
	for u := 1; u <= n; u++ {
		if u%3 != 0 {
			del = append(del, fmt.Sprint(u))
		}
	}
	c.OK("UID STORE " + strings.Join(del, ",") + " +FLAGS.SILENT (\\Deleted)")
	c.OK("EXPUNGE")
	c.OK("UNSELECT")

	var known []string
	for u := 1; u <= 20000; u += 2 {
		known = append(known, fmt.Sprint(u))
	}
	set := strings.Join(known, ",")
	if len(set) < 40000 {
		t.Fatalf("known-uids of %d bytes, want tens of KB", len(set))
	}
	// Vanished: odd UIDs up to n not divisible by 3.
	var want []uint32
	for u := uint32(1); u <= n; u += 2 {
		if u%3 != 0 {
			want = append(want, u)
		}
	}
	u := c.OK(fmt.Sprintf("EXAMINE INBOX (QRESYNC (%s %d %s))", uv, h0, set))
	imaptest.Expect(t, only(u, "VANISHED"), "* VANISHED (EARLIER) "+numSet(want))

	// Past the horizon: the tombstones are gone.
	if k, err := e.st.PruneExpunges(ctx, time.Now().Add(time.Hour), 1000); err != nil || k == 0 {
		t.Fatalf("PruneExpunges: %d, %v", k, err)
	}
	u = c.OK(fmt.Sprintf("EXAMINE INBOX (QRESYNC (%s %d %s))", uv, h0, set))
	imaptest.Expect(t, only(u, "VANISHED"), "* VANISHED (EARLIER) "+numSet(want))
	// Match data: messages 1..50 have UIDs 3, 6, ..., 150: none vanished up to 150.
	var seqs, uids []string
	for i := 1; i <= 50; i++ {
		seqs, uids = append(seqs, fmt.Sprint(i)), append(uids, fmt.Sprint(3*i))
	}
	var above []uint32
	for _, w := range want {
		if w > 150 {
			above = append(above, w)
		}
	}
	u = c.OK(fmt.Sprintf("EXAMINE INBOX (QRESYNC (%s %d %s (%s %s)))", uv, h0, set, strings.Join(seqs, ","), strings.Join(uids, ",")))
	imaptest.Expect(t, only(u, "VANISHED"), "* VANISHED (EARLIER) "+numSet(above))
}

// QRESYNC on a view: a message leaving it is a vanished UID, one entering
// (again) a new UID changed since (README "Mod-sequences"). The session's
// own STORE that takes a message out of the view holds its VANISHED until a
// sync point; a MODSEQ sent meanwhile above its tombstone is followed by
// a HIGHESTMODSEQ below it ("the server MUST send the HIGHESTMODSEQ
// response code with a lower value", rfc7162.txt:1340-1354), and a client that
// resynchronises from there learns of it.
func TestQresyncView(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for i := range 4 {
		e.deliver("INBOX", testMsg(fmt.Sprint("m", i)), store.Flags{})
	}
	if _, err := e.st.DefineMailbox(ctx, e.user.ID, "Unread", "UNSEEN"); err != nil {
		t.Fatal(err)
	}
	c := e.dial()
	c.OK("ENABLE QRESYNC")
	sel := c.OK("SELECT Unread")
	uv, h0 := selUIDValidity(t, sel), highest(t, sel)
	o := e.dial()
	o.OK("SELECT INBOX")

	// Own STORE: message 1 leaves Unread, held until a sync point.
	c.OK("UID STORE 1 +FLAGS.SILENT (\\Seen)")
	o.OK("UID STORE 2 +FLAGS.SILENT (\\Flagged)")
	u := c.OK("NOOP")
	var hm string
	for _, r := range u {
		if r.Name() == "VANISHED" {
			t.Fatalf("NOOP sent %s: NOOP is no sync point", r)
		}
		if r.CodeName() == "HIGHESTMODSEQ" {
			hm = r.Code[1].S
		}
	}
	if hm == "" {
		t.Fatalf("NOOP: %v, want FETCH MODSEQ then OK [HIGHESTMODSEQ] below the held tombstone", u)
	}
	// A client offline from that HIGHESTMODSEQ learns that 1 vanished.
	d := e.dial()
	d.OK("ENABLE QRESYNC")
	u = d.OK(fmt.Sprintf("EXAMINE Unread (QRESYNC (%s %s 1:4))", uv, hm))
	imaptest.Expect(t, only(u, "VANISHED"), "* VANISHED (EARLIER) 1")
	imaptest.Expect(t, c.OK("CHECK"), "* VANISHED 1")

	// 3 leaves by another session's change and comes back as UID 5.
	o.OK("UID STORE 3 +FLAGS.SILENT (\\Seen)")
	o.OK("UID STORE 3 -FLAGS.SILENT (\\Seen)")
	u = d.OK(fmt.Sprintf("EXAMINE Unread (QRESYNC (%s %d 1:4))", uv, h0))
	imaptest.Expect(t, append(only(u, "VANISHED"), only(u, "FETCH")...),
		"* VANISHED (EARLIER) 1,3", `* 1 FETCH (UID 2 FLAGS (\Flagged) MODSEQ (0))`)
	u = d.OK(fmt.Sprintf("EXAMINE Unread (QRESYNC (%s %d))", uv, h0))
	imaptest.Expect(t, append(only(u, "VANISHED"), only(u, "FETCH")...),
		"* VANISHED (EARLIER) 1,3", `* 1 FETCH (UID 2 FLAGS (\Flagged) MODSEQ (0))`, `* 3 FETCH (UID 5 FLAGS (\Recent) MODSEQ (0))`)
	imaptest.Expect(t, c.OK("NOOP"), "* VANISHED 3", "* 3 EXISTS")
}

// Tombstones pruned under a selected session (an expunge_horizon shorter
// than the session's last read): it cannot know what it missed, so BYE;
// a new SELECT starts above the pruned history and is not told so again.
//
// The expunge is made by another process: one made through this process
// continues the mailbox's shared record (sharedpoll.go), from which the
// session may learn it exactly, without reading the pruned tombstones
// (then "* 2 EXPUNGE" is the right answer, and it was this test's flake
// under the full suite's load). From another process, the session learns
// of it only by reading the store, once the notification arrived: until
// then NOOP answers nothing, after it BYE, and never EXPUNGE.
func TestQresyncPrunedSession(t *testing.T) {
	e := newEnv(t)
	for i := range 3 {
		e.deliver("INBOX", testMsg(fmt.Sprint("m", i)), store.Flags{})
	}
	other, err := store.Open(t.Context(), e.st.Pool().Config().ConnString(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	c := e.dial()
	c.OK("SELECT INBOX")
	ib, err := other.Mailbox(t.Context(), e.user.ID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.StoreFlags(t.Context(), ib.Box(), []uint32{2}, store.FlagsAdd, store.Flags{Deleted: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Expunge(t.Context(), ib.Box(), []uint32{2}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.PruneExpunges(context.Background(), time.Now().Add(time.Hour), 100); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for n := 0; ; n++ {
		tag := fmt.Sprint("n", n)
		c.Send(tag + " NOOP")
		r, err := c.Read()
		if err != nil {
			t.Fatalf("NOOP after the pruning: %v, want BYE", err)
		}
		if r.Status == "BYE" {
			break
		}
		if r.Tag != tag || r.Status != "OK" {
			t.Fatalf("NOOP after the pruning: %s, want BYE (or nothing before the notification)", r)
		}
		if time.Now().After(deadline) {
			t.Fatal("no BYE within 10s of the pruning")
		}
		time.Sleep(5 * time.Millisecond)
	}
	d := e.dial()
	d.OK("SELECT INBOX")
	imaptest.Expect(t, d.OK("NOOP"))
	imaptest.Expect(t, d.OK("UID FETCH 1:* (UID)"), "* 1 FETCH (UID 1)", "* 2 FETCH (UID 3)")
}
