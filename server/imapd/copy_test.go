package imapd

import (
	"fmt"
	"testing"

	"decimail/internal/imaptest"
)

func uidValidity(t *testing.T, e *testEnv, name string) uint32 {
	t.Helper()
	mb, err := e.st.Mailbox(t.Context(), e.user.ID, name)
	if err != nil {
		t.Fatal(err)
	}
	return mb.UIDValidity
}

// COPY and UID COPY with UIDPLUS COPYUID (rfc4315.txt:183-203: "Followed by
// the UIDVALIDITY of the destination mailbox, a UID set"), TRYCREATE
// (rfc3501.txt:3316-3322) and CANNOT into a query mailbox.
func TestCopy(t *testing.T) {
	e := newEnv(t)
	deliverN(e, "INBOX", 5)
	arch, trash := uidValidity(t, e, "Archive"), uidValidity(t, e, "Trash")
	c := e.dial()
	c.OK("SELECT INBOX")
	u, done := c.Do("COPY 2:3,5 Archive")
	imaptest.Expect(t, u)
	imaptest.ExpectDone(t, done, fmt.Sprintf("OK [COPYUID %d 2:3,5 1:3] COPY completed", arch))
	_, done = c.Do("UID COPY 4,1 Trash")
	imaptest.ExpectDone(t, done, fmt.Sprintf("OK [COPYUID %d 1,4 1:2] UID COPY completed", trash))
	// Nothing matched: OK without COPYUID (rfc4315.txt:246: "nothing copied").
	_, done = c.Do("UID COPY 99:100 Archive")
	imaptest.ExpectDone(t, done, "OK UID COPY completed")
	for cmd, want := range map[string]string{
		"COPY 1 Nosuch":        "NO [TRYCREATE] *",
		"UID COPY 99 Nosuch":   "NO [TRYCREATE] *",
		"COPY 1 Flagged":       "NO [CANNOT] *",
		`COPY 1 "All Mail"`:    "NO [CANNOT] *",
		"COPY 6 Archive":       "BAD *",
		"COPY 1":               "BAD *",
		"COPY 1 Archive extra": "BAD *",
	} {
		if u, done := c.Do(cmd); !imaptest.MatchStatus(done, want) || len(u) != 0 {
			t.Errorf("%s: %q %q, want %s", cmd, u, done, want)
		}
	}
	// The source is unchanged; the destination has the messages.
	imaptest.Expect(t, c.OK("SEARCH ALL"), "* SEARCH 1 2 3 4 5")
	c2 := e.dial()
	u = c2.OK("EXAMINE Archive")
	imaptest.Expect(t, u[1:2], "* 3 EXISTS")
	// COPY from a read-only mailbox is allowed.
	if _, done := c2.Do("COPY 1 Trash"); !imaptest.MatchStatus(done, fmt.Sprintf("OK [COPYUID %d 1 3] *", trash)) {
		t.Fatalf("COPY from EXAMINE: %s", done)
	}
	// A session with the destination selected sees EXISTS.
	c.OK("SELECT Trash")
	c2.OK("COPY 2 Trash")
	imaptest.Expect(t, c.OK("NOOP"), "* 4 EXISTS", "* 4 RECENT")
}

// MOVE: untagged COPYUID, then EXPUNGEs with the sequence numbers valid when
// each is sent, then the tagged OK (rfc6851.txt:191-197, 258-263).
func TestMove(t *testing.T) {
	e := newEnv(t)
	deliverN(e, "INBOX", 5)
	arch := uidValidity(t, e, "Archive")
	c, other := e.dial(), e.dial()
	c.OK("SELECT INBOX")
	other.OK("SELECT INBOX")
	if c.OK("CAPABILITY"); !c.Caps["MOVE"] {
		t.Fatalf("MOVE not advertised: %v", c.Caps)
	}
	u, done := c.Do("MOVE 2,4 Archive")
	imaptest.Expect(t, u, fmt.Sprintf("* OK [COPYUID %d 2,4 1:2] moved", arch), "* 2 EXPUNGE", "* 3 EXPUNGE")
	imaptest.ExpectDone(t, done, "OK MOVE completed")
	u, _ = c.Do("UID MOVE 5 Archive")
	imaptest.Expect(t, u, fmt.Sprintf("* OK [COPYUID %d 5 3] moved", arch), "* 3 EXPUNGE")
	imaptest.Expect(t, c.OK("UID SEARCH ALL"), "* SEARCH 1 3")
	imaptest.Expect(t, other.OK("NOOP"), "* 2 EXPUNGE", "* 3 EXPUNGE", "* 3 EXPUNGE")
	// Nothing matched: no COPYUID, no EXPUNGE.
	imaptest.Expect(t, c.OK("UID MOVE 50 Archive"))
	for cmd, want := range map[string]string{
		"MOVE 1 Nosuch":  "NO [TRYCREATE] *",
		"MOVE 1 Flagged": "NO [CANNOT] *",
		"MOVE 3 Archive": "BAD *",
	} {
		if u, done := c.Do(cmd); !imaptest.MatchStatus(done, want) || len(u) != 0 {
			t.Errorf("%s: %q %q, want %s", cmd, u, done, want)
		}
	}
	c.OK("EXAMINE INBOX")
	if _, done := c.Do("MOVE 1 Archive"); done.Status != "NO" {
		t.Fatalf("MOVE in EXAMINE: %s", done)
	}
	c.OK("UNSELECT")
	if _, done := c.Do("MOVE 1 Archive"); done.Status != "BAD" {
		t.Fatalf("MOVE unselected: %s", done)
	}
}

// MOVE out of the Unread view into Trash: the view shrinks by EXPUNGE and the
// message does not come back, as only Trash holds it (views leave out Trash,
// issue 14). MOVE into Archive: the message, still unread, comes back into
// the view under a new UID (a view's membership always equals its definition).
func TestMoveFromView(t *testing.T) {
	e := newEnv(t)
	deliverN(e, "INBOX", 3)
	trash := uidValidity(t, e, "Trash")
	arch := uidValidity(t, e, "Archive")
	c := e.dial()
	u := c.OK("SELECT Unread")
	imaptest.Expect(t, u[1:2], "* 3 EXISTS")
	u, _ = c.Do("MOVE 2 Trash")
	imaptest.Expect(t, u, fmt.Sprintf("* OK [COPYUID %d 2 1] moved", trash), "* 2 EXPUNGE")
	imaptest.Expect(t, c.OK("UID SEARCH ALL"), "* SEARCH 1 3")
	u, _ = c.Do("MOVE 1 Archive")
	imaptest.Expect(t, u, fmt.Sprintf("* OK [COPYUID %d 1 1] moved", arch), "* 1 EXPUNGE", "* 2 EXISTS")
	imaptest.Expect(t, c.OK("UID SEARCH ALL"), "* SEARCH 3 4")
}

func TestOrderedUIDSet(t *testing.T) {
	for _, tc := range []struct {
		in   []uint32
		want string
	}{
		{nil, ""}, {[]uint32{7}, "7"}, {[]uint32{1, 2, 3, 5}, "1:3,5"}, {[]uint32{304, 319, 320}, "304,319:320"},
		{[]uint32{5, 3, 4}, "5,3:4"}, {[]uint32{2, 1}, "2,1"},
	} {
		if got := numSet(tc.in); got != tc.want {
			t.Errorf("numSet(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
