package imapd

import (
	"testing"

	"decimail/internal/imaptest"
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
	c.OK("SELECT INBOX")
	other.OK("SELECT INBOX")
	c.OK(`STORE 2,4 +FLAGS.SILENT (\Deleted)`)
	imaptest.Expect(t, other.OK("NOOP"), `* 2 FETCH (FLAGS (\Deleted))`, `* 4 FETCH (FLAGS (\Deleted))`)
	imaptest.Expect(t, c.OK("EXPUNGE"), "* 2 EXPUNGE", "* 3 EXPUNGE")
	imaptest.Expect(t, c.OK("UID SEARCH ALL"), "* SEARCH 1 3 5")
	imaptest.Expect(t, c.OK("EXPUNGE")) // nothing \Deleted any more
	imaptest.Expect(t, other.OK("NOOP"), "* 2 EXPUNGE", "* 3 EXPUNGE")
	if _, done := c.Do("EXPUNGE 1"); done.Status != "BAD" {
		t.Fatalf("EXPUNGE with argument: %s", done)
	}
}

// UID EXPUNGE removes only the given \Deleted UIDs (rfc4315.txt:75-124).
func TestUIDExpunge(t *testing.T) {
	e := newEnv(t)
	deliverN(e, "INBOX", 5)
	c := e.dial()
	c.OK("SELECT INBOX")
	c.OK(`STORE 1,3,5 +FLAGS.SILENT (\Deleted)`)
	imaptest.Expect(t, c.OK("UID EXPUNGE 2:4"), "* 3 EXPUNGE")
	imaptest.Expect(t, c.OK("UID SEARCH DELETED"), "* SEARCH 1 5")
	// A set naming no message removes nothing (not "all \Deleted").
	imaptest.Expect(t, c.OK("UID EXPUNGE 99"))
	imaptest.Expect(t, c.OK("UID SEARCH DELETED"), "* SEARCH 1 5")
	imaptest.Expect(t, c.OK("UID EXPUNGE 5:*"), "* 4 EXPUNGE")
	imaptest.Expect(t, c.OK("UID SEARCH ALL"), "* SEARCH 1 2 4")
	if _, done := c.Do("UID EXPUNGE"); done.Status != "BAD" {
		t.Fatalf("UID EXPUNGE without set: %s", done)
	}
}

// EXAMINE: EXPUNGE and UID EXPUNGE fail with NO and change nothing
// (rfc3501.txt:1870-1872: "No changes to the permanent state"); in the
// authenticated state they are BAD.
func TestExpungeReadOnly(t *testing.T) {
	e := newEnv(t)
	deliverN(e, "INBOX", 2)
	c := e.dial()
	c.OK("SELECT INBOX")
	c.OK(`STORE 1 +FLAGS.SILENT (\Deleted)`)
	c.OK("EXAMINE INBOX")
	for _, cmd := range []string{"EXPUNGE", "UID EXPUNGE 1:*"} {
		if u, done := c.Do(cmd); done.Status != "NO" || len(u) != 0 {
			t.Errorf("%s: %q %q, want NO", cmd, u, done)
		}
	}
	imaptest.Expect(t, c.OK("SEARCH ALL"), "* SEARCH 1 2")
	c.OK("UNSELECT")
	for _, cmd := range []string{"EXPUNGE", "UID EXPUNGE 1"} {
		if _, done := c.Do(cmd); done.Status != "BAD" {
			t.Errorf("%s unselected: %s, want BAD", cmd, done)
		}
	}
}

// EXPUNGE in a query mailbox deletes the messages (DESIGN "Data model"): they
// leave INBOX too, and a session there sees EXPUNGE.
func TestExpungeInView(t *testing.T) {
	e := newEnv(t)
	deliverN(e, "INBOX", 3)
	c, inbox := e.dial(), e.dial()
	c.OK(`SELECT "All Mail"`)
	inbox.OK("SELECT INBOX")
	c.OK(`STORE 2 +FLAGS.SILENT (\Deleted)`)
	imaptest.Expect(t, c.OK("EXPUNGE"), "* 2 EXPUNGE")
	u := inbox.OK("NOOP")
	if len(u) == 0 {
		t.Fatal("INBOX NOOP: no EXPUNGE")
	}
	imaptest.Expect(t, u[len(u)-1:], "* 2 EXPUNGE")
}
