package imapd

import (
	"fmt"
	"strings"
	"testing"

	"decimail/server/store"
)

func TestStatusItems(t *testing.T) {
	e := newEnv(t)
	e.deliver("INBOX", testMsg("a"), store.Flags{Seen: true})
	e.deliver("INBOX", testMsg("b"), store.Flags{})
	e.deliver("INBOX", testMsg("c"), store.Flags{})
	ib, _ := e.st.Mailbox(t.Context(), e.user.ID, "INBOX")
	c := e.dial()
	// In the order requested (rfc3501.txt:2424ff), duplicates once.
	expect(t, c.ok("STATUS inbox (UNSEEN MESSAGES RECENT UIDVALIDITY UIDNEXT MAILBOXID unseen)"),
		fmt.Sprintf(`* STATUS "INBOX" (UNSEEN 2 MESSAGES 3 RECENT 3 UIDVALIDITY %d UIDNEXT 4 MAILBOXID (M%d))`, ib.UIDValidity, ib.ID))
	// STATUS of the selected mailbox is allowed; its messages are no
	// longer recent for others once selected.
	c.ok("SELECT INBOX")
	expect(t, c.ok("STATUS INBOX (MESSAGES RECENT)"), `* STATUS "INBOX" (MESSAGES 3 RECENT 0)`)
	expect(t, c.ok(`STATUS "All Mail" (MESSAGES)`), `* STATUS "All Mail" (MESSAGES 3)`)
	// STATUS=SIZE (RFC 8438) is advertised and answered; switched off, SIZE is BAD.
	if u := c.ok("STATUS INBOX (SIZE)"); len(u) != 1 || !strings.HasPrefix(u[0], `* STATUS "INBOX" (SIZE `) {
		t.Fatalf("STATUS SIZE: %q", u)
	}
	for cmd, want := range map[string]string{
		"STATUS NoSuch (MESSAGES)": "NO [NONEXISTENT]",
		"STATUS INBOX (FROBS)":     "BAD",
		"STATUS INBOX MESSAGES":    "BAD",
		"STATUS INBOX ()":          "BAD",
		"STATUS INBOX":             "BAD",
	} {
		if _, st := c.do(cmd); !strings.HasPrefix(st, want) {
			t.Errorf("%s: %s", cmd, st)
		}
	}
}
