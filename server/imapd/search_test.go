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

// deliverAt stores a message in a folder with an internal date.
func (e *testEnv) deliverAt(folder, raw string, f store.Flags, at time.Time) store.Delivered {
	e.t.Helper()
	d, err := e.st.Deliver(context.Background(), e.user.ID, []byte(raw), store.DeliverOptions{Mailbox: folder, Flags: f, InternalDate: at})
	if err != nil {
		e.t.Fatal(err)
	}
	return d
}

func day(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 12, 0, 0, 0, time.UTC) }

// searchFixture fills INBOX with four messages of different flags, dates,
// sizes, headers and bodies. UID 1 was expunged first, so the messages are
// seq 1-4 = UID 2-5 and UID SEARCH differs from SEARCH.
func searchFixture(t *testing.T) *testEnv {
	e := newEnv(t)
	ctx := t.Context()
	gone := e.deliver("INBOX", testMsg("gone"), store.Flags{Deleted: true})
	if _, err := e.st.Expunge(ctx, gone.Box(), nil); err != nil {
		t.Fatal(err)
	}
	e.deliverAt("INBOX", "From: Alice <alice@example.com>\r\nTo: u@example.test\r\nCc: Carol <carol@example.org>\r\n"+
		"Subject: Budget review\r\nDate: Mon, 1 Jan 2024 12:00:00 +0000\r\n\r\nThe numbers are attached.\r\n",
		store.Flags{Seen: true}, day(2024, 1, 2))
	e.deliverAt("INBOX", "From: Bob <bob@example.net>\r\nTo: u@example.test\r\nBcc: dave@example.org\r\n"+
		"Subject: Lunch\r\nDate: Sun, 15 Jun 2025 12:00:00 +0000\r\n\r\n"+strings.Repeat("long line of text\r\n", 100),
		store.Flags{Flagged: true, Answered: true}, day(2025, 6, 15))
	e.deliverAt("INBOX", "From: Alice <alice@example.com>\r\nTo: Team <team@example.com>\r\nSubject: Re: Budget review\r\n"+
		"Date: Sun, 1 Mar 2026 12:00:00 +0000\r\nX-Priority: 1\r\nContent-Type: text/plain; charset=utf-8\r\n"+
		"Content-Transfer-Encoding: 8bit\r\n\r\nTreffen in München\r\n",
		store.Flags{Deleted: true, Draft: true, Keywords: []string{"$Work"}}, day(2026, 3, 1))
	e.deliverAt("INBOX", "From: Eve <eve@example.com>\r\nTo: u@example.test\r\nSubject: hello\r\n"+
		"Date: Mon, 2 Nov 2026 12:00:00 +0000\r\n\r\nhi\r\n", store.Flags{}, day(2026, 11, 2))
	return e
}

// Every SEARCH key of RFC 3501 §6.4.4 (rfc3501.txt:2784-2951), OR/NOT and
// nesting, sequence and UID sets with "*", as SEARCH (sequence numbers) and
// UID SEARCH (UIDs = seq+1 here).
func TestSearchKeys(t *testing.T) {
	e := searchFixture(t)
	c := e.dial()
	c.OK("SELECT INBOX")
	for _, tc := range []struct{ prog, want string }{
		{"ALL", "1 2 3 4"},
		{"ANSWERED", "2"}, {"UNANSWERED", "1 3 4"},
		{"BCC dave", "2"},
		{"BEFORE 1-Mar-2026", "1 2"}, {"ON 1-Mar-2026", "3"}, {"SINCE 1-Mar-2026", "3 4"},
		{"BODY numbers", "1"}, {"BODY alice", ""},
		{"CC carol", "1"},
		{"DELETED", "3"}, {"UNDELETED", "1 2 4"},
		{"DRAFT", "3"}, {"UNDRAFT", "1 2 4"},
		{"FLAGGED", "2"}, {"UNFLAGGED", "1 3 4"},
		{"FROM alice", "1 3"}, {`FROM "ALICE@EXAMPLE"`, "1 3"},
		{"HEADER X-Priority 1", "3"}, {`HEADER X-Priority ""`, "3"}, {`HEADER X-Nothing ""`, ""},
		{"KEYWORD $Work", "3"}, {"KEYWORD $work", "3"}, {"UNKEYWORD $Work", "1 2 4"},
		{"LARGER 1000", "2"}, {"SMALLER 1000", "1 3 4"},
		{"NEW", "2 3 4"}, {"OLD", ""}, {"RECENT", "1 2 3 4"},
		{"SEEN", "1"}, {"UNSEEN", "2 3 4"},
		{"SENTBEFORE 1-Jan-2025", "1"}, {"SENTON 15-Jun-2025", "2"}, {"SENTSINCE 1-Mar-2026", "3 4"},
		{"SUBJECT budget", "1 3"},
		{"TEXT alice", "1 3"}, {"TEXT attached", "1"},
		{"TO team", "3"},
		{"UID 3:*", "2 3 4"}, {"UID *", "4"}, {"UID 99:*", "4"}, {"UID 1", ""},
		{"2,4", "2 4"}, {"*", "4"}, {"3:1", "1 2 3"}, {"2:*", "2 3 4"},
		{"OR FROM bob FROM eve", "2 4"}, {"NOT FROM alice", "2 4"},
		{"OR (SEEN FLAGGED) NOT OR DELETED DRAFT", "1 2 4"},
		{"(OR SEEN FLAGGED) UNDELETED", "1 2"},
		{"NOT (NOT (UNSEEN LARGER 100))", "2 3 4"},
		{"1:3 UID 4:5", "3"},
		{"unseen since 1-jan-2020 larger 100", "2 3 4"},
	} {
		t.Run(tc.prog, func(t *testing.T) {
			imaptest.Expect(t, c.OK("SEARCH "+tc.prog), strings.TrimSpace("* SEARCH "+tc.want))
			var uids []string
			for _, s := range strings.Fields(tc.want) {
				var n int
				fmt.Sscan(s, &n)
				uids = append(uids, fmt.Sprint(n+1))
			}
			imaptest.Expect(t, c.OK("UID SEARCH "+tc.prog), strings.TrimSpace("* SEARCH "+strings.Join(uids, " ")))
		})
	}
}

func TestSearchCharsetAndErrors(t *testing.T) {
	e := searchFixture(t)
	c := e.dial()
	c.OK("SELECT INBOX")
	// rfc3501.txt:2763-2769: US-ASCII and (here) UTF-8, case-insensitive.
	imaptest.Expect(t, c.OK("SEARCH CHARSET US-ASCII SUBJECT budget"), "* SEARCH 1 3")
	imaptest.Expect(t, c.OK("SEARCH charset utf-8 SUBJECT budget"), "* SEARCH 1 3")
	u, done := c.Do("SEARCH CHARSET UTF-8 BODY {8}\r\nMünchen")
	imaptest.Expect(t, u, "* SEARCH 3")
	imaptest.ExpectDone(t, done, "OK SEARCH completed")
	// rfc3501.txt:2771-2774: unsupported charset → NO [BADCHARSET], not BAD.
	for cmd, want := range map[string]string{
		"SEARCH CHARSET ISO-8859-1 ALL":   "NO [BADCHARSET (US-ASCII UTF-8)] *",
		"UID SEARCH CHARSET KOI8-R ALL":   "NO [BADCHARSET (US-ASCII UTF-8)] *",
		"SEARCH FROBNICATE":               "BAD *",
		"SEARCH":                          "BAD *",
		"SEARCH CHARSET":                  "BAD *",
		"SEARCH SINCE 32-Jan-2020":        "BAD *",
		"SEARCH OR SEEN":                  "BAD *",
		"SEARCH 9":                        "BAD *", // "respond with a tagged BAD response", rfc3501.txt:5009-5013
		"SEARCH 2:9":                      "BAD *",
		"UID SEARCH 1:* NOT UID 9999:*":   "OK *",
		"SEARCH (SEEN":                    "BAD *",
		"SEARCH HEADER":                   "BAD *",
		"SEARCH LARGER x":                 "BAD *",
		"SEARCH KEYWORD":                  "BAD *",
		"SEARCH OR SEEN (UNSEEN FLAGGED)": "OK *",
	} {
		u, done := c.Do(cmd)
		if !imaptest.MatchStatus(done, want) {
			t.Errorf("%s: %q %q, want %s", cmd, u, done, want)
		}
	}
	// Not in the authenticated state (SEARCH is one of the commands "valid in the
	// selected state", rfc3501.txt:2612-2616).
	c2 := e.dial()
	if _, done := c2.Do("SEARCH ALL"); done.Status != "BAD" {
		t.Fatalf("SEARCH unselected: %s", done)
	}
}

// "*" in an empty mailbox: a sequence set is BAD (rfc3501.txt:5009-5013: also
// "if the selected mailbox is empty"), a UID set matches nothing.
func TestSearchEmptyMailbox(t *testing.T) {
	e := newEnv(t)
	c := e.dial()
	c.OK("SELECT INBOX")
	imaptest.Expect(t, c.OK("SEARCH ALL"), "* SEARCH")
	imaptest.Expect(t, c.OK("UID SEARCH UID 1:*"), "* SEARCH")
	if _, done := c.Do("SEARCH *"); done.Status != "BAD" {
		t.Fatalf("SEARCH * in empty mailbox: %s", done)
	}
}

// A message the store has but the client was not told about (no EXISTS yet)
// is not in the SEARCH result; the EXISTS follows it.
func TestSearchOnlyClientView(t *testing.T) {
	e := searchFixture(t)
	c := e.dial()
	c.OK("SELECT INBOX")
	e.deliver("INBOX", testMsg("late"), store.Flags{})
	u := c.OK("UID SEARCH ALL")
	if len(u) == 0 {
		t.Fatal("UID SEARCH ALL: no SEARCH response")
	}
	imaptest.Expect(t, u[:1], "* SEARCH 2 3 4 5")
	c.OK("NOOP")
	imaptest.Expect(t, c.OK("SEARCH ALL"), "* SEARCH 1 2 3 4 5")
	imaptest.Expect(t, c.OK("UID SEARCH UID *"), "* SEARCH 6")
}

// SEARCH in query mailboxes: the same program runs over the view's own
// sequence numbers and UIDs.
func TestSearchInQueryMailbox(t *testing.T) {
	e := searchFixture(t)
	c := e.dial()
	c.OK("SELECT \"All Mail\"")
	imaptest.Expect(t, c.OK("SEARCH FROM alice"), "* SEARCH 1 3")
	imaptest.Expect(t, c.OK("SEARCH ALL"), "* SEARCH 1 2 3 4")
	c.OK("SELECT Unread")
	// Unread = UNSEEN: seq 1-3 are the fixture's 2, 3, 4.
	imaptest.Expect(t, c.OK("SEARCH ALL"), "* SEARCH 1 2 3")
	imaptest.Expect(t, c.OK("SEARCH SEEN"), "* SEARCH")
	imaptest.Expect(t, c.OK("SEARCH FROM eve"), "* SEARCH 3")
	imaptest.Expect(t, c.OK("SEARCH OR FLAGGED DRAFT"), "* SEARCH 1 2")
	mb, err := e.st.Mailbox(t.Context(), e.user.ID, "Unread")
	if err != nil {
		t.Fatal(err)
	}
	snap, err := e.st.Select(t.Context(), e.user.ID, "Unread", true)
	if err != nil {
		t.Fatal(err)
	}
	want := "* SEARCH"
	for _, u := range snap.UIDs {
		want += fmt.Sprint(" ", u)
	}
	imaptest.Expect(t, c.OK("UID SEARCH ALL"), want)
	_ = mb
}

// BenchmarkSearchCombined: one SEARCH, all criteria in one query (DESIGN
// "Performance rules"), over 1,000 messages.
func BenchmarkSearchCombined(b *testing.B) {
	e := newEnv(b)
	benchFill(e, 1000)
	c := e.dial()
	c.OK("SELECT INBOX")
	b.ResetTimer()
	for b.Loop() {
		u := c.OK("UID SEARCH UNSEEN SINCE 1-Jan-2020 LARGER 100")
		if len(u) != 1 || !imaptest.Match(u[0], "* SEARCH 2 *") {
			b.Fatalf("%.80q", u)
		}
	}
}

// benchFill delivers n messages into INBOX, every third one \Seen, in one
// go per message (the store has no bulk API).
func benchFill(e *testEnv, n int) {
	for i := range n {
		e.deliverAt("INBOX", testMsg(fmt.Sprint("bench message ", i))+strings.Repeat("padding text\r\n", i%20),
			store.Flags{Seen: i%3 == 0}, day(2019+i%8, time.Month(1+i%12), 1+i%28))
	}
}

// A SEARCH that reads only flags is answered from the flags the session
// keeps (searchView), made current first: another session's flag change
// counts at once, and the FETCH announcing it follows the SEARCH (so does
// the EXISTS of a message delivered meanwhile, which the result leaves
// out). Keywords, \Recent, NOT/OR and UID sets as with the store's answer.
func TestSearchFlagsFromViewAreCurrent(t *testing.T) {
	e := searchFixture(t)
	c := e.dial()
	c.OK("SELECT INBOX")
	imaptest.Expect(t, c.OK("UID SEARCH UNSEEN"), "* SEARCH 3 4 5")
	ib, err := e.st.Mailbox(t.Context(), e.user.ID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := e.st.AddRemoveFlags(t.Context(), ib.Box(), []uint32{3}, true, store.Flags{Seen: true, Keywords: []string{"$Later"}}); err != nil {
		t.Fatal(err)
	}
	e.deliver("INBOX", testMsg("late"), store.Flags{})
	imaptest.Expect(t, c.OK("UID SEARCH UNSEEN"), "* SEARCH 4 5", flagsLines(" $Work $Later")[0], flagsLines(" $Work $Later")[1], "* 5 EXISTS", "* 5 RECENT",
		`* 2 FETCH (FLAGS (\Answered \Flagged \Seen \Recent $Later))`)
	imaptest.Expect(t, c.OK("SEARCH KEYWORD $later"), "* SEARCH 2")
	imaptest.Expect(t, c.OK("UID SEARCH OR UNKEYWORD $Work DRAFT NOT UID 2:3"), "* SEARCH 4 5 6")
	imaptest.Expect(t, c.OK("SEARCH NEW"), "* SEARCH 3 4 5")
}

// A message another session of the process expunged (and so deleted),
// its EXPUNGE not yet sent to this session (none during SEARCH:
// rfc3501.txt:4053-4059), matches nothing, and learning that needs no
// read: the process knows what it deleted (store.Deleted). Under 50
// sessions expunging, one SEARCH in ten read it (issue 13).
func TestSearchGoneDeletedNoRoundTrip(t *testing.T) {
	e := newEnv(t)
	deliverN(e, "INBOX", 4)
	c := e.dial()
	c.OK("SELECT INBOX")
	other := e.dial()
	other.OK("SELECT INBOX")
	other.OK(`UID STORE 2 +FLAGS.SILENT (\Deleted)`)
	other.OK("EXPUNGE")
	imaptest.Expect(t, c.OK("SEARCH UNDELETED"), "* SEARCH 1 3 4")
	before := e.st.RoundTrips()
	imaptest.Expect(t, c.OK("SEARCH ALL"), "* SEARCH 1 3 4")
	imaptest.Expect(t, c.OK("SEARCH UNSEEN"), "* SEARCH 1 3 4")
	if n := e.st.RoundTrips() - before; n != 0 {
		t.Fatalf("SEARCH with a message deleted by another session: %d round trips", n)
	}
	imaptest.Expect(t, c.OK("NOOP"), "* 2 EXPUNGE")
}

// A SEARCH of flags, sequence and UID sets, dates and sizes is answered
// from the session's view and the process's cache of each message's days
// and size (searchView, store.SearchDataByID): the first costs one query
// for the mailbox's data, the next ones no round trip at all, including a
// sequence number out of range (BAD), ESEARCH and a saved result.
func TestSearchDatesSizesNoRoundTrip(t *testing.T) {
	e := searchFixture(t)
	c := e.dial()
	c.OK("SELECT INBOX")
	trips := func(cmd string, want ...string) {
		t.Helper()
		before := e.st.RoundTrips()
		got := c.OK(cmd)
		n := e.st.RoundTrips() - before
		imaptest.Expect(t, got, want...)
		if n != 0 {
			t.Fatalf("%s: %d round trips", cmd, n)
		}
	}
	imaptest.Expect(t, c.OK("UID SEARCH UNSEEN"), "* SEARCH 3 4 5")
	before := e.st.RoundTrips()
	imaptest.Expect(t, c.OK("UID SEARCH UNSEEN SINCE 1-Jan-2025 LARGER 1000"), "* SEARCH 3")
	if n := e.st.RoundTrips() - before; n != 1 {
		t.Fatalf("first SEARCH: %d round trips, want 1 (the mailbox's search data)", n)
	}
	trips("UID SEARCH UNSEEN SINCE 1-Jan-2025 LARGER 1000", "* SEARCH 3")
	trips("SEARCH 1:3 SENTBEFORE 1-Jan-2026 NOT DELETED", "* SEARCH 1 2")
	trips("UID SEARCH OR ON 1-Mar-2026 SENTON 2-Nov-2026 SMALLER 1000", "* SEARCH 4 5")
	trips("UID SEARCH RETURN (MIN MAX COUNT SAVE) BEFORE 1-Mar-2026", "* ESEARCH (TAG \"t8\") UID MIN 2 MAX 3 COUNT 2")
	trips("UID SEARCH $ LARGER 1000", "* SEARCH 3")
	before = e.st.RoundTrips()
	if _, done := c.Do("SEARCH 5 SINCE 1-Jan-2020"); done.Status != "BAD" {
		t.Fatalf("a sequence number beyond the mailbox: %s", done)
	}
	if n := e.st.RoundTrips() - before; n != 0 {
		t.Fatalf("BAD sequence set: %d round trips", n)
	}
}
