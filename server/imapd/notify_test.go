package imapd

import (
	"regexp"
	"testing"
	"time"

	"decimail/internal/imaptest"
	"decimail/server/store"
)

// TestNotifyAcrossServers: a session under NOTIFY hears, between commands,
// of changes another server process makes (through LISTEN): a flag change
// in another mailbox as STATUS with UNSEEN (FlagChange), an expunge in the
// selected mailbox only at the next NOOP under SELECTED-DELAYED, and
// nothing after NOTIFY NONE.
func TestNotifyAcrossServers(t *testing.T) {
	e := newEnv(t)
	e.deliver("INBOX", testMsg("first"), store.Flags{})
	e.deliver("INBOX", testMsg("second"), store.Flags{})
	other, err := store.Open(t.Context(), e.st.Pool().Config().ConnString(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	_, addr2 := (&testEnv{t: t, st: other, user: e.user}).serve(Config{AuthFailDelay: time.Millisecond})
	writer := (&testEnv{t: t, st: other, user: e.user}).dialAddr(addr2)
	writer.OK("LOGIN u pw")
	writer.OK("CREATE Work")
	writer.OK("SELECT INBOX")
	writer.OK("COPY 1:2 Work")
	writer.OK("UNSELECT")
	c := e.dial()
	c.OK("SELECT INBOX")
	c.OK("NOTIFY SET (selected-delayed (MessageNew MessageExpunge)) (mailboxes Work (MessageNew MessageExpunge FlagChange))")

	// A flag change in Work: STATUS with UNSEEN, no command in progress.
	writer.OK("SELECT Work")
	writer.OK("STORE 1 +FLAGS (\\Seen)")
	expectWithin(t, c, 5*time.Second, `^\* STATUS "?Work"? \(UIDVALIDITY \d+ UNSEEN 1\)$`)

	// An expunge in the selected mailbox waits for a command that allows
	// it (SELECTED-DELAYED).
	writer.OK("SELECT INBOX")
	writer.OK("STORE 2 +FLAGS.SILENT (\\Deleted)")
	writer.OK("EXPUNGE")
	if r, err := c.Poll(1500 * time.Millisecond); r != nil || err != nil {
		t.Fatalf("under SELECTED-DELAYED, before any command: %v %v", r, err)
	}
	// The flag change Work's STORE made to the message INBOX shares
	// (copies share a message and its flags) comes now too: FlagChange
	// was not asked for the selected mailbox.
	u := c.OK("NOOP")
	imaptest.Expect(t, u, "* 2 EXPUNGE", `* 1 FETCH (FLAGS (\Seen))`)

	// NOTIFY NONE: nothing more between commands.
	c.OK("NOTIFY NONE")
	writer.OK("SELECT Work")
	writer.OK("STORE 2 +FLAGS (\\Seen)")
	if r, err := c.Poll(1500 * time.Millisecond); r != nil || err != nil {
		t.Fatalf("after NOTIFY NONE: %v %v", r, err)
	}
}

// expectWithin reads the next response, which must come within d and
// match the regular expression want.
func expectWithin(t *testing.T, c *imaptest.TestClient, d time.Duration, want string) {
	t.Helper()
	r, err := c.Poll(d)
	if r == nil {
		t.Fatalf("no %q within %v: %v", want, d, err)
	}
	if !regexp.MustCompile(want).MatchString(r.String()) {
		t.Fatalf("got %s, want %q", r, want)
	}
}
