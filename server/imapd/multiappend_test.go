package imapd

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"decimail/internal/imaptest"
	"decimail/server/store"
)

// litArg is a non-synchronising literal with its octets.
func litArg(s string) string { return fmt.Sprintf("{%d+}\r\n%s", len(s), s) }

// MULTIAPPEND (RFC 3502): several messages in one APPEND, each with its own
// flags and date, stored in order; APPENDUID carries their UIDs as a set
// (rfc4315.txt:155-160); the selected session sees them before the OK.
func TestMultiAppend(t *testing.T) {
	e := newEnv(t)
	c := e.dial()
	if caps := c.OK("CAPABILITY")[0].String(); !strings.Contains(caps, " MULTIAPPEND") {
		t.Fatalf("capabilities: %s", caps)
	}
	c.OK("SELECT INBOX")
	inbox, _ := e.st.Mailbox(t.Context(), e.user.ID, "INBOX")
	u, done := c.Do(`APPEND INBOX (\Seen) "02-Nov-2026 09:00:00 +0000" ` + litArg(testMsg("one")) + ` (\Flagged) ` + litArg(testMsg("two")) +
		" " + litArg(testMsg("three")))
	imaptest.Expect(t, u, "* 3 EXISTS", "* 3 RECENT")
	imaptest.ExpectDone(t, done, fmt.Sprintf("OK [APPENDUID %d 1:3] APPEND completed", inbox.UIDValidity))
	subj := func(s string) string { s = "Subject: " + s + "\r\n\r\n"; return fmt.Sprintf("{%d}\r\n%s", len(s), s) }
	imaptest.Expect(t, c.OK("FETCH 1:3 (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])"),
		`* 1 FETCH (FLAGS (\Seen \Recent) BODY[HEADER.FIELDS (SUBJECT)] `+subj("one")+`)`,
		`* 2 FETCH (FLAGS (\Flagged \Recent) BODY[HEADER.FIELDS (SUBJECT)] `+subj("two")+`)`,
		`* 3 FETCH (FLAGS (\Recent) BODY[HEADER.FIELDS (SUBJECT)] `+subj("three")+`)`)
	imaptest.Expect(t, c.OK("FETCH 1 INTERNALDATE"), `* 1 FETCH (INTERNALDATE "02-Nov-2026 09:00:00 +0000")`)

	// One message: APPENDUID with one UID: "MUST NOT send a range such as
	// 123:123" (rfc4315.txt:162-166).
	_, done = c.Do(appendCmd("INBOX", "", testMsg("four")))
	imaptest.ExpectDone(t, done, fmt.Sprintf("OK [APPENDUID %d 4] APPEND completed", inbox.UIDValidity))
	c.OK("NOOP")
}

// A MULTIAPPEND with a bad message anywhere stores nothing (rfc3502.txt:
// 143-146): a zero-length second message, a bad flag, a bad date, a
// missing literal, a CATENATE URL to nothing, a message over the limit.
func TestMultiAppendAllOrNone(t *testing.T) {
	e := newEnv(t)
	_, addr := e.serve(Config{MaxAppendLiteral: 4096, MaxLiteral: 1024})
	c := e.dialAddr(addr)
	c.OK("LOGIN u pw")
	one := litArg(testMsg("one"))
	big := testMsg("big") + strings.Repeat("x", 1800) + "\r\n" // 2,000 octets
	for _, tc := range []struct{ cmd, want string }{
		{"APPEND INBOX " + one + " {0+}\r\n", "NO can't save a zero byte message"},
		{"APPEND INBOX " + one + ` (\Bogus) ` + one, "BAD unknown system flag"},
		{"APPEND INBOX " + one + ` "31-Feb-2026 10:00:00 +0100" ` + one, `BAD invalid date-time "31-Feb-2026 10:00:00 +0100"`},
		{"APPEND INBOX " + one + ` (\Seen)`, "BAD syntax error: APPEND: message literal expected"},
		{"APPEND INBOX " + one + ` CATENATE (URL "/INBOX/;UID=1")`, `NO [BADURL /INBOX/;UID=1] bad URL`},
		{"APPEND Nosuch " + one + " " + one, "NO [TRYCREATE] no such mailbox"},
		{"APPEND Flagged " + one + " " + one, "NO [CANNOT] cannot append to a query mailbox"},
	} {
		if _, done := c.Do(tc.cmd); imaptest.DiffDone(done, tc.want) != "" {
			t.Errorf("%.60q: got %q, want %q", tc.cmd, done, tc.want)
		}
	}
	// Each message may have the APPEND limit; all literals of the command
	// together the limit plus MaxLiteral: the third one is refused before it
	// is sent (a synchronising literal, wire_read.go).
	c.Send("t1 APPEND INBOX " + litArg(big) + " " + litArg(big) + fmt.Sprintf(" {%d}", len(big)))
	if _, done := c.Until("t1"); done.Status != "NO" || done.CodeName() != "TOOBIG" {
		t.Fatalf("MULTIAPPEND over the command's limit: %s", done)
	}
	imaptest.Expect(t, c.OK("STATUS INBOX (MESSAGES UIDNEXT)"), `* STATUS "INBOX" (MESSAGES 0 UIDNEXT 1)`)
	// Two of them fit, and are stored.
	c.OK("APPEND INBOX " + litArg(big) + " " + litArg(big))
	imaptest.Expect(t, c.OK("STATUS INBOX (MESSAGES UIDNEXT)"), `* STATUS "INBOX" (MESSAGES 2 UIDNEXT 3)`)
}

// Large messages of a MULTIAPPEND are streamed to spool files and stored
// byte for byte, in order (wire_read.go spoolAbove).
func TestMultiAppendSpooled(t *testing.T) {
	e := newEnv(t)
	c := e.dial()
	var msgs []string
	cmd := "APPEND INBOX"
	for i := range 3 {
		m := testMsg(fmt.Sprintf("big %d", i)) + strings.Repeat(fmt.Sprintf("line %d of a large message\r\n", i), 4000)
		msgs = append(msgs, m)
		cmd += " " + litArg(m)
	}
	c.OK(cmd)
	inbox, _ := e.st.Mailbox(t.Context(), e.user.ID, "INBOX")
	var got []string
	err := e.st.Fetch(t.Context(), inbox.Box(), []uint32{1, 2, 3}, store.FetchCols{Header: true, Body: true}, func(r *store.FetchRow) error {
		got = append(got, string(r.Header)+string(r.Body))
		return nil
	})
	if err != nil || len(got) != 3 {
		t.Fatal(err, len(got))
	}
	for i := range msgs {
		if got[i] != msgs[i] {
			t.Errorf("message %d: %d octets stored, %d sent", i+1, len(got[i]), len(msgs[i]))
		}
	}
}

// Switched off, MULTIAPPEND is not advertised and a second message is BAD.
func TestMultiAppendDisabled(t *testing.T) {
	e := newEnv(t)
	_, addr := e.serve(Config{Disabled: map[string]bool{"MULTIAPPEND": true}, AuthFailDelay: time.Millisecond})
	c := e.dialAddr(addr)
	c.OK("LOGIN u pw")
	if caps := c.OK("CAPABILITY")[0].String(); strings.Contains(caps, "MULTIAPPEND") {
		t.Fatalf("MULTIAPPEND advertised though switched off: %s", caps)
	}
	one := litArg(testMsg("one"))
	if _, done := c.Do("APPEND INBOX " + one + " " + one); done.Status != "BAD" {
		t.Fatalf("two messages without MULTIAPPEND: %s", done)
	}
	c.OK("APPEND INBOX " + one)
	imaptest.Expect(t, c.OK("STATUS INBOX (MESSAGES)"), `* STATUS "INBOX" (MESSAGES 1)`)
}
