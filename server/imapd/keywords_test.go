package imapd

import (
	"fmt"
	"testing"

	"decimail/internal/imaptest"
	"decimail/server/store"
)

// The FLAGS a session announced, and the PERMANENTFLAGS that follows them,
// for a mailbox of the system flags plus kws.
func flagsLines(kws string) []string {
	return []string{`* FLAGS (\Answered \Flagged \Deleted \Seen \Draft` + kws + `)`,
		`* OK [PERMANENTFLAGS (\Answered \Flagged \Deleted \Seen \Draft` + kws + ` \*)] flags permitted`}
}

// A keyword new to the mailbox is announced to every session that has it
// selected, the one that stored it included, with FLAGS and PERMANENTFLAGS
// before any FETCH that uses it (rfc3501.txt:3950: "The update from the
// FLAGS response MUST be recorded by the client"); once only: the set
// grows and never shrinks while selected.
func TestKeywordAnnouncedBeforeFetch(t *testing.T) {
	e := newEnv(t)
	deliverN(e, "INBOX", 3)
	c1, c2 := e.dial(), e.dial()
	c1.OK("SELECT INBOX")
	c2.OK("SELECT INBOX")

	imaptest.Expect(t, c1.OK(`STORE 1 +FLAGS ($Foo)`),
		append(flagsLines(" $Foo"), `* 1 FETCH (FLAGS ($Foo \Recent))`)...)
	imaptest.Expect(t, c2.OK("NOOP"), append(flagsLines(" $Foo"), `* 1 FETCH (FLAGS ($Foo))`)...)
	// Known now, in any case: no FLAGS again.
	imaptest.Expect(t, c1.OK(`UID STORE 2 +FLAGS ($foo)`), `* 2 FETCH (UID 2 FLAGS ($foo \Recent))`)
	imaptest.Expect(t, c2.OK("NOOP"), `* 2 FETCH (FLAGS ($foo))`)
	// Removed from every message: still announced (the set does not
	// shrink while selected), and a new one joins it.
	imaptest.Expect(t, c1.OK(`STORE 1:2 -FLAGS ($Foo)`), `* 1 FETCH (FLAGS (\Recent))`, `* 2 FETCH (FLAGS (\Recent))`)
	imaptest.Expect(t, c1.OK(`STORE 3 FLAGS (\Seen Work)`),
		append(flagsLines(" $Foo Work"), `* 3 FETCH (FLAGS (\Seen Work \Recent))`)...)
	imaptest.Expect(t, c2.OK("NOOP"), append(flagsLines(" $Foo Work"),
		`* 1 FETCH (FLAGS ())`, `* 2 FETCH (FLAGS ())`, `* 3 FETCH (FLAGS (\Seen Work))`)...)
	// .SILENT: no FETCH, but FLAGS all the same.
	imaptest.Expect(t, c1.OK(`STORE 1 +FLAGS.SILENT (Later)`), flagsLines(" $Foo Work Later")...)
	imaptest.Expect(t, c2.OK("NOOP"), append(flagsLines(" $Foo Work Later"), `* 1 FETCH (FLAGS (Later))`)...)
	// A FLAGS STORE (not +FLAGS) with .SILENT goes through the store's
	// generic path: announced by the post-command poll.
	imaptest.Expect(t, c1.OK(`STORE 2 FLAGS.SILENT (Other)`), flagsLines(" $Foo Work Later Other")...)
	imaptest.Expect(t, c1.OK("NOOP"))
	// Reselecting starts from the keywords in use (after [CLOSED], RFC 7162 §3.2.11).
	imaptest.Expect(t, c2.OK("EXAMINE INBOX")[1:2], `* FLAGS (\Answered \Flagged \Deleted \Seen \Draft Later Other Work)`)
	// Read-only sessions learn new keywords too, with PERMANENTFLAGS ().
	c1.OK(`STORE 1 +FLAGS.SILENT (Fresh)`)
	imaptest.Expect(t, c2.OK("NOOP"), `* FLAGS (\Answered \Flagged \Deleted \Seen \Draft Later Other Work Fresh)`,
		`* OK [PERMANENTFLAGS ()] read-only mailbox`, `* 1 FETCH (FLAGS (Later Fresh))`)
}

// A session in IDLE gets the FLAGS before the FETCH (rfc2177.txt: the
// server sends "untagged EXISTS, EXPUNGE" and other updates while idling).
func TestKeywordAnnouncedInIdle(t *testing.T) {
	e := newEnv(t)
	deliverN(e, "INBOX", 1)
	idler, writer := e.dial(), e.dial()
	idler.OK("SELECT INBOX")
	writer.OK("SELECT INBOX")
	idler.Send("i1 IDLE")
	if r := idler.Next(); r.Tag != "+" {
		t.Fatalf("IDLE: %s", r)
	}
	writer.OK(`STORE 1 +FLAGS ($Foo)`)
	idler.Expect(append(flagsLines(" $Foo"), `* 1 FETCH (FLAGS ($Foo \Recent))`)...)
	idler.Send("DONE")
	_, done := idler.Until("i1")
	imaptest.ExpectDone(t, done, "OK IDLE completed")
}

// APPEND, COPY and MOVE bring keywords into a selected mailbox: FLAGS and
// PERMANENTFLAGS go before the EXISTS (Dovecot's order too).
func TestKeywordAnnouncedByAppendCopyMove(t *testing.T) {
	e := newEnv(t)
	deliverN(e, "INBOX", 2)
	e.deliver("Archive", testMsg("archived"), store.Flags{Keywords: []string{"Old"}})
	e.deliver("Archive", testMsg("to move"), store.Flags{Keywords: []string{"Moved"}})
	c1, c2 := e.dial(), e.dial()
	c1.OK("SELECT INBOX")
	c2.OK("SELECT Archive")

	msg := testMsg("appended")
	u, done := c1.Do(fmt.Sprintf("APPEND INBOX ($Foo) {%d+}\r\n%s", len(msg), msg))
	if done.Status != "OK" {
		t.Fatalf("APPEND: %s", done)
	}
	imaptest.Expect(t, u, append(flagsLines(" $Foo"), "* 3 EXISTS", "* 3 RECENT")...)
	// COPY into a mailbox another session has selected.
	c1.OK(`STORE 1 +FLAGS.SILENT (Copied)`)
	imaptest.Expect(t, c1.OK("NOOP"))
	c1.OK("COPY 1 Archive")
	imaptest.Expect(t, c2.OK("NOOP"), append(flagsLines(" Moved Old Copied"), "* 3 EXISTS", "* 3 RECENT")...)
	// COPY into the selected mailbox itself.
	c2.OK(`STORE 1 +FLAGS.SILENT (Back)`)
	imaptest.Expect(t, c2.OK("COPY 1 INBOX"))
	imaptest.Expect(t, c1.OK("NOOP"), append(flagsLines(" $Foo Copied Back Old"), "* 4 EXISTS", "* 4 RECENT")...)
	// MOVE likewise.
	imaptest.Expect(t, c2.OK("MOVE 2 INBOX")[1:], "* 2 EXPUNGE")
	imaptest.Expect(t, c1.OK("NOOP"), append(flagsLines(" $Foo Copied Back Old Moved"), "* 5 EXISTS", "* 5 RECENT")...)
}
