package imapd

import (
	"strings"
	"testing"
)

// EXPUNGE sends one EXPUNGE per removed message before the tagged OK ("an
// untagged EXPUNGE response is sent for each message that is removed"), each
// with the sequence number valid when sent ("immediately decremented")
// (rfc3501.txt:2706-2716, 4023-4028):
// deleting 2 and 4 of 5 gives "2" then "3".
func TestExpungeSequenceNumbers(t *testing.T) {
	e := newEnv(t)
	deliverN(e, "INBOX", 5)
	c, other := e.dial(), e.dial()
	c.ok("SELECT INBOX")
	other.ok("SELECT INBOX")
	c.ok(`STORE 2,4 +FLAGS.SILENT (\Deleted)`)
	expect(t, other.ok("NOOP"), `* 2 FETCH (FLAGS (\Deleted))`, `* 4 FETCH (FLAGS (\Deleted))`)
	expect(t, c.ok("EXPUNGE"), "* 2 EXPUNGE", "* 3 EXPUNGE")
	expect(t, c.ok("UID SEARCH ALL"), "* SEARCH 1 3 5")
	expect(t, c.ok("EXPUNGE")) // nothing \Deleted any more
	expect(t, other.ok("NOOP"), "* 2 EXPUNGE", "* 3 EXPUNGE")
	if _, st := c.do("EXPUNGE 1"); !strings.HasPrefix(st, "BAD") {
		t.Fatalf("EXPUNGE with argument: %q", st)
	}
}

// UID EXPUNGE removes only the given \Deleted UIDs (rfc4315.txt:75-124).
func TestUIDExpunge(t *testing.T) {
	e := newEnv(t)
	deliverN(e, "INBOX", 5)
	c := e.dial()
	c.ok("SELECT INBOX")
	c.ok(`STORE 1,3,5 +FLAGS.SILENT (\Deleted)`)
	expect(t, c.ok("UID EXPUNGE 2:4"), "* 3 EXPUNGE")
	expect(t, c.ok("UID SEARCH DELETED"), "* SEARCH 1 5")
	// A set naming no message removes nothing (not "all \Deleted").
	expect(t, c.ok("UID EXPUNGE 99"))
	expect(t, c.ok("UID SEARCH DELETED"), "* SEARCH 1 5")
	expect(t, c.ok("UID EXPUNGE 5:*"), "* 4 EXPUNGE")
	expect(t, c.ok("UID SEARCH ALL"), "* SEARCH 1 2 4")
	if _, st := c.do("UID EXPUNGE"); !strings.HasPrefix(st, "BAD") {
		t.Fatalf("UID EXPUNGE without set: %q", st)
	}
}

// EXAMINE: EXPUNGE and UID EXPUNGE fail with NO and change nothing
// (rfc3501.txt:1870-1872: "No changes to the permanent state"); in the
// authenticated state they are BAD.
func TestExpungeReadOnly(t *testing.T) {
	e := newEnv(t)
	deliverN(e, "INBOX", 2)
	c := e.dial()
	c.ok("SELECT INBOX")
	c.ok(`STORE 1 +FLAGS.SILENT (\Deleted)`)
	c.ok("EXAMINE INBOX")
	for _, cmd := range []string{"EXPUNGE", "UID EXPUNGE 1:*"} {
		if u, st := c.do(cmd); !strings.HasPrefix(st, "NO") || len(u) != 0 {
			t.Errorf("%s: %q %q, want NO", cmd, u, st)
		}
	}
	expect(t, c.ok("SEARCH ALL"), "* SEARCH 1 2")
	c.ok("UNSELECT")
	for _, cmd := range []string{"EXPUNGE", "UID EXPUNGE 1"} {
		if _, st := c.do(cmd); !strings.HasPrefix(st, "BAD") {
			t.Errorf("%s unselected: %q, want BAD", cmd, st)
		}
	}
}

// EXPUNGE in a query mailbox deletes the messages (DESIGN "Data model"): they
// leave INBOX too, and a session there sees EXPUNGE.
func TestExpungeInView(t *testing.T) {
	e := newEnv(t)
	deliverN(e, "INBOX", 3)
	c, inbox := e.dial(), e.dial()
	c.ok(`SELECT "All Mail"`)
	inbox.ok("SELECT INBOX")
	c.ok(`STORE 2 +FLAGS.SILENT (\Deleted)`)
	expect(t, c.ok("EXPUNGE"), "* 2 EXPUNGE")
	u := inbox.ok("NOOP")
	if len(u) == 0 || u[len(u)-1] != "* 2 EXPUNGE" {
		t.Fatalf("INBOX NOOP: %q", u)
	}
}
