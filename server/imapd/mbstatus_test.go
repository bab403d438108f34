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
	// In the order requested (STATUS, rfc3501.txt:2424ff), duplicates once.
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

// TestStatusPipelined: STATUS commands pipelined in one write are answered
// from one read of the store (mailboxStatus); the answers must be each
// mailbox's own, a missing mailbox still NO, and a command in between (an
// APPEND) must not let its effect be hidden by answers read before it.
func TestStatusPipelined(t *testing.T) {
	e := newEnv(t)
	e.deliver("INBOX", testMsg("a"), store.Flags{Seen: true})
	e.deliver("INBOX", testMsg("b"), store.Flags{})
	c := e.dial()
	c.ok("CREATE Work")
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
	c.nc.Write([]byte(b.String()))
	var got []string
	for {
		l := c.line()
		if strings.HasPrefix(l, "p5 ") {
			l = "p5 OK" // APPENDUID varies
		}
		got = append(got, l)
		if strings.HasPrefix(l, "p7 ") {
			break
		}
	}
	want := []string{
		`* STATUS "INBOX" (MESSAGES 2 UNSEEN 1)`, "p1 OK STATUS completed",
		`* STATUS "Work" (MESSAGES 0)`, "p2 OK STATUS completed",
		"p3 NO [NONEXISTENT] no such mailbox",
		`* STATUS "Work" (MESSAGES 0 UNSEEN 0)`, "p4 OK STATUS completed",
		"p5 OK",
		`* STATUS "Work" (MESSAGES 1 UNSEEN 1)`, "p6 OK STATUS completed",
		`* STATUS "INBOX" (MESSAGES 2)`, "p7 OK STATUS completed",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}
