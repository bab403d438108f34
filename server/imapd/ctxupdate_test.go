package imapd

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"decimail/internal/imaptest"
	"decimail/server/query"
	"decimail/server/store"
)

// RFC 5267 §4.3: SEARCH and UID SEARCH with RETURN (UPDATE) send ADDTO and
// REMOVEFROM as the result changes: flag changes by another session and by
// this one, new messages (after their EXISTS), expunges (before their
// EXPUNGE, numbered while the numbers are valid); in UIDs or sequence
// numbers as the command asked; context position 0 in mailbox order.
func TestContextUpdateSearch(t *testing.T) {
	e := newEnv(t)
	e.deliver("INBOX", testMsg("one"), store.Flags{Seen: true})
	e.deliver("INBOX", testMsg("two"), store.Flags{})
	e.deliver("INBOX", testMsg("three"), store.Flags{})
	a, b := e.dial(), e.dial()
	a.OK("SELECT INBOX")
	b.OK("SELECT INBOX")
	do := func(tag, cmd string, want ...string) { t.Helper(); expectTagged(t, a, tag, cmd, want...) }
	do("u1", "UID SEARCH RETURN (UPDATE ALL) UNSEEN", `* ESEARCH (TAG "u1") UID ALL 2:3`)
	do("s1", "SEARCH RETURN (UPDATE COUNT) UNSEEN", `* ESEARCH (TAG "s1") COUNT 2`)

	// Another session's flag change: with the FETCH.
	b.OK(`STORE 2 +FLAGS (\Seen)`)
	do("n1", "NOOP", `* 2 FETCH (FLAGS (\Seen \Recent))`,
		`* ESEARCH (TAG "u1") UID REMOVEFROM (0 2)`, `* ESEARCH (TAG "s1") REMOVEFROM (0 2)`)

	// New messages: the ADDTO after the EXISTS.
	e.deliver("INBOX", testMsg("four"), store.Flags{})
	e.deliver("INBOX", testMsg("five"), store.Flags{Seen: true})
	do("n2", "NOOP", `* 5 EXISTS`, `* 5 RECENT`, `* ESEARCH (TAG "u1") UID ADDTO (0 4)`, `* ESEARCH (TAG "s1") ADDTO (0 4)`)

	// This session's own STORE: in the post-command poll.
	do("t1", `STORE 1,5 -FLAGS (\Seen)`, `* 1 FETCH (FLAGS (\Recent))`, `* 5 FETCH (FLAGS (\Recent))`,
		`* ESEARCH (TAG "u1") UID ADDTO (0 1,5)`, `* ESEARCH (TAG "s1") ADDTO (0 1,5)`)

	// An expunge: REMOVEFROM first, with the numbers before the EXPUNGE.
	b.OK(`STORE 3 +FLAGS (\Deleted)`)
	b.OK("EXPUNGE")
	do("n3", "NOOP", `* ESEARCH (TAG "u1") UID REMOVEFROM (0 3)`, `* ESEARCH (TAG "s1") REMOVEFROM (0 3)`, `* 3 EXPUNGE`)
	do("s2", "SEARCH RETURN (ALL) UNSEEN", `* ESEARCH (TAG "s2") ALL 1,3:4`) // what the updates said: 1,5,4 then 3 expunged

	// CANCELUPDATE: "s1" stops, "u1" goes on.
	if _, done := a.Do(`CANCELUPDATE "nope"`); done.Status != "NO" {
		t.Errorf("CANCELUPDATE of an unknown tag: %s", done)
	}
	if _, done := a.Do(`CANCELUPDATE s1`); done.Status != "BAD" {
		t.Errorf("CANCELUPDATE with an atom: %s", done)
	}
	do("c1", `CANCELUPDATE "s1"`)
	b.OK(`STORE 1 +FLAGS (\Seen)`)
	do("n4", "NOOP", `* 1 FETCH (FLAGS (\Seen \Recent))`, `* ESEARCH (TAG "u1") UID REMOVEFROM (0 1)`)

	// A tag in use by a search with UPDATE is BAD for another one
	// ("rejecting the searching command with a BAD response",
	// rfc5267.txt:304-309); "s1" is free again.
	if _, done := a.DoTag("u1", "SEARCH RETURN (UPDATE) ALL"); done.Status != "BAD" {
		t.Errorf("tag reuse: %s", done)
	}
	do("s1", "SEARCH RETURN (UPDATE MIN) DELETED", `* ESEARCH (TAG "s1")`)
	do("s1x", `CANCELUPDATE "s1" "u1"`)
	b.OK(`STORE 1:* -FLAGS (\Seen)`)
	do("n5", "NOOP", `* 1 FETCH (FLAGS (\Recent))`, `* 2 FETCH (FLAGS (\Recent))`) // no ESEARCH: both cancelled
}

// SORT and UID SORT with UPDATE: the positions are those in sort order;
// a message leaving and another one entering in one batch is REMOVEFROM
// then ADDTO, each pair at its position counted after the pairs before.
func TestContextUpdateSort(t *testing.T) {
	e := newEnv(t)
	for i, n := range []int{300, 100, 400, 200} { // sizes of UIDs 1..4
		e.deliver("INBOX", sized(string(rune('a'+i)), n), store.Flags{})
	}
	a, b := e.dial(), e.dial()
	a.OK("SELECT INBOX")
	b.OK("SELECT INBOX")
	do := func(tag, cmd string, want ...string) { t.Helper(); expectTagged(t, a, tag, cmd, want...) }
	do("o1", "UID SORT RETURN (UPDATE ALL) (SIZE) UTF-8 UNSEEN", `* ESEARCH (TAG "o1") UID ALL 2,4,1,3`)
	do("o2", "SORT RETURN (UPDATE COUNT) (REVERSE SIZE) UTF-8 UNSEEN", `* ESEARCH (TAG "o2") COUNT 4`)
	// 2,4,1,3 without 4 and 1: one run at position 2; reversed 3,1,4,2:
	// one run at position 2 too.
	b.OK(`STORE 1,4 +FLAGS (\Seen)`)
	do("n1", "NOOP", `* 1 FETCH (FLAGS (\Seen \Recent))`, `* 4 FETCH (FLAGS (\Seen \Recent))`,
		`* ESEARCH (TAG "o1") UID REMOVEFROM (2 4,1)`, `* ESEARCH (TAG "o2") REMOVEFROM (2 1,4)`)
	// New: 5 (250) and 6 (50): 6,2,5,3 (and 3,5,2,6).
	e.deliver("INBOX", sized("e", 250), store.Flags{})
	e.deliver("INBOX", sized("f", 50), store.Flags{})
	do("n2", "NOOP", `* 6 EXISTS`, `* 6 RECENT`,
		`* ESEARCH (TAG "o1") UID ADDTO (1 6 3 5)`, `* ESEARCH (TAG "o2") ADDTO (2 5 4 6)`)
	// 3 leaves, 1 (300) enters: 6,2,5,1 (and 1,5,2,6).
	b.OK(`STORE 3 +FLAGS (\Seen)`)
	b.OK(`STORE 1 -FLAGS (\Seen)`)
	do("n3", "NOOP", `* 1 FETCH (FLAGS (\Recent))`, `* 3 FETCH (FLAGS (\Seen \Recent))`,
		`* ESEARCH (TAG "o1") UID REMOVEFROM (4 3) ADDTO (4 1)`, `* ESEARCH (TAG "o2") REMOVEFROM (1 3) ADDTO (1 1)`)
	// An expunge: REMOVEFROM before EXPUNGE in sequence numbers; the UID
	// context's REMOVEFROM too.
	b.OK(`STORE 2 +FLAGS (\Deleted)`)
	b.OK("EXPUNGE")
	do("n4", "NOOP", `* ESEARCH (TAG "o1") UID REMOVEFROM (2 2)`, `* ESEARCH (TAG "o2") REMOVEFROM (3 2)`, `* 2 EXPUNGE`)
	do("s1", "SORT RETURN () (SIZE) UTF-8 UNSEEN", `* ESEARCH (TAG "s1") ALL 5,4,1`)
	do("s2", "UID SORT RETURN () (SIZE) UTF-8 UNSEEN", `* ESEARCH (TAG "s2") UID ALL 6,5,1`)
	// Two runs apart (UIDs 6 and 1 of 6,5,1): the second position counts
	// after the first run left (REMOVEFROM) or is its final one (ADDTO).
	b.OK(`UID STORE 1,6 +FLAGS (\Seen)`)
	do("n5", "NOOP", `* 1 FETCH (FLAGS (\Seen \Recent))`, `* 5 FETCH (FLAGS (\Seen \Recent))`,
		`* ESEARCH (TAG "o1") UID REMOVEFROM (1 6 2 1)`, `* ESEARCH (TAG "o2") REMOVEFROM (1 1 2 5)`)
	b.OK(`UID STORE 1,6 -FLAGS (\Seen)`)
	do("n6", "NOOP", `* 1 FETCH (FLAGS (\Recent))`, `* 5 FETCH (FLAGS (\Recent))`,
		`* ESEARCH (TAG "o1") UID ADDTO (1 6 3 1)`, `* ESEARCH (TAG "o2") ADDTO (1 1 3 5)`)
}

// A general program (a text key: the store evaluates it, by UID, for the
// messages that changed) updated from another server process (a second
// Store on the same database), while the client idles.
func TestContextUpdateOtherProcess(t *testing.T) {
	e := newEnv(t)
	e.deliver("INBOX", testMsg("hello one"), store.Flags{})
	e.deliver("INBOX", testMsg("other"), store.Flags{})
	other, err := store.Open(t.Context(), e.st.Pool().Config().ConnString(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	_, addr2 := (&testEnv{t: t, st: other, user: e.user}).serve(Config{AuthFailDelay: time.Millisecond})
	a := e.dial()
	a.OK("SELECT INBOX")
	got, _ := a.DoTag("h1", "UID SEARCH RETURN (ALL UPDATE) SUBJECT hello UNFLAGGED")
	imaptest.Expect(t, got, `* ESEARCH (TAG "h1") UID ALL 1`)
	a.Send("i1 IDLE")
	if r := a.Next(); r.Tag != "+" {
		t.Fatalf("IDLE: %s", r)
	}
	b := (&testEnv{t: t, st: other, user: e.user}).dialAddr(addr2)
	b.OK("LOGIN u pw")
	b.OK("SELECT INBOX")
	b.OK(`STORE 1 +FLAGS (\Flagged)`)
	a.Expect(`* 1 FETCH (FLAGS (\Flagged \Recent))`, `* ESEARCH (TAG "h1") UID REMOVEFROM (0 1)`)
	for i := range 2 {
		if _, err := other.Deliver(t.Context(), e.user.ID, []byte(testMsg(fmt.Sprint("hello new", i))), store.DeliverOptions{}); err != nil {
			t.Fatal(err)
		}
		a.Expect(fmt.Sprintf("* %d EXISTS", i+3), fmt.Sprintf("* %d RECENT", i+3), fmt.Sprintf(`* ESEARCH (TAG "h1") UID ADDTO (0 %d)`, i+3))
	}
	b.OK(`STORE 1 -FLAGS (\Flagged)`)
	a.Expect(`* 1 FETCH (FLAGS (\Recent))`, `* ESEARCH (TAG "h1") UID ADDTO (0 1)`)
	a.Send("DONE")
	_, done := a.Until("i1")
	imaptest.ExpectDone(t, done, "OK IDLE completed")
}

// The limits: at most maxUpdateContexts at once; beyond, the other options
// are answered and "* NO [NOUPDATE "tag"]" refuses the updates
// (rfc5267.txt:361-368). Updates end "when the mailbox is no longer
// selected" (rfc5267.txt:319-321). PARTIAL does not limit them ("the
// UPDATE will provide notifications for all matching results",
// rfc5267.txt:574-578), and SAVE's "$" is not updated.
func TestContextUpdateLimitsAndEnd(t *testing.T) {
	e := newEnv(t)
	e.deliver("INBOX", testMsg("one"), store.Flags{})
	e.deliver("INBOX", testMsg("two"), store.Flags{})
	a, b := e.dial(), e.dial()
	a.OK("SELECT INBOX")
	b.OK("SELECT INBOX")
	for i := range maxUpdateContexts {
		tag := fmt.Sprint("c", i)
		got, _ := a.DoTag(tag, "SEARCH RETURN (UPDATE COUNT) ALL")
		imaptest.Expect(t, got, fmt.Sprintf(`* ESEARCH (TAG "%s") COUNT 2`, tag))
	}
	got, done := a.DoTag("over", "SEARCH RETURN (UPDATE COUNT) ALL")
	imaptest.ExpectDone(t, done, "OK SEARCH completed")
	imaptest.Expect(t, got, `* ESEARCH (TAG "over") COUNT 2`,
		fmt.Sprintf(`* NO [NOUPDATE "over"] too many searches with UPDATE (at most %d)`, maxUpdateContexts))
	got, _ = a.DoTag("over2", "SORT RETURN (UPDATE) (SIZE) UTF-8 ALL")
	imaptest.Expect(t, got, `* ESEARCH (TAG "over2")`,
		fmt.Sprintf(`* NO [NOUPDATE "over2"] too many searches with UPDATE (at most %d)`, maxUpdateContexts))
	for i := range maxUpdateContexts {
		a.OK(fmt.Sprintf(`CANCELUPDATE "c%d"`, i))
	}
	// A program at the store's limit of search keys is answered, but its
	// updates (the program AND a UID set) would be over it.
	var prog strings.Builder
	for i := range query.DefaultMaxTerms {
		fmt.Fprintf(&prog, " SMALLER %d", 100000+i)
	}
	got, _ = a.DoTag("big", "SEARCH RETURN (UPDATE COUNT)"+prog.String())
	imaptest.Expect(t, got, `* ESEARCH (TAG "big") COUNT 2`, `* NO [NOUPDATE "big"] the program is too large to follow`)

	got, _ = a.DoTag("p1", "UID SEARCH RETURN (PARTIAL 1:1 UPDATE) ALL")
	imaptest.Expect(t, got, `* ESEARCH (TAG "p1") UID PARTIAL (1:1 1)`)
	got, _ = a.DoTag("v1", "SEARCH RETURN (SAVE UPDATE) UNSEEN")
	imaptest.Expect(t, got, `* ESEARCH (TAG "v1")`) // SAVE is not alone: an ESEARCH, with nothing in it
	e.deliver("INBOX", testMsg("three"), store.Flags{})
	imaptest.Expect(t, a.OK("NOOP"), `* 3 EXISTS`, `* 3 RECENT`, `* ESEARCH (TAG "p1") UID ADDTO (0 3)`, `* ESEARCH (TAG "v1") ADDTO (0 3)`)
	imaptest.Expect(t, a.OK("UID SEARCH $"), `* SEARCH 1 2`)

	// A new selection ends them: nothing more, the tags are free.
	a.OK("UNSELECT")
	a.OK("SELECT INBOX")
	b.OK(`STORE 1 +FLAGS (\Seen)`)
	e.deliver("INBOX", testMsg("four"), store.Flags{})
	imaptest.Expect(t, a.OK("NOOP"), `* 4 EXISTS`, `* 1 RECENT`, `* 1 FETCH (FLAGS (\Seen))`)
	got, _ = a.DoTag("p1", "UID SEARCH RETURN (UPDATE) UNSEEN")
	imaptest.Expect(t, got, `* ESEARCH (TAG "p1") UID`)
}

// Sequence numbers in an updating program are "evaluated at the time the
// command is received" (rfc5267.txt:343-346): after an expunge, 2:3 still names
// the messages it named then.
func TestContextUpdateFrozenSequence(t *testing.T) {
	e := newEnv(t)
	for _, s := range []string{"one", "two", "three", "four"} {
		e.deliver("INBOX", testMsg(s), store.Flags{})
	}
	a, b := e.dial(), e.dial()
	a.OK("SELECT INBOX")
	b.OK("SELECT INBOX")
	got, _ := a.DoTag("q1", "UID SEARCH RETURN (UPDATE ALL) 2:3 UNSEEN")
	imaptest.Expect(t, got, `* ESEARCH (TAG "q1") UID ALL 2:3`)
	b.OK(`STORE 1 +FLAGS (\Deleted)`)
	b.OK("EXPUNGE")
	imaptest.Expect(t, a.OK("NOOP"), `* 1 EXPUNGE`)
	b.OK(`STORE 1:3 +FLAGS (\Seen)`)
	imaptest.Expect(t, a.OK("NOOP"), `* 1 FETCH (FLAGS (\Seen \Recent))`, `* 2 FETCH (FLAGS (\Seen \Recent))`,
		`* 3 FETCH (FLAGS (\Seen \Recent))`, `* ESEARCH (TAG "q1") UID REMOVEFROM (0 2:3)`)
	b.OK(`STORE 3 -FLAGS (\Seen)`) // UID 4: not in 2:3 when the command was received
	imaptest.Expect(t, a.OK("NOOP"), `* 3 FETCH (FLAGS (\Recent))`)
}

// In a query mailbox (Unread): a message this session marks read stays in
// its view until a sync point (README "Own changes in a view"), and in an
// updating result that still matches it; at the sync point REMOVEFROM
// comes before its EXPUNGE. A SORT of a program the store evaluates
// (LARGER) reads the keys of the messages it adds.
func TestContextUpdateQueryMailbox(t *testing.T) {
	e := newEnv(t)
	if _, err := e.st.DefineMailbox(t.Context(), e.user.ID, "Unread", "UNSEEN"); err != nil {
		t.Fatal(err)
	}
	e.deliver("INBOX", sized("a", 300), store.Flags{})
	e.deliver("INBOX", sized("b", 100), store.Flags{})
	a := e.dial()
	a.OK("SELECT Unread")
	do := func(tag, cmd string, want ...string) { t.Helper(); expectTagged(t, a, tag, cmd, want...) }
	do("v1", "UID SEARCH RETURN (UPDATE ALL) ALL", `* ESEARCH (TAG "v1") UID ALL 1:2`)
	do("v2", "SORT RETURN (UPDATE ALL) (SIZE) UTF-8 LARGER 50", `* ESEARCH (TAG "v2") ALL 2,1`)
	do("v3", "UID SEARCH RETURN (UPDATE) UNSEEN", `* ESEARCH (TAG "v3") UID`)
	do("t1", `STORE 1 +FLAGS (\Seen)`, `* 1 FETCH (FLAGS (\Seen \Recent))`, `* ESEARCH (TAG "v3") UID REMOVEFROM (0 1)`)
	do("c1", "CHECK", `* ESEARCH (TAG "v1") UID REMOVEFROM (0 1)`, `* ESEARCH (TAG "v2") REMOVEFROM (2 1)`, `* 1 EXPUNGE`)
	e.deliver("INBOX", sized("c", 200), store.Flags{})
	e.deliver("INBOX", sized("d", 40), store.Flags{})
	do("n1", "NOOP", `* 3 EXISTS`, `* 3 RECENT`, `* ESEARCH (TAG "v1") UID ADDTO (0 3:4)`,
		`* ESEARCH (TAG "v2") ADDTO (2 2)`, `* ESEARCH (TAG "v3") UID ADDTO (0 3:4)`)
}

// An expunge and a new message in one poll, in sequence numbers: the
// REMOVEFROM numbered before the EXPUNGE, the ADDTO after the EXISTS,
// numbered after both. A batch of more than a few changes at once (one
// sort instead of an insert each) keeps the sort order.
func TestContextUpdateExpungeAndNew(t *testing.T) {
	e := newEnv(t)
	for i := range 12 {
		e.deliver("INBOX", sized(fmt.Sprint("m", i), 100+10*((i*7)%12)), store.Flags{Seen: true})
	}
	a, b := e.dial(), e.dial()
	a.OK("SELECT INBOX")
	b.OK("SELECT INBOX")
	got, _ := a.DoTag("s1", "SEARCH RETURN (UPDATE COUNT) UNSEEN")
	imaptest.Expect(t, got, `* ESEARCH (TAG "s1") COUNT 0`)
	got, _ = a.DoTag("o1", "SORT RETURN (UPDATE COUNT) (SIZE) UTF-8 UNSEEN")
	imaptest.Expect(t, got, `* ESEARCH (TAG "o1") COUNT 0`)
	b.OK(`STORE 1:* -FLAGS.SILENT (\Seen)`)
	var adds []*imaptest.Resp
	for _, r := range a.OK("NOOP") {
		if r.String()[:9] == "* ESEARCH" {
			adds = append(adds, r)
		}
	}
	imaptest.Expect(t, adds, `* ESEARCH (TAG "s1") ADDTO (0 1:12)`, `* ESEARCH (TAG "o1") ADDTO (1 1,8,3,10,5,12,7,2,9,4,11,6)`)
	imaptest.Expect(t, a.OK("SORT (SIZE) UTF-8 UNSEEN"), `* SORT 1 8 3 10 5 12 7 2 9 4 11 6`)
	b.OK(`STORE 2 +FLAGS.SILENT (\Deleted)`)
	b.OK("EXPUNGE")
	e.deliver("INBOX", sized("new", 105), store.Flags{})
	imaptest.Expect(t, a.OK("NOOP"),
		`* ESEARCH (TAG "s1") REMOVEFROM (0 2)`, `* ESEARCH (TAG "o1") REMOVEFROM (8 2)`, `* 2 EXPUNGE`,
		`* 12 EXISTS`, `* ESEARCH (TAG "s1") ADDTO (0 12)`, `* ESEARCH (TAG "o1") ADDTO (2 12)`)
}

// expectTagged sends cmd with tag on c, wants OK and the untagged
// responses want (imaptest.Expect).
func expectTagged(t *testing.T, c *imaptest.TestClient, tag, cmd string, want ...string) {
	t.Helper()
	got, done := c.DoTag(tag, cmd)
	if done.Status != "OK" {
		t.Fatalf("%s: %s", cmd, done)
	}
	imaptest.Expect(t, got, want...)
}
