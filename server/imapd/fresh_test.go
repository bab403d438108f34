package imapd

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"decimail/internal/imaptest"
	"decimail/internal/testwait"
	"decimail/server/store"
)

// Issue 15: a session whose mailbox was not signalled since its last read
// answers NOOP, CHECK, IDLE and FETCH of the flags it keeps without a
// round trip to Postgres; one that was signalled (this process's change,
// through the user's gate) reads before it answers.
func TestNoRoundTripWhenNothingChanged(t *testing.T) {
	e := newEnv(t)
	deliverN(e, "INBOX", 3)
	c := e.dial()
	c.OK("SELECT INBOX")
	c.OK("NOOP") // the listener's first connect signals every subscription
	before := e.st.RoundTrips()
	for range 5 {
		imaptest.Expect(t, c.OK("NOOP"))
		imaptest.Expect(t, c.OK("CHECK"))
	}
	imaptest.Expect(t, c.OK("FETCH 1:* (UID FLAGS)"), `* 1 FETCH (UID 1 FLAGS (\Recent))`, `* 2 FETCH (UID 2 FLAGS (\Recent))`, `* 3 FETCH (UID 3 FLAGS (\Recent))`)
	if n := e.st.RoundTrips() - before; n != 0 {
		t.Fatalf("NOOP, CHECK and FETCH (UID FLAGS) on an unchanged mailbox: %d round trips, want 0", n)
	}
	// Another session of this process changes the mailbox: the next NOOP
	// shows it, with no wait for the notification to come back.
	ib, err := e.st.Mailbox(t.Context(), e.user.ID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.StoreFlags(t.Context(), ib.Box(), []uint32{2}, store.FlagsAdd, store.Flags{Flagged: true}); err != nil {
		t.Fatal(err)
	}
	imaptest.Expect(t, c.OK("NOOP"), `* 2 FETCH (FLAGS (\Flagged \Recent))`)
	e.deliver("INBOX", testMsg("new"), store.Flags{})
	imaptest.Expect(t, c.OK("NOOP"), "* 4 EXISTS", "* 4 RECENT")
}

// Changes another process makes while this one's session runs commands
// reach the session through LISTEN alone: after a burst of deliveries, flag
// changes and expunges by the other store (under load: a client in a
// command loop meanwhile), the session's view, which answers FETCH (UID
// FLAGS) from memory, equals the store's. Then the listening connection is
// killed: a change made while it reconnects is still seen (the reconnect
// signals every session, and sessions read every time while it is down).
func TestOtherProcessChangesSeenWithoutPolling(t *testing.T) {
	if pollFallback < 2*convergeWithin {
		t.Fatalf("pollFallback %v: the session's periodic read could be what shows the changes", pollFallback)
	}
	e := newEnv(t)
	deliverN(e, "INBOX", 5)
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
	done := make(chan error, 1)
	go func() {
		var err error
		for i := 0; i < 60 && err == nil; i++ {
			switch i % 3 {
			case 0:
				_, err = other.Deliver(t.Context(), e.user.ID, []byte(testMsg(fmt.Sprint("m", i))), store.DeliverOptions{})
			case 1:
				_, err = other.StoreFlags(t.Context(), ib.Box(), []uint32{uint32(i%5 + 1)}, store.FlagsAdd, store.Flags{Flagged: true})
			case 2:
				uid := uint32(6 + i/3)
				if _, err = other.StoreFlags(t.Context(), ib.Box(), []uint32{uid}, store.FlagsAdd, store.Flags{Deleted: true}); err == nil {
					_, err = other.Expunge(t.Context(), ib.Box(), []uint32{uid})
				}
			}
		}
		done <- err
	}()
	for {
		c.OK("NOOP")
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			converge(t, e, c, other)
			goto killed
		default:
		}
	}
killed:
	var pid int
	// This process's listener: the first of this database (the other
	// store's started with converge's reference session, later).
	if err := e.st.Pool().QueryRow(t.Context(), `SELECT pid FROM pg_stat_activity
		WHERE datname = current_database() AND query LIKE 'LISTEN decimail%' ORDER BY backend_start LIMIT 1`).Scan(&pid); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.Pool().Exec(t.Context(), `SELECT pg_terminate_backend($1)`, pid); err != nil {
		t.Fatal(err)
	}
	if _, err := other.StoreFlags(t.Context(), ib.Box(), []uint32{1}, store.FlagsAdd, store.Flags{Answered: true}); err != nil {
		t.Fatal(err)
	}
	converge(t, e, c, other)
}

// converge waits until the session's flags (FETCH (UID FLAGS), answered
// from its view after NOOP) are the store's, as another process reads them.
func converge(t *testing.T, e *testEnv, c *imaptest.TestClient, other *store.Store) {
	t.Helper()
	other2 := &testEnv{t: t, st: other, user: e.user}
	_, addr := other2.serve(Config{AuthFailDelay: time.Millisecond})
	ref := other2.dialAddr(addr)
	ref.OK("LOGIN u pw")
	ref.OK("EXAMINE INBOX")
	want := flagLines(ref.OK("UID FETCH 1:* (UID FLAGS)"))
	testwait.For(t, convergeWithin, "the session's view to show the other process's changes", func() (bool, string) {
		c.OK("NOOP")
		got := flagLines(c.OK("UID FETCH 1:* (UID FLAGS)"))
		return slices.Equal(got, want), fmt.Sprintf("session %q, store %q", got, want)
	})
}

// convergeWithin: the changes must reach the session through notifications,
// well before its periodic read (pollFallback).
const convergeWithin = 2500 * time.Millisecond

// respStrings is the responses as the server wrote them.
func respStrings(rs []*imaptest.Resp) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.String())
	}
	return out
}

// flagLines renders FETCH responses without \Recent (which only the
// session that claimed a message sees).
func flagLines(rs []*imaptest.Resp) []string {
	var out []string
	for _, r := range rs {
		l := strings.ReplaceAll(r.String(), ` \Recent`, "")
		out = append(out, strings.ReplaceAll(strings.ReplaceAll(l, `(\Recent `, "("), `(\Recent)`, "()"))
	}
	return out
}

// A one-message FETCH of a text is answered from the process's text cache
// the second time: no round trip (store.FetchText). A message another
// session expunged meanwhile, not yet announced, is still served (RFC 2180
// §4.1.1), from the cache.
func TestFetchTextNoRoundTrip(t *testing.T) {
	e := newEnv(t)
	deliverN(e, "INBOX", 2)
	c := e.dial()
	c.OK("SELECT INBOX")
	c.OK("NOOP")
	first := c.OK("FETCH 2 BODY.PEEK[]")
	before := e.st.RoundTrips()
	again := c.OK("FETCH 2 BODY.PEEK[]")
	c.OK("UID FETCH 2 BODY.PEEK[HEADER]")
	if n := e.st.RoundTrips() - before; n != 0 {
		t.Fatalf("FETCH of a cached text: %d round trips", n)
	}
	if len(first) != 1 || first[0].String() != again[0].String() {
		t.Fatalf("first %v, again %v", first, again)
	}
	other := e.dial()
	other.OK("SELECT INBOX")
	other.OK(`STORE 2 +FLAGS.SILENT (\Deleted)`)
	other.OK("EXPUNGE")
	if got := c.OK("FETCH 2 BODY.PEEK[]"); len(got) != 1 || got[0].String() != first[0].String() {
		t.Fatalf("FETCH of an expunged, unannounced message: %v", got)
	}
}

// A FETCH of several messages' texts serves those the process's text cache
// holds from it and reads only the others (fetcher.fromTextCache): the
// same responses as the store's read, with the cached ones first; all
// cached, no round trip. An item beyond the text (here RFC822.SIZE) reads
// them all from the store, as before.
func TestFetchTextsFromCache(t *testing.T) {
	e := newEnv(t)
	deliverN(e, "INBOX", 4)
	c := e.dial()
	c.OK("SELECT INBOX")
	c.OK("NOOP")
	const items = "(BODY.PEEK[] BODY.PEEK[HEADER.FIELDS (Subject)] BINARY.PEEK[1])"
	// Nothing cached: the store's read, the reference.
	ref := respStrings(c.OK("FETCH 1:4 " + items))
	if len(ref) != 4 {
		t.Fatalf("reference: %d responses", len(ref))
	}
	c.OK("FETCH 2 BODY.PEEK[]")
	c.OK("FETCH 4 BODY.PEEK[]")
	before := e.st.RoundTrips()
	got := respStrings(c.OK("FETCH 1:4 " + items))
	if n := e.st.RoundTrips() - before; n == 0 {
		t.Fatalf("two of four texts cached: no round trip for the others")
	}
	if want := []string{ref[1], ref[3], ref[0], ref[2]}; !slices.Equal(got, want) {
		t.Fatalf("two of four cached:\n got  %q\n want %q", got, want)
	}
	// Now all four are cached (the one-message reads cached 2 and 4; 1 and
	// 3 by a one-message read each).
	c.OK("FETCH 1 BODY.PEEK[]")
	c.OK("FETCH 3 BODY.PEEK[]")
	before = e.st.RoundTrips()
	got = respStrings(c.OK("UID FETCH 1:4 " + items))
	if n := e.st.RoundTrips() - before; n != 0 {
		t.Fatalf("all four texts cached: %d round trips", n)
	}
	if len(got) != 4 || got[0] != strings.Replace(ref[0], "FETCH (", "FETCH (UID 1 ", 1) {
		t.Fatalf("all cached, UID FETCH:\n got  %q\n want %q first", got, ref[0])
	}
	before = e.st.RoundTrips()
	c.OK("FETCH 1:4 (BODY.PEEK[] RFC822.SIZE)")
	if n := e.st.RoundTrips() - before; n == 0 {
		t.Fatalf("a FETCH with RFC822.SIZE was answered from the text cache")
	}
}

// A FETCH of flags and unchanging data, what a client lists a mailbox
// with, is answered from the view and the process's cache
// (store.FetchMeta) without a round trip once read, and says what the
// store's read says: the same data, another session's flag change.
func TestFetchMetaNoRoundTrip(t *testing.T) {
	e := newEnv(t)
	deliverN(e, "INBOX", 3)
	c := e.dial()
	c.OK("SELECT INBOX")
	const items = "UID FLAGS RFC822.SIZE INTERNALDATE ENVELOPE BODYSTRUCTURE BODY"
	// With EMAILID the store's read answers (not IsMeta): the reference.
	ref := c.OK("FETCH 1:3 (" + items + " EMAILID)")
	strip := func(lines []string) []string {
		var out []string
		for _, l := range lines {
			if i := strings.Index(l, " EMAILID ("); i >= 0 {
				l = l[:i] + ")"
			}
			out = append(out, l)
		}
		return out
	}
	want := strip(respStrings(ref))
	first := respStrings(c.OK("FETCH 1:3 (" + items + ")"))
	before := e.st.RoundTrips()
	again := respStrings(c.OK("FETCH 1:3 (" + items + ")"))
	if n := e.st.RoundTrips() - before; n != 0 {
		t.Fatalf("FETCH of cached data: %d round trips", n)
	}
	if !slices.Equal(first, want) || !slices.Equal(again, want) {
		t.Fatalf("from the cache:\n%q\n%q\nfrom the store:\n%q", first, again, want)
	}
	other := e.dial()
	other.OK("SELECT INBOX")
	other.OK(`STORE 2 +FLAGS.SILENT (\Flagged)`)
	got := respStrings(c.OK("FETCH 2 (" + items + ")"))
	if len(got) == 0 || !strings.Contains(got[0], `\Flagged`) {
		t.Fatalf("another session's flag change is missing: %q", got)
	}
}

// A message delivered through the process is in its FETCH cache at once
// (store.rememberMeta): a session's FETCH of the new message's ENVELOPE,
// BODYSTRUCTURE, size and date makes no round trip, and answers what the
// store's read does, for a date in another zone and one taken at arrival
// (issue 13: one FETCH in six read a new message from Postgres under 50
// sessions appending).
func TestFetchMetaOfDeliveredNoRoundTrip(t *testing.T) {
	e := newEnv(t)
	c := e.dial()
	c.OK("SELECT INBOX")
	other := e.dial()
	mixed := "From: Ann <ann@example.org>\r\nTo: bob@example.com\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\n" +
		"Date: Mon, 14 Jul 2025 02:44:25 -0700\r\nMessage-ID: <m1@example.org>\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhello\r\n" +
		"--b\r\nContent-Type: application/pdf; name=x.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERg==\r\n--b--\r\n"
	plain := "From: c@example.net\r\nSubject: plain\r\n\r\nbody\r\n"
	other.OK(fmt.Sprintf("APPEND INBOX (\\Seen) \"14-Jul-2025 23:59:59 -0930\" {%d+}\r\n%s", len(mixed), mixed))
	other.OK(fmt.Sprintf("APPEND INBOX {%d+}\r\n%s", len(plain), plain))
	c.OK("NOOP")
	const items = "UID FLAGS RFC822.SIZE INTERNALDATE ENVELOPE BODYSTRUCTURE BODY"
	before := e.st.RoundTrips()
	got := respStrings(c.OK("FETCH 1:2 (" + items + ")"))
	if n := e.st.RoundTrips() - before; n != 0 {
		t.Fatalf("FETCH of just delivered messages: %d round trips", n)
	}
	// With EMAILID the store's read answers (not IsMeta): the reference.
	var want []string
	for _, l := range respStrings(c.OK("FETCH 1:2 (" + items + " EMAILID)")) {
		if i := strings.Index(l, " EMAILID ("); i >= 0 {
			l = l[:i] + ")"
		}
		want = append(want, l)
	}
	if len(got) != 2 || !slices.Equal(got, want) {
		t.Fatalf("from the delivery:\n%q\nfrom the store:\n%q", got, want)
	}
	// What SEARCH compares of them too (store.SearchDataByID): the
	// internal day in its own zone, the Date: header's day (none for the
	// second), the size.
	before = e.st.RoundTrips()
	imaptest.Expect(t, c.OK("SEARCH ON 14-Jul-2025"), "* SEARCH 1")
	imaptest.Expect(t, c.OK("SEARCH SENTON 14-Jul-2025"), "* SEARCH 1")
	imaptest.Expect(t, c.OK("SEARCH OR SENTBEFORE 1-Jan-2100 SENTSINCE 1-Jan-1900"), "* SEARCH 1")
	imaptest.Expect(t, c.OK(fmt.Sprintf("SEARCH LARGER %d", len(plain)-1)), "* SEARCH 1 2")
	imaptest.Expect(t, c.OK(fmt.Sprintf("SEARCH SMALLER %d", len(plain)+1)), "* SEARCH 2")
	if n := e.st.RoundTrips() - before; n != 0 {
		t.Fatalf("SEARCH of dates and sizes of just delivered messages: %d round trips", n)
	}
}

// A FETCH of flags and unchanging data naming a message another session of
// the process expunged (deleted), its EXPUNGE not sent yet, serves the
// others from the view and the cache and answers NO [EXPUNGEISSUED] (RFC
// 2180 §4.1.2), as the read of the store does, without that read: the
// process knows what it deleted (issue 13: under 50 sessions expunging,
// these FETCHes were the reads' slowest).
func TestFetchMetaGoneDeletedNoRoundTrip(t *testing.T) {
	e := newEnv(t)
	deliverN(e, "INBOX", 4)
	c := e.dial()
	c.OK("SELECT INBOX")
	const items = "(UID FLAGS RFC822.SIZE ENVELOPE)"
	all := c.OK("FETCH 1:4 " + items) // the cache is warm
	other := e.dial()
	other.OK("SELECT INBOX")
	other.OK(`UID STORE 2 +FLAGS.SILENT (\Deleted)`)
	other.OK("EXPUNGE")
	c.OK("FETCH 1 (FLAGS)") // the view learns of the expunge, sends no EXPUNGE
	before := e.st.RoundTrips()
	untagged, done := c.Do("FETCH 1:4 " + items)
	if n := e.st.RoundTrips() - before; n != 0 {
		t.Fatalf("FETCH naming a message deleted by another session: %d round trips", n)
	}
	if !strings.HasSuffix(done.String(), " NO [EXPUNGEISSUED] some of the requested messages no longer exist") {
		t.Fatalf("reply %q", done.String())
	}
	var got []string
	for _, r := range untagged {
		got = append(got, r.String())
	}
	want := []string{all[0].String(), all[2].String(), all[3].String()}
	if !slices.Equal(got, want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
	imaptest.Expect(t, c.OK("NOOP"), "* 2 EXPUNGE")
}
