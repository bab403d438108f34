package imapd

import (
	"fmt"
	"testing"

	"decimail/internal/imaptest"
	"decimail/server/store"
)

func deliverN(e *testEnv, folder string, n int) {
	for i := range n {
		e.deliver(folder, testMsg(fmt.Sprint("msg ", i+1)), store.Flags{})
	}
}

// All STORE forms (RFC 3501 §6.4.6, rfc3501.txt:3239-3286): FLAGS, +FLAGS,
// -FLAGS, .SILENT, a flag list or bare flags, keywords, \Recent ignored,
// case-insensitive item names; UID STORE adds UID (rfc3501.txt:3390-3393:
// "MUST implicitly include the UID message data item").
func TestStoreForms(t *testing.T) {
	e := newEnv(t)
	deliverN(e, "INBOX", 3)
	c := e.dial()
	c.OK("SELECT INBOX")
	imaptest.Expect(t, c.OK(`STORE 1 +FLAGS (\Flagged)`), `* 1 FETCH (FLAGS (\Flagged \Recent))`)
	// A keyword new to the mailbox: FLAGS first (keywords_test.go).
	imaptest.Expect(t, c.OK(`store 1 flags (\Seen $Work \Recent)`), append(flagsLines(" $Work"), `* 1 FETCH (FLAGS (\Seen $Work \Recent))`)...)
	imaptest.Expect(t, c.OK(`STORE 1 -FLAGS $work`), `* 1 FETCH (FLAGS (\Seen \Recent))`)
	imaptest.Expect(t, c.OK(`STORE 1:2 +Flags \Answered \Draft`),
		`* 1 FETCH (FLAGS (\Answered \Seen \Draft \Recent))`, `* 2 FETCH (FLAGS (\Answered \Draft \Recent))`)
	imaptest.Expect(t, c.OK(`STORE 2:* +FLAGS.SILENT (\Deleted)`))
	imaptest.Expect(t, c.OK(`SEARCH DELETED`), "* SEARCH 2 3")
	imaptest.Expect(t, c.OK(`STORE 2 -flags.silent \Deleted`))
	imaptest.Expect(t, c.OK(`SEARCH DELETED`), "* SEARCH 3")
	imaptest.Expect(t, c.OK(`STORE 1:3 FLAGS.SILENT ()`))
	imaptest.Expect(t, c.OK(`SEARCH OR OR ANSWERED DELETED OR SEEN DRAFT`), "* SEARCH")
	// Unchanged messages are reported too: "as if a FETCH" (rfc3501.txt:3259).
	imaptest.Expect(t, c.OK(`STORE 3 -FLAGS (\Seen)`), `* 3 FETCH (FLAGS (\Recent))`)
	imaptest.Expect(t, c.OK(`UID STORE 2,3 +FLAGS (Junk)`), flagsLines(" $Work Junk")[0], flagsLines(" $Work Junk")[1], `* 2 FETCH (UID 2 FLAGS (Junk \Recent))`, `* 3 FETCH (UID 3 FLAGS (Junk \Recent))`)
	imaptest.Expect(t, c.OK(`UID STORE 1:* FLAGS ()`), `* 1 FETCH (UID 1 FLAGS (\Recent))`, `* 2 FETCH (UID 2 FLAGS (\Recent))`, `* 3 FETCH (UID 3 FLAGS (\Recent))`)
	// A UID that does not exist is ignored (rfc3501.txt:3350-3353: "A non-existent
	// unique identifier is ignored").
	imaptest.Expect(t, c.OK(`UID STORE 99 +FLAGS (\Seen)`))
	// The session's own change is not repeated by the poll.
	imaptest.Expect(t, c.OK("NOOP"))

	for _, cmd := range []string{
		`STORE 1 +FLAGS (\Foo)`, `STORE 1 +FLAGS (\*)`, `STORE 1 FROB (\Seen)`, `STORE 1 +FLAGS`,
		`STORE 4 +FLAGS (\Seen)`, `STORE 1 +FLAGS ("\Seen")`, `STORE 1 +FLAGS (a]b)`, `STORE 1 FLAGS.LOUD (\Seen)`,
		`STORE 1 +FLAGS ((\Seen))`, `STORE 1 +FLAGS (\Seen) (\Draft)`,
	} {
		if u, done := c.Do(cmd); done.Status != "BAD" || len(u) != 0 {
			t.Errorf("%s: %q %q, want BAD", cmd, u, done)
		}
	}
	c2 := e.dial()
	if _, done := c2.Do(`STORE 1 +FLAGS (\Seen)`); done.Status != "BAD" {
		t.Errorf("STORE unselected: %s", done)
	}
}

// EXAMINE: no changes permitted (rfc3501.txt:1870-1872: "No changes to the
// permanent state of the mailbox").
func TestStoreReadOnly(t *testing.T) {
	e := newEnv(t)
	deliverN(e, "INBOX", 1)
	c := e.dial()
	c.OK("EXAMINE INBOX")
	for _, cmd := range []string{`STORE 1 +FLAGS (\Seen)`, `UID STORE 1 FLAGS.SILENT (\Deleted)`} {
		if u, done := c.Do(cmd); done.Status != "NO" || len(u) != 0 {
			t.Errorf("%s: %q %q, want NO", cmd, u, done)
		}
	}
	imaptest.Expect(t, c.OK("SEARCH SEEN"), "* SEARCH")
}

// Another session sees a STORE as FETCH FLAGS at its next NOOP
// (rfc3501.txt:4071-4090).
func TestStoreSeenByOtherSession(t *testing.T) {
	e := newEnv(t)
	deliverN(e, "INBOX", 2)
	c1, c2 := e.dial(), e.dial()
	c1.OK("SELECT INBOX")
	c2.OK("SELECT INBOX")
	imaptest.Expect(t, c1.OK(`STORE 2 +FLAGS (\Flagged $Label1)`), append(flagsLines(" $Label1"), `* 2 FETCH (FLAGS (\Flagged $Label1 \Recent))`)...)
	imaptest.Expect(t, c2.OK("NOOP"), append(flagsLines(" $Label1"), `* 2 FETCH (FLAGS (\Flagged $Label1))`)...)
	imaptest.Expect(t, c2.OK("NOOP"))
	imaptest.Expect(t, c1.OK("NOOP"))
}

// .SILENT +FLAGS after another session's change: the client did not know the
// other change, so it is still reported (rfc3501.txt:3233-3238), once.
func TestStoreSilentKeepsExternalChanges(t *testing.T) {
	e := newEnv(t)
	deliverN(e, "INBOX", 1)
	c1, c2 := e.dial(), e.dial()
	c1.OK("SELECT INBOX")
	c2.OK("SELECT INBOX")
	c2.OK(`STORE 1 +FLAGS (\Draft)`)
	u := c1.OK(`STORE 1 +FLAGS.SILENT (\Seen)`)
	u = append(u, c1.OK("NOOP")...)
	imaptest.Expect(t, u, `* 1 FETCH (FLAGS (\Draft \Recent))`)
	imaptest.Expect(t, c1.OK("SEARCH SEEN DRAFT"), "* SEARCH 1")
	imaptest.Expect(t, c2.OK("NOOP"), `* 1 FETCH (FLAGS (\Seen \Draft))`)
}

// Flagging a message makes it enter the "Flagged" view: a session that has
// it selected gets EXISTS at NOOP.
func TestStoreFlaggedEntersView(t *testing.T) {
	e := newEnv(t)
	deliverN(e, "INBOX", 2)
	c1, c2 := e.dial(), e.dial()
	c1.OK("SELECT INBOX")
	u := c2.OK("SELECT Flagged")
	imaptest.Expect(t, u[1:2], "* 0 EXISTS")
	c1.OK(`STORE 2 +FLAGS.SILENT (\Flagged)`)
	imaptest.Expect(t, c2.OK("NOOP"), "* 1 EXISTS", "* 1 RECENT")
	imaptest.Expect(t, c2.OK("SEARCH FLAGGED"), "* SEARCH 1")
	// Unflagging it there: it leaves, but this session keeps it until a
	// sync point, CHECK (README "Own changes in a view").
	imaptest.Expect(t, c2.OK(`STORE 1 -FLAGS (\Flagged)`), `* 1 FETCH (FLAGS (\Recent))`)
	imaptest.Expect(t, c2.OK("SEARCH ALL"), "* SEARCH 1")
	imaptest.Expect(t, c2.OK("NOOP"))
	imaptest.Expect(t, c2.OK("CHECK"), "* 1 EXPUNGE")
}

// \Seen makes a message leave "Unread"; the session whose STORE did it
// keeps it, at its number and UID, until its next sync point (CHECK: README
// "Own changes in a view"), even across UID STORE, which may send EXPUNGE
// (rfc3501.txt:4061); another session in Unread is told at once.
func TestStoreSeenLeavesUnread(t *testing.T) {
	e := newEnv(t)
	deliverN(e, "INBOX", 3)
	c := e.dial()
	c.OK("SELECT Unread")
	imaptest.Expect(t, c.OK(`STORE 1 +FLAGS (\Seen)`), `* 1 FETCH (FLAGS (\Seen \Recent))`)
	imaptest.Expect(t, c.OK("SEARCH ALL"), "* SEARCH 1 2 3")
	imaptest.Expect(t, c.OK("SEARCH UNSEEN"), "* SEARCH 2 3")
	imaptest.Expect(t, c.OK(`STORE 2 +FLAGS (\Flagged)`), `* 2 FETCH (FLAGS (\Flagged \Recent))`)
	imaptest.Expect(t, c.OK("NOOP"))
	imaptest.Expect(t, c.OK("CHECK"), "* 1 EXPUNGE")
	imaptest.Expect(t, c.OK(`UID STORE 3 +FLAGS (\Seen)`), `* 2 FETCH (UID 3 FLAGS (\Seen \Recent))`)
	imaptest.Expect(t, c.OK("SEARCH ALL"), "* SEARCH 1 2")
	// Read from the message itself (its membership row is gone).
	if u := c.OK("UID FETCH 3 (FLAGS RFC822.SIZE)"); len(u) != 1 || u[0].Attrs()["RFC822.SIZE"].S == "" {
		t.Fatalf("UID FETCH of the held message: %s", u)
	}
	// Another session in Unread sees the EXPUNGE at NOOP.
	c2 := e.dial()
	c2.OK("SELECT Unread")
	c.OK(`STORE 1 +FLAGS.SILENT (\Seen)`)
	imaptest.Expect(t, c2.OK("NOOP"), "* 1 EXPUNGE")
	imaptest.Expect(t, c.OK("CHECK"), "* 1 EXPUNGE", "* 1 EXPUNGE")
}

// BenchmarkStoreAll: one STORE over 1,000 messages, silent and not.
func BenchmarkStoreAll(b *testing.B) {
	e := newEnv(b)
	benchFill(e, 1000)
	c := e.dial()
	c.OK("SELECT INBOX")
	b.ResetTimer()
	for b.Loop() {
		if u := c.OK(`UID STORE 1:* +FLAGS.SILENT (\Seen)`); len(u) != 0 {
			b.Fatalf("%.80q", u)
		}
		if u := c.OK(`UID STORE 1:* -FLAGS (\Seen)`); len(u) != 1000 {
			b.Fatalf("%d responses", len(u))
		}
	}
}

// A message this session's own STORE takes out of a view is held until a
// sync point: CHECK and EXPUNGE send its EXPUNGE; NOOP, IDLE and UID
// commands in between do not (README "Own changes in a view", issue 14:
// Thunderbird idles after every command).
func TestHeldUntilSyncPoint(t *testing.T) {
	for _, sync := range []string{"CHECK", "EXPUNGE"} {
		t.Run(sync, func(t *testing.T) {
			e := newEnv(t)
			deliverN(e, "INBOX", 3)
			c := e.dial()
			c.OK("SELECT Unread")
			imaptest.Expect(t, c.OK(`STORE 1 +FLAGS.SILENT (\Seen)`))
			imaptest.Expect(t, c.OK("UID FETCH 1:* (UID)"), "* 1 FETCH (UID 1)", "* 2 FETCH (UID 2)", "* 3 FETCH (UID 3)")
			imaptest.Expect(t, c.OK("UID SEARCH UNSEEN"), "* SEARCH 2 3")
			imaptest.Expect(t, c.OK("NOOP"))
			c.Send("i1 IDLE")
			if r := c.Next(); r.Tag != "+" {
				t.Fatalf("IDLE: %s", r)
			}
			// Another session's change wakes the IDLE: it is reported, the
			// held message is not.
			e.deliver("INBOX", testMsg("new"), store.Flags{})
			imaptest.Expect(t, []*imaptest.Resp{c.Next()}, "* 4 EXISTS")
			imaptest.Expect(t, []*imaptest.Resp{c.Next()}, "* 4 RECENT")
			c.Send("DONE")
			c.Until("i1")
			imaptest.Expect(t, c.OK(sync), "* 1 EXPUNGE")
			imaptest.Expect(t, c.OK("UID FETCH 1:* (UID)"), "* 1 FETCH (UID 2)", "* 2 FETCH (UID 3)", "* 3 FETCH (UID 4)")
		})
	}
}

// A view selected empty learns message ids from the changes: a message
// that entered it, then left by this session's STORE, is still moved by
// UID MOVE (the view kept no ids when it started empty: issue 14).
func TestHeldAfterEmptySelect(t *testing.T) {
	e := newEnv(t)
	deliverN(e, "INBOX", 2)
	trash := uidValidity(t, e, "Trash")
	c, c2 := e.dial(), e.dial()
	imaptest.Expect(t, c.OK("SELECT Flagged")[1:2], "* 0 EXISTS")
	c2.OK("SELECT INBOX")
	c2.OK(`STORE 2 +FLAGS.SILENT (\Flagged)`)
	imaptest.Expect(t, c.OK("NOOP"), "* 1 EXISTS", "* 1 RECENT")
	imaptest.Expect(t, c.OK(`UID STORE 1 -FLAGS (\Flagged)`), `* 1 FETCH (UID 1 FLAGS (\Recent))`)
	imaptest.Expect(t, c.OK("UID MOVE 1 Trash"), fmt.Sprintf("* OK [COPYUID %d 1 1] moved", trash), "* 1 EXPUNGE")
	imaptest.Expect(t, c2.OK("NOOP"), "* 2 EXPUNGE")
	imaptest.Expect(t, c.OK("STATUS Trash (MESSAGES)"), `* STATUS "Trash" (MESSAGES 1)`)
}

// A held message's flags stay current: another session's change reaches
// this session as for any message of its view, at the held number, though
// the mailbox's rows no longer show it (store.ChangesSinceHeld).
func TestHeldFlagsStayCurrent(t *testing.T) {
	e := newEnv(t)
	deliverN(e, "INBOX", 2)
	c, c2 := e.dial(), e.dial()
	c.OK("SELECT Unread")
	c2.OK("SELECT INBOX")
	imaptest.Expect(t, c.OK(`UID STORE 1 +FLAGS.SILENT (\Seen)`))
	c2.OK(`STORE 1 +FLAGS.SILENT (\Flagged)`)
	imaptest.Expect(t, c.OK("UID FETCH 1 (FLAGS)"), `* 1 FETCH (FLAGS (\Flagged \Seen \Recent))`,
		`* 1 FETCH (UID 1 FLAGS (\Seen \Flagged \Recent))`)
	c2.OK(`STORE 1 -FLAGS.SILENT (\Flagged)`)
	imaptest.Expect(t, c.OK("UID SEARCH FLAGGED"), "* SEARCH", `* 1 FETCH (FLAGS (\Seen \Recent))`)
	imaptest.Expect(t, c.OK("NOOP"))
	imaptest.Expect(t, c.OK("CHECK"), "* 1 EXPUNGE")
}
