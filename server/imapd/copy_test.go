package imapd

import (
	"fmt"
	"strings"
	"testing"
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
	c.ok("SELECT INBOX")
	if _, st := c.do("COPY 2:3,5 Archive"); st != fmt.Sprintf("OK [COPYUID %d 2:3,5 1:3] COPY completed", arch) {
		t.Fatalf("COPY: %q", st)
	}
	if _, st := c.do("UID COPY 4,1 Trash"); st != fmt.Sprintf("OK [COPYUID %d 1,4 1:2] UID COPY completed", trash) {
		t.Fatalf("UID COPY: %q", st)
	}
	// Nothing matched: OK without COPYUID (rfc4315.txt:246: "nothing copied").
	if _, st := c.do("UID COPY 99:100 Archive"); st != "OK UID COPY completed" {
		t.Fatalf("UID COPY of nothing: %q", st)
	}
	for cmd, want := range map[string]string{
		"COPY 1 Nosuch":        "NO [TRYCREATE]",
		"UID COPY 99 Nosuch":   "NO [TRYCREATE]",
		"COPY 1 Flagged":       "NO [CANNOT]",
		`COPY 1 "All Mail"`:    "NO [CANNOT]",
		"COPY 6 Archive":       "BAD",
		"COPY 1":               "BAD",
		"COPY 1 Archive extra": "BAD",
	} {
		if u, st := c.do(cmd); !strings.HasPrefix(st, want) || len(u) != 0 {
			t.Errorf("%s: %q %q, want %s", cmd, u, st, want)
		}
	}
	// The source is unchanged; the destination has the messages.
	expect(t, c.ok("SEARCH ALL"), "* SEARCH 1 2 3 4 5")
	c2 := e.dial()
	u := c2.ok("EXAMINE Archive")
	if u[1] != "* 3 EXISTS" {
		t.Fatalf("EXAMINE Archive: %q", u)
	}
	// COPY from a read-only mailbox is allowed.
	if _, st := c2.do("COPY 1 Trash"); !strings.HasPrefix(st, fmt.Sprintf("OK [COPYUID %d 1 3]", trash)) {
		t.Fatalf("COPY from EXAMINE: %q", st)
	}
	// A session with the destination selected sees EXISTS.
	c.ok("SELECT Trash")
	c2.ok("COPY 2 Trash")
	expect(t, c.ok("NOOP"), "* 4 EXISTS", "* 4 RECENT")
}

// MOVE: untagged COPYUID, then EXPUNGEs with the sequence numbers valid when
// each is sent, then the tagged OK (rfc6851.txt:191-197, 258-263).
func TestMove(t *testing.T) {
	e := newEnv(t)
	deliverN(e, "INBOX", 5)
	arch := uidValidity(t, e, "Archive")
	c, other := e.dial(), e.dial()
	c.ok("SELECT INBOX")
	other.ok("SELECT INBOX")
	if !strings.Contains(strings.Join(c.ok("CAPABILITY"), " "), " MOVE") {
		t.Fatal("MOVE not advertised")
	}
	u, st := c.do("MOVE 2,4 Archive")
	expect(t, u, fmt.Sprintf("* OK [COPYUID %d 2,4 1:2] moved", arch), "* 2 EXPUNGE", "* 3 EXPUNGE")
	if st != "OK MOVE completed" {
		t.Fatalf("MOVE: %q", st)
	}
	u, _ = c.do("UID MOVE 5 Archive")
	expect(t, u, fmt.Sprintf("* OK [COPYUID %d 5 3] moved", arch), "* 3 EXPUNGE")
	expect(t, c.ok("UID SEARCH ALL"), "* SEARCH 1 3")
	expect(t, other.ok("NOOP"), "* 2 EXPUNGE", "* 3 EXPUNGE", "* 3 EXPUNGE")
	// Nothing matched: no COPYUID, no EXPUNGE.
	expect(t, c.ok("UID MOVE 50 Archive"))
	for cmd, want := range map[string]string{
		"MOVE 1 Nosuch":  "NO [TRYCREATE]",
		"MOVE 1 Flagged": "NO [CANNOT]",
		"MOVE 3 Archive": "BAD",
	} {
		if u, st := c.do(cmd); !strings.HasPrefix(st, want) || len(u) != 0 {
			t.Errorf("%s: %q %q, want %s", cmd, u, st, want)
		}
	}
	c.ok("EXAMINE INBOX")
	if _, st := c.do("MOVE 1 Archive"); !strings.HasPrefix(st, "NO") {
		t.Fatalf("MOVE in EXAMINE: %q", st)
	}
	c.ok("UNSELECT")
	if _, st := c.do("MOVE 1 Archive"); !strings.HasPrefix(st, "BAD") {
		t.Fatalf("MOVE unselected: %q", st)
	}
}

// MOVE out of the Unread view into Trash: the view shrinks by EXPUNGE, and the
// message, still unread, comes back into the view under a new UID (a view's
// membership always equals its definition).
func TestMoveFromView(t *testing.T) {
	e := newEnv(t)
	deliverN(e, "INBOX", 3)
	trash := uidValidity(t, e, "Trash")
	c := e.dial()
	u := c.ok("SELECT Unread")
	if u[1] != "* 3 EXISTS" {
		t.Fatalf("SELECT Unread: %q", u)
	}
	u, _ = c.do("MOVE 2 Trash")
	expect(t, u, fmt.Sprintf("* OK [COPYUID %d 2 1] moved", trash), "* 2 EXPUNGE", "* 3 EXISTS")
	expect(t, c.ok("UID SEARCH ALL"), "* SEARCH 1 3 4")
}

func TestOrderedUIDSet(t *testing.T) {
	for _, tc := range []struct {
		in   []uint32
		want string
	}{
		{nil, ""}, {[]uint32{7}, "7"}, {[]uint32{1, 2, 3, 5}, "1:3,5"}, {[]uint32{304, 319, 320}, "304,319:320"},
		{[]uint32{5, 3, 4}, "5,3:4"}, {[]uint32{2, 1}, "2,1"},
	} {
		if got := orderedUIDSet(tc.in); got != tc.want {
			t.Errorf("orderedUIDSet(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
