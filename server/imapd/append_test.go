package imapd

import (
	"fmt"
	"testing"
	"time"

	"decimail/internal/imaptest"
	"decimail/server/store"
)

func appendCmd(mailbox, extra, msg string) string {
	if extra != "" {
		extra += " "
	}
	return fmt.Sprintf("APPEND %s %s{%d+}\r\n%s", mailbox, extra, len(msg), msg)
}

func TestAppendFlagsDateAndUID(t *testing.T) {
	e := newEnv(t)
	c := e.dial()
	dr, _ := e.st.Mailbox(t.Context(), e.user.ID, "Drafts")
	msg := testMsg("draft")
	_, done := c.Do(appendCmd("Drafts", `(\Draft \Seen $Work \Recent) " 2-Nov-2026 10:00:00 +0100"`, msg))
	imaptest.ExpectDone(t, done, fmt.Sprintf("OK [APPENDUID %d 1] APPEND completed", dr.UIDValidity))
	_, done = c.Do(appendCmd("Drafts", "", msg))
	imaptest.ExpectDone(t, done, fmt.Sprintf("OK [APPENDUID %d 2] APPEND completed", dr.UIDValidity))
	var got []store.FetchRow
	err := e.st.Fetch(t.Context(), dr.Box(), []uint32{1, 2}, store.FetchCols{Flags: true, InternalDate: true, Body: true}, func(r *store.FetchRow) error {
		got = append(got, *r)
		return nil
	})
	if err != nil || len(got) != 2 {
		t.Fatal(err, len(got))
	}
	f := got[0].Flags
	if !f.Draft || !f.Seen || f.Flagged || len(f.Keywords) != 1 || f.Keywords[0] != "$Work" {
		t.Errorf("flags %+v", f)
	}
	if want := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC); !got[0].InternalDate.Equal(want) {
		t.Errorf("internal date %v", got[0].InternalDate)
	}
	if d := time.Since(got[1].InternalDate); d < 0 || d > time.Minute {
		t.Errorf("default internal date %v", got[1].InternalDate)
	}
	imaptest.Expect(t, c.OK("STATUS Drafts (MESSAGES UNSEEN UIDNEXT)"), `* STATUS "Drafts" (MESSAGES 2 UNSEEN 1 UIDNEXT 3)`)
}

func TestAppendErrors(t *testing.T) {
	e := newEnv(t)
	c := e.dial()
	msg := testMsg("x")
	for _, tc := range []struct{ cmd, want string }{
		{appendCmd("Nosuch", "", msg), "NO [TRYCREATE] no such mailbox"},
		{appendCmd("Flagged", "", msg), "NO [CANNOT] cannot append to a query mailbox"},
		{appendCmd("INBOX", "", ""), "NO can't save a zero byte message"},
		{appendCmd("INBOX", `(\Bogus)`, msg), "BAD unknown system flag"},
		{appendCmd("INBOX", `"2-Nov-2026 10:00:00 +0100"`, msg), `BAD invalid date-time "2-Nov-2026 10:00:00 +0100"`},
		{appendCmd("INBOX", `"02-Nov-2026 10:00:00 0100"`, msg), `BAD invalid date-time "02-Nov-2026 10:00:00 0100"`},
		{appendCmd("INBOX", `"31-Feb-2026 10:00:00 +0100"`, msg), `BAD invalid date-time "31-Feb-2026 10:00:00 +0100"`},
		{appendCmd("INBOX", `() ()`, msg), "BAD syntax error: the message must be a literal"},
		{`APPEND INBOX "just a string"`, `BAD invalid date-time "just a string"`},
		{`APPEND INBOX () "02-Nov-2026 10:00:00 +0100"`, "BAD syntax error: APPEND: message literal expected"},
	} {
		if _, done := c.Do(tc.cmd); imaptest.DiffDone(done, tc.want) != "" {
			t.Errorf("%.40q: got %q, want %q", tc.cmd, done, tc.want)
		}
	}
	// Accepted date forms: two digits, lower-case month, negative zone.
	for _, d := range []string{`"02-Nov-2026 10:00:00 +0100"`, `"02-nov-2026 10:00:00 -0930"`} {
		c.OK(appendCmd("INBOX", "() "+d, msg))
	}
	imaptest.Expect(t, c.OK("STATUS INBOX (MESSAGES)"), `* STATUS "INBOX" (MESSAGES 2)`)
}

// APPEND to the selected mailbox: EXISTS before the tagged OK
// (rfc3501.txt:2583); a synchronising literal gets "+" first.
func TestAppendSelectedMailbox(t *testing.T) {
	e := newEnv(t)
	e.deliver("INBOX", testMsg("old"), store.Flags{})
	c := e.dial()
	c.OK("SELECT INBOX")
	msg := testMsg("new")
	// Sent by hand to see the "+" (Do would answer it by itself).
	c.Send(fmt.Sprintf("a1 APPEND INBOX (\\Seen) {%d}", len(msg)))
	if r := c.Next(); r.Tag != "+" {
		t.Fatalf("continuation: %s", r)
	}
	c.Send(msg)
	u, done := c.Until("a1")
	ib, _ := e.st.Mailbox(t.Context(), e.user.ID, "INBOX")
	imaptest.Expect(t, append(u, done), "* 2 EXISTS", "* 2 RECENT", fmt.Sprintf("a1 OK [APPENDUID %d 2] APPEND completed", ib.UIDValidity))
	// The query mailbox "Unread" does not see a \Seen message; "All Mail" does.
	imaptest.Expect(t, c.OK(`STATUS "All Mail" (MESSAGES)`), `* STATUS "All Mail" (MESSAGES 2)`)
	imaptest.Expect(t, c.OK(`STATUS "Unread" (MESSAGES)`), `* STATUS "Unread" (MESSAGES 1)`)
}

// APPEND to the folder the session has selected read-write: the session is
// the first told of the message (its EXISTS comes with the APPEND,
// rfc3501.txt:2583), so the message is \Recent for it (rfc3501.txt:
// 1087-1091) and for no other session, and the session takes it without a
// claim of its own afterwards (store.DeliverOptions.ClaimRecent): the
// membership is stored claimed. Into a view the message enters, it is
// still unclaimed; EXAMINE takes nothing.
func TestAppendClaimsRecentForSelecting(t *testing.T) {
	e := newEnv(t)
	e.deliver("INBOX", testMsg("old"), store.Flags{Seen: true})
	c := e.dial()
	c.OK("SELECT INBOX")
	other := e.dial()
	other.OK("SELECT INBOX")
	recentOf := func(mailbox string, uid int) bool {
		t.Helper()
		var recent bool
		if err := e.st.Pool().QueryRow(t.Context(), `SELECT mm.recent FROM mailbox_messages mm JOIN mailboxes b ON b.id = mm.mailbox_id
			WHERE b.user_id = $1 AND b.name = $2 AND mm.uid = $3`, e.user.ID, mailbox, uid).Scan(&recent); err != nil {
			t.Fatal(err)
		}
		return recent
	}
	msg := testMsg("new")
	imaptest.Expect(t, c.OK(fmt.Sprintf("APPEND INBOX {%d+}\r\n%s", len(msg), msg)), "* 2 EXISTS", "* 2 RECENT")
	if recentOf("INBOX", 2) {
		t.Error("the appended message's INBOX membership is unclaimed")
	}
	if !recentOf("Unread", 1) {
		t.Error("the appended message's Unread membership was claimed")
	}
	// Another APPEND by the selecting session takes as many round trips as
	// the same APPEND from a session with nothing selected (no poll, no
	// claim): none went to a claim.
	before := e.st.RoundTrips()
	imaptest.Expect(t, c.OK(fmt.Sprintf("APPEND INBOX {%d+}\r\n%s", len(msg), msg)), "* 3 EXISTS", "* 3 RECENT")
	selecting := e.st.RoundTrips() - before
	d := e.dial()
	before = e.st.RoundTrips()
	d.OK(fmt.Sprintf("APPEND Drafts {%d+}\r\n%s", len(msg), msg))
	if plain := e.st.RoundTrips() - before; selecting != plain {
		t.Errorf("APPEND by the selecting session: %d round trips, by one with nothing selected: %d", selecting, plain)
	}
	imaptest.Expect(t, c.OK("FETCH 2 (FLAGS)"), `* 2 FETCH (FLAGS (\Recent))`)
	imaptest.Expect(t, other.OK("NOOP"), "* 3 EXISTS")
	imaptest.Expect(t, other.OK("FETCH 2 (FLAGS)"), `* 2 FETCH (FLAGS ())`)
	// Read-only: nothing taken; a read-write session told of it takes it.
	ro := e.dial()
	ro.OK("EXAMINE INBOX")
	imaptest.Expect(t, ro.OK(fmt.Sprintf("APPEND INBOX {%d+}\r\n%s", len(msg), msg)), "* 4 EXISTS")
	if !recentOf("INBOX", 4) {
		t.Error("an EXAMINE session's APPEND claimed the message")
	}
	imaptest.Expect(t, c.OK("NOOP"), "* 4 EXISTS", "* 4 RECENT")
}
