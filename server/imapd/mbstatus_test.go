package imapd

import (
	"fmt"
	"strings"
	"testing"

	"decimail/internal/imaptest"
	"decimail/server/store"
)

func TestStatusItems(t *testing.T) {
	e := newEnv(t)
	e.deliver("INBOX", testMsg("a"), store.Flags{Seen: true})
	e.deliver("INBOX", testMsg("b"), store.Flags{})
	e.deliver("INBOX", testMsg("c"), store.Flags{})
	ib, _ := e.st.Mailbox(t.Context(), e.user.ID, "INBOX")
	c := e.dial()
	// In the order requested (STATUS, rfc3501.txt:2424ff), duplicates once.
	imaptest.ExpectExact(t, c.OK("STATUS inbox (UNSEEN MESSAGES RECENT UIDVALIDITY UIDNEXT MAILBOXID unseen)"),
		fmt.Sprintf(`* STATUS "INBOX" (UNSEEN 2 MESSAGES 3 RECENT 3 UIDVALIDITY %d UIDNEXT 4 MAILBOXID (%s))`, ib.UIDValidity, e.st.ObjectIDs().Mailbox(ib.ID)))
	// STATUS of the selected mailbox is allowed; its messages are no
	// longer recent for others once selected.
	c.OK("SELECT INBOX")
	imaptest.Expect(t, c.OK("STATUS INBOX (MESSAGES RECENT)"), `* STATUS "INBOX" (MESSAGES 3 RECENT 0)`)
	imaptest.Expect(t, c.OK(`STATUS "All Mail" (MESSAGES)`), `* STATUS "All Mail" (MESSAGES 3)`)
	// STATUS=SIZE (RFC 8438) is advertised and answered; switched off, SIZE is BAD.
	if u := c.OK("STATUS INBOX (SIZE)"); len(u) != 1 || !imaptest.Match(u[0], `* STATUS "INBOX" (SIZE ?)`) {
		t.Fatalf("STATUS SIZE: %q", u)
	}
	for cmd, want := range map[string]string{
		"STATUS NoSuch (MESSAGES)": "NO [NONEXISTENT] *",
		"STATUS INBOX (FROBS)":     "BAD *",
		"STATUS INBOX MESSAGES":    "BAD *",
		"STATUS INBOX ()":          "BAD *",
		"STATUS INBOX":             "BAD *",
	} {
		if _, done := c.Do(cmd); !imaptest.MatchStatus(done, want) {
			t.Errorf("%s: %s", cmd, done)
		}
	}
}

// TestStatusPipelined: STATUS commands pipelined in one write are answered
// from one read of the store (mailboxStatus); the answers must be each
// mailbox's own, a missing mailbox still NO, and a command in between (an
// APPEND) must not let its effect be hidden by answers read before it.
func TestStatusPipelined(t *testing.T) {
	e := newEnv(t)
	e.deliver("INBOX", testMsg("a"), store.Flags{Seen: true})
	e.deliver("INBOX", testMsg("b"), store.Flags{})
	c := e.dial()
	c.OK("CREATE Work")
	work, err := e.st.Mailbox(t.Context(), e.user.ID, "Work")
	if err != nil {
		t.Fatal(err)
	}
	msg := testMsg("c")
	var b strings.Builder
	for _, cmd := range []string{
		`p1 STATUS INBOX (MESSAGES UNSEEN)`,
		`p2 STATUS "Work" (MESSAGES)`,
		`p3 STATUS NoSuch (MESSAGES)`,
		`p4 STATUS Work (MESSAGES UNSEEN)`,
		fmt.Sprintf("p5 APPEND Work {%d+}\r\n%s", len(msg), msg),
		`p6 STATUS Work (MESSAGES UNSEEN)`,
		`p7 STATUS inbox (MESSAGES)`,
	} {
		b.WriteString(cmd + "\r\n")
	}
	// One write, so that the server reads the commands together.
	if err := c.Write([]byte(b.String())); err != nil {
		t.Fatal(err)
	}
	u, done := c.Until("p7")
	imaptest.Expect(t, append(u, done),
		`* STATUS "INBOX" (MESSAGES 2 UNSEEN 1)`, "p1 OK STATUS completed",
		`* STATUS "Work" (MESSAGES 0)`, "p2 OK STATUS completed",
		"p3 NO [NONEXISTENT] no such mailbox",
		`* STATUS "Work" (MESSAGES 0 UNSEEN 0)`, "p4 OK STATUS completed",
		fmt.Sprintf("p5 OK [APPENDUID %d 1] APPEND completed", work.UIDValidity),
		`* STATUS "Work" (MESSAGES 1 UNSEEN 1)`, "p6 OK STATUS completed",
		`* STATUS "INBOX" (MESSAGES 2)`, "p7 OK STATUS completed")
}
