package imapd

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"decimail/internal/imaptest"
	"decimail/server/store"
)

var (
	modseqRe = regexp.MustCompile(`MODSEQ \(?(\d+)\)?`)
	hmsRe    = regexp.MustCompile(`HIGHESTMODSEQ (\d+)`)
)

// modseqs returns the MODSEQ of each FETCH response by sequence number.
func modseqs(t *testing.T, rs []*imaptest.Resp) map[uint32]int64 {
	t.Helper()
	out := map[uint32]int64{}
	for _, r := range rs {
		if r.Name() != "FETCH" {
			continue
		}
		m := modseqRe.FindStringSubmatch(r.String())
		if m == nil {
			t.Fatalf("no MODSEQ in %s", r)
		}
		seq, _ := strconv.ParseUint(r.Data[0].S, 10, 32)
		out[uint32(seq)], _ = strconv.ParseInt(m[1], 10, 64)
	}
	return out
}

// hms is the mailbox's HIGHESTMODSEQ as the store reports it.
func hms(t *testing.T, e *testEnv, mb store.Mailbox) int64 {
	t.Helper()
	h, err := e.st.HighestModSeq(t.Context(), mb.Box())
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// highest returns the HIGHESTMODSEQ of the responses (a SELECT's code or
// a STATUS item), failing if there is none.
func highest(t *testing.T, rs []*imaptest.Resp) int64 {
	t.Helper()
	for _, r := range rs {
		if m := hmsRe.FindStringSubmatch(r.String()); m != nil {
			n, _ := strconv.ParseInt(m[1], 10, 64)
			return n
		}
	}
	t.Fatalf("no HIGHESTMODSEQ in %v", rs)
	return 0
}

// The CONDSTORE basics on a folder: HIGHESTMODSEQ is "the highest
// mod-sequence value of all messages in the mailbox" (rfc7162.txt:439-444);
// a STORE gives the message a mod-sequence above it (rfc7162.txt:274-295),
// reported in the STORE's FETCH response; with CHANGEDSINCE data is "only
// returned for messages that have a mod-sequence bigger than" it
// (rfc7162.txt:871-878); SEARCH MODSEQ finds it with "the highest
// mod-sequence for all messages being returned" (rfc7162.txt:1077-1083),
// STATUS reports the same HIGHESTMODSEQ (rfc7162.txt:1131-1137).
func TestCondstoreFolder(t *testing.T) {
	e := newEnv(t)
	for i := range 3 {
		e.deliver("INBOX", testMsg(fmt.Sprint("m", i)), store.Flags{})
	}
	c := e.dial()
	caps := c.OK("CAPABILITY")[0].String()
	if !strings.Contains(caps, " CONDSTORE") {
		t.Fatalf("CONDSTORE not advertised: %s", caps)
	}
	h0 := highest(t, c.OK("SELECT INBOX (CONDSTORE)"))
	ms := modseqs(t, c.OK("FETCH 1:* (MODSEQ)"))
	if len(ms) != 3 || slices.Max(slicesOf(ms)) != h0 {
		t.Fatalf("MODSEQs %v, HIGHESTMODSEQ %d: want 3 with the highest equal to it", ms, h0)
	}
	u := c.OK("STORE 2 +FLAGS (\\Seen)")
	imaptest.Expect(t, u, fmt.Sprintf(`* 2 FETCH (FLAGS (\Seen \Recent) MODSEQ (%d))`, modseqs(t, u)[2]))
	m2 := modseqs(t, u)[2]
	if m2 <= h0 {
		t.Fatalf("MODSEQ after STORE %d, not above HIGHESTMODSEQ %d", m2, h0)
	}
	// "Setting a flag that is already set" does not change the
	// mod-sequence (rfc7162.txt:312-314).
	if again := modseqs(t, c.OK("STORE 2 +FLAGS (\\Seen)"))[2]; again != m2 {
		t.Errorf("+FLAGS of a set flag moved MODSEQ %d -> %d", m2, again)
	}
	imaptest.Expect(t, c.OK(fmt.Sprintf("UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d)", h0)),
		fmt.Sprintf(`* 2 FETCH (UID 2 FLAGS (\Seen \Recent) MODSEQ (%d))`, m2))
	imaptest.Expect(t, c.OK(fmt.Sprintf("FETCH 1:* (FLAGS) (CHANGEDSINCE %d)", m2)))
	imaptest.Expect(t, c.OK(fmt.Sprintf("SEARCH MODSEQ %d", h0+1)), fmt.Sprintf("* SEARCH 2 (MODSEQ %d)", m2))
	imaptest.Expect(t, c.OK(fmt.Sprintf(`SEARCH MODSEQ "/flags/\\Seen" all %d`, m2+1)), "* SEARCH")
	u, done := c.DoTag("e1", "SEARCH RETURN (ALL) MODSEQ 1")
	if done.Status != "OK" {
		t.Fatal(done)
	}
	imaptest.Expect(t, u, fmt.Sprintf(`* ESEARCH (TAG "e1") ALL 1:3 MODSEQ %d`, m2))
	if h := highest(t, c.OK("STATUS INBOX (HIGHESTMODSEQ)")); h != m2 {
		t.Errorf("STATUS HIGHESTMODSEQ %d, want %d", h, m2)
	}
}

func slicesOf(m map[uint32]int64) []int64 {
	var out []int64
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// Two sessions: one changes flags, the other, CONDSTORE-aware, is told
// with the new MODSEQ and the UID (the server "sends an unsolicited FETCH
// response", and "MUST automatically include both UID and mod-sequence
// data", rfc7162.txt:943-949, 1421-1430); a
// session that is not aware gets FLAGS alone. HIGHESTMODSEQ never goes
// backwards.
func TestCondstoreOtherSessionSeesModSeq(t *testing.T) {
	e := newEnv(t)
	e.deliver("INBOX", testMsg("one"), store.Flags{})
	e.deliver("INBOX", testMsg("two"), store.Flags{})
	c1, c2, c3 := e.dial(), e.dial(), e.dial()
	imaptest.Expect(t, c1.OK("ENABLE CONDSTORE"), "* ENABLED CONDSTORE")
	h0 := highest(t, c1.OK("SELECT INBOX"))
	c2.OK("SELECT INBOX")
	c3.OK("SELECT INBOX")
	m := modseqs(t, c2.OK("STORE 2 +FLAGS.SILENT (\\Flagged)"))[2] // c2 enables CONDSTORE with the FETCH MODSEQ below
	if m != 0 {
		t.Fatalf("c2 is not CONDSTORE-aware, yet got a MODSEQ")
	}
	u := c1.OK("NOOP")
	ms := modseqs(t, u)[2]
	imaptest.Expect(t, u, fmt.Sprintf(`* 2 FETCH (UID 2 FLAGS (\Flagged \Recent) MODSEQ (%d))`, ms))
	if ms <= h0 {
		t.Fatalf("MODSEQ %d of the change is not above HIGHESTMODSEQ %d", ms, h0)
	}
	imaptest.Expect(t, c3.OK("NOOP"), `* 2 FETCH (FLAGS (\Flagged))`)
	// c2's first enabling command with a mailbox selected reports its
	// HIGHESTMODSEQ first ("A first CONDSTORE enabling command executed in
	// the session with a mailbox selected", rfc7162.txt:402-407).
	u = c2.OK("FETCH 2 (MODSEQ)")
	imaptest.Expect(t, u, fmt.Sprintf("* OK [HIGHESTMODSEQ %d] highest mod-sequence", ms), fmt.Sprintf("* 2 FETCH (MODSEQ (%d))", ms))
	// Now c2 gets MODSEQ in its STORE responses, even .SILENT.
	u = c2.OK("STORE 1 +FLAGS.SILENT (\\Seen)")
	m1 := modseqs(t, u)[1]
	imaptest.Expect(t, u, fmt.Sprintf("* 1 FETCH (MODSEQ (%d))", m1))
	if m1 <= ms {
		t.Fatalf("second STORE's MODSEQ %d not above the first's %d", m1, ms)
	}
	imaptest.Expect(t, c1.OK("NOOP"), fmt.Sprintf(`* 1 FETCH (UID 1 FLAGS (\Seen \Recent) MODSEQ (%d))`, m1))
	if h := highest(t, c1.OK("SELECT INBOX")); h != m1 {
		t.Fatalf("HIGHESTMODSEQ after reselect %d, want %d", h, m1)
	}
}

// UNCHANGEDSINCE: the test and the change are atomic (rfc7162.txt:543-569).
// Sessions that all read a message's MODSEQ race to change it on that
// condition: exactly one wins, the others get MODIFIED with its number,
// and the flags show only the winner's keyword.
func TestCondstoreUnchangedSinceRace(t *testing.T) {
	e := newEnv(t)
	e.deliver("INBOX", testMsg("one"), store.Flags{})
	e.deliver("INBOX", testMsg("two"), store.Flags{})
	const n = 6
	cs := make([]*imaptest.TestClient, n)
	var m int64
	for i := range cs {
		cs[i] = e.dial()
		cs[i].OK("SELECT INBOX (CONDSTORE)")
		m = modseqs(t, cs[i].OK("FETCH 2 (MODSEQ)"))[2]
	}
	type result struct {
		u    []*imaptest.Resp
		done *imaptest.Resp
	}
	res := make([]result, n)
	var wg sync.WaitGroup
	for i := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i].u, res[i].done = cs[i].Do(fmt.Sprintf("STORE 1:2 (UNCHANGEDSINCE %d) +FLAGS.SILENT (kw%d)", m, i))
		}()
	}
	wg.Wait()
	winners := 0
	for i, r := range res {
		if r.done.Status != "OK" {
			t.Fatalf("session %d: %s", i, r.done)
		}
		switch code := strings.Join(tokStrings(r.done.Code), " "); code {
		case "":
			winners++
			if ms := modseqs(t, r.u); len(ms) != 2 || ms[2] <= m {
				t.Errorf("winner %d: responses %v, want MODSEQ of both messages, message 2's above %d", i, r.u, m)
			}
		case "MODIFIED 1:2": // the winner changed both
		default:
			t.Errorf("session %d: code %q, want none or MODIFIED 2", i, code)
		}
	}
	if winners != 1 {
		t.Fatalf("%d sessions passed the UNCHANGEDSINCE test, want 1", winners)
	}
	u := cs[0].OK("FETCH 2 (FLAGS)")
	if f := u[len(u)-1].String(); strings.Count(f, "kw") != 1 {
		t.Fatalf("message 2 after the race: %s, want one keyword", f)
	}
	// UNCHANGEDSINCE 0 always fails (rfc7162.txt:640-642); UID STORE
	// reports UIDs.
	_, done := cs[0].Do("UID STORE 1 (UNCHANGEDSINCE 0) +FLAGS.SILENT ($MDNSent)")
	if code := strings.Join(tokStrings(done.Code), " "); done.Status != "OK" || code != "MODIFIED 1" {
		t.Fatalf("UNCHANGEDSINCE 0: %s, want OK [MODIFIED 1]", done)
	}
}

func tokStrings(ts []imaptest.Tok) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.S)
	}
	return out
}

// A view's mod-sequences: a message entering it (a flag change elsewhere)
// gets a MODSEQ above the view's HIGHESTMODSEQ, leaving is a modseq'd
// event (the tombstone raises HIGHESTMODSEQ), and re-entering gives a new
// UID with a MODSEQ above everything before: the server "generates a new
// modification sequence that is higher than the highest" (rfc7162.txt:316-320).
// HIGHESTMODSEQ, "the highest mod-sequence value of all messages in the
// mailbox" (rfc7162.txt:439-444), never goes backwards.
func TestCondstoreView(t *testing.T) {
	e := newEnv(t)
	e.deliver("INBOX", testMsg("one"), store.Flags{Seen: true})
	e.deliver("INBOX", testMsg("two"), store.Flags{})
	if _, err := e.st.DefineMailbox(context.Background(), e.user.ID, "Unread", "UNSEEN"); err != nil {
		t.Fatal(err)
	}
	v, f, st := e.dial(), e.dial(), e.dial()
	h := highest(t, v.OK("SELECT Unread (CONDSTORE)"))
	f.OK("SELECT INBOX")
	check := func(what string) int64 {
		t.Helper()
		hs := highest(t, st.OK("STATUS Unread (HIGHESTMODSEQ)"))
		if hs < h {
			t.Fatalf("%s: HIGHESTMODSEQ went back from %d to %d", what, h, hs)
		}
		h = hs
		return hs
	}
	check("start")
	// Message 1 enters the view.
	f.OK("STORE 1 -FLAGS.SILENT (\\Seen)")
	h1 := check("enter")
	u := v.OK("NOOP")
	imaptest.Expect(t, u, "* 2 EXISTS", "* 2 RECENT")
	ms := modseqs(t, v.OK("UID FETCH 1:* (MODSEQ)"))
	if ms[2] != h1 || ms[2] <= ms[1] {
		t.Fatalf("view MODSEQs %v after entry, HIGHESTMODSEQ %d: the entered message must hold the highest", ms, h1)
	}
	// It leaves: a tombstone raises HIGHESTMODSEQ.
	f.OK("STORE 1 +FLAGS.SILENT (\\Seen)")
	if h2 := check("leave"); h2 <= h1 {
		t.Fatalf("leaving the view did not raise HIGHESTMODSEQ (%d -> %d)", h1, h2)
	}
	imaptest.Expect(t, v.OK("NOOP"), "* 2 EXPUNGE")
	// Re-entering: a new UID, MODSEQ above everything reported.
	f.OK("STORE 1 -FLAGS.SILENT (\\Seen)")
	h3 := check("re-enter")
	imaptest.Expect(t, v.OK("NOOP"), "* 2 EXISTS", "* 2 RECENT")
	u = v.OK(fmt.Sprintf("UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d)", h1))
	imaptest.Expect(t, u, fmt.Sprintf(`* 2 FETCH (UID 3 FLAGS (\Recent) MODSEQ (%d))`, h3))
	// A change of the view's own: the STORE's MODSEQ is the new HIGHESTMODSEQ.
	m := modseqs(t, v.OK("UID STORE 3 +FLAGS (\\Flagged)"))[2]
	if h4 := check("flag in view"); m != h4 || m <= h3 {
		t.Fatalf("STORE in the view: MODSEQ %d, HIGHESTMODSEQ %d (before %d)", m, h4, h3)
	}
}

// The off-switch: imapd_disable CONDSTORE takes the capability, its
// modifiers, items and keys away (BAD) and [CLOSED] with them.
func TestCondstoreDisabled(t *testing.T) {
	e := newEnv(t)
	e.deliver("INBOX", testMsg("one"), store.Flags{})
	_, addr := e.serve(Config{Disabled: map[string]bool{"CONDSTORE": true}})
	c := e.dialAddr(addr)
	c.OK("LOGIN u pw")
	if caps := c.OK("CAPABILITY")[0].String(); strings.Contains(caps, "CONDSTORE") {
		t.Fatalf("CONDSTORE advertised: %s", caps)
	}
	imaptest.Expect(t, c.OK("ENABLE CONDSTORE"), "* ENABLED")
	for _, cmd := range []string{"SELECT INBOX (CONDSTORE)", "STATUS INBOX (HIGHESTMODSEQ)"} {
		if _, done := c.Do(cmd); done.Status != "BAD" {
			t.Errorf("%s: %s, want BAD", cmd, done)
		}
	}
	c.OK("SELECT INBOX")
	for _, cmd := range []string{"FETCH 1 (MODSEQ)", "FETCH 1 (FLAGS) (CHANGEDSINCE 1)", "STORE 1 (UNCHANGEDSINCE 5) +FLAGS (x)", "SEARCH MODSEQ 1"} {
		if _, done := c.Do(cmd); done.Status != "BAD" {
			t.Errorf("%s: %s, want BAD", cmd, done)
		}
	}
	u := c.OK("EXAMINE INBOX")
	for _, r := range u {
		if strings.Contains(r.String(), "CLOSED") || strings.Contains(r.String(), "HIGHESTMODSEQ") {
			t.Errorf("EXAMINE without CONDSTORE: %s", r)
		}
	}
}

// Syntax: store-modifier, chgsince-fetch-mod, mod-sequence-value and
// mod-sequence-valzer (rfc7162.txt:2471-2473, 2479-2481, 2550, 2555).
func TestCondstoreSyntax(t *testing.T) {
	e := newEnv(t)
	e.deliver("INBOX", testMsg("one"), store.Flags{})
	c := e.dial()
	c.OK("SELECT INBOX")
	for _, cmd := range []string{
		"FETCH 1 (FLAGS) (CHANGEDSINCE x)", "FETCH 1 (FLAGS) (FOO 1)",
		"FETCH 1 (FLAGS) (CHANGEDSINCE 9223372036854775808)", "STORE 1 (UNCHANGEDSINCE -1) +FLAGS (x)",
		"SEARCH MODSEQ", `SEARCH MODSEQ "/flags/\\Seen" 5`, `SEARCH MODSEQ "/other" all 5`, "SELECT INBOX (FOO)",
	} {
		if _, done := c.Do(cmd); done.Status != "BAD" {
			t.Errorf("%s: %s, want BAD", cmd, done)
		}
	}
}

// A mailbox that never held a message still reports a mod-sequence-value,
// "1 <= n" (rfc7162.txt:2504, 2550-2553), the same in STATUS.
func TestCondstoreEmptyMailbox(t *testing.T) {
	e := newEnv(t)
	c := e.dial()
	c.OK("CREATE Empty")
	if h := highest(t, c.OK("STATUS Empty (HIGHESTMODSEQ)")); h != 1 {
		t.Errorf("STATUS HIGHESTMODSEQ of an empty mailbox: %d, want 1", h)
	}
	if h := highest(t, c.OK("SELECT Empty (CONDSTORE)")); h != 1 {
		t.Errorf("SELECT HIGHESTMODSEQ of an empty mailbox: %d, want 1", h)
	}
}

// A plain SELECT or EXAMINE reports HIGHESTMODSEQ while CONDSTORE is
// advertised: "When opening a mailbox ... the server MUST send an OK
// untagged response, including the HIGHESTMODSEQ response code"
// (rfc7162.txt:422-428; Example 1 answers "A142 SELECT INBOX" with
// "[HIGHESTMODSEQ 715194045007]", rfc7162.txt:476-487); Thunderbird 153
// uses CONDSTORE only then. The session is not CONDSTORE-aware by it: the
// server "MUST then include mod-sequence data" only after an enabling
// command (rfc7162.txt:388-400), so its STORE answers carry no MODSEQ.
// Switched off for the user (imapd_disable:<user> CONDSTORE), SELECT has
// none.
func TestCondstorePlainSelectReportsHighestModSeq(t *testing.T) {
	e := newEnv(t)
	e.deliver("INBOX", testMsg("one"), store.Flags{})
	e.deliver("INBOX", testMsg("two"), store.Flags{})
	c := e.dial()
	h := highest(t, c.OK("SELECT INBOX"))
	if hs := highest(t, e.dial().OK("STATUS INBOX (HIGHESTMODSEQ)")); h != hs {
		t.Fatalf("plain SELECT: HIGHESTMODSEQ %d, STATUS says %d", h, hs)
	}
	imaptest.Expect(t, c.OK("STORE 1 +FLAGS (\\Seen)"), `* 1 FETCH (FLAGS (\Seen \Recent))`)
	if h2 := highest(t, c.OK("EXAMINE INBOX")); h2 <= h {
		t.Fatalf("EXAMINE after a STORE: HIGHESTMODSEQ %d, not above %d", h2, h)
	}

	_, addr := e.serve(Config{PerUserDisabled: func(string) map[string]bool { return map[string]bool{"CONDSTORE": true} }})
	c = e.dialAddr(addr)
	c.OK("LOGIN u pw")
	for _, cmd := range []string{"SELECT INBOX", "EXAMINE INBOX"} {
		for _, r := range c.OK(cmd) {
			if strings.Contains(r.String(), "HIGHESTMODSEQ") {
				t.Errorf("%s with CONDSTORE off for the user: %s", cmd, r)
			}
		}
	}
}

// CHANGEDSINCE 0 is every message, not BAD: data is "only returned for
// messages that have a mod-sequence bigger than" it (rfc7162.txt:871-875),
// and each has one above 0, though chgsince-fetch-mod names a
// mod-sequence-value (rfc7162.txt:2479-2481, 2550-2553): Thunderbird 153
// sends "UID fetch 1:* (FLAGS) (CHANGEDSINCE 0)" after resetting a
// folder's HIGHESTMODSEQ (README, client workarounds).
func TestCondstoreChangedSinceZero(t *testing.T) {
	e := newEnv(t)
	e.deliver("INBOX", testMsg("one"), store.Flags{})
	e.deliver("INBOX", testMsg("two"), store.Flags{Seen: true})
	c := e.dial()
	c.OK("SELECT INBOX")
	u := c.OK("UID FETCH 1:* (FLAGS) (CHANGEDSINCE 0)")
	ms := modseqs(t, u)
	if len(ms) != 2 || ms[1] == 0 || ms[2] == 0 {
		t.Fatalf("CHANGEDSINCE 0: MODSEQs %v, want both messages", ms)
	}
	// "A first CONDSTORE enabling command executed in the session with a
	// mailbox selected" repeats its HIGHESTMODSEQ, though the SELECT
	// reported it (rfc7162.txt:402-407).
	imaptest.Expect(t, u, fmt.Sprintf("* OK [HIGHESTMODSEQ %d] highest mod-sequence", ms[2]),
		fmt.Sprintf(`* 1 FETCH (UID 1 FLAGS (\Recent) MODSEQ (%d))`, ms[1]),
		fmt.Sprintf(`* 2 FETCH (UID 2 FLAGS (\Seen \Recent) MODSEQ (%d))`, ms[2]))
}
