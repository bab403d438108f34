package imapd

import (
	"fmt"
	"strings"
	"testing"

	"decimail/internal/imaptest"
)

// APPENDLIMIT (RFC 7889): one limit for every mailbox, advertised as
// APPENDLIMIT=n, reported by STATUS APPENDLIMIT for each mailbox (views
// too), and enforced: an APPEND over it is NO [TOOBIG]. Switched off, the
// capability goes and the STATUS item is BAD.
func TestAppendLimit(t *testing.T) {
	e := newEnv(t)
	_, addr := e.serve(Config{MaxAppendLiteral: 4096})
	c := e.dialAddr(addr)
	c.OK("LOGIN u pw")
	if caps := c.OK("CAPABILITY")[0].String(); !strings.Contains(caps, " APPENDLIMIT=4096") {
		t.Fatalf("capabilities: %s", caps)
	}
	imaptest.Expect(t, c.OK("STATUS INBOX (APPENDLIMIT MESSAGES)"), `* STATUS "INBOX" (APPENDLIMIT 4096 MESSAGES 0)`)
	imaptest.Expect(t, c.OK(`STATUS "All Mail" (APPENDLIMIT)`), `* STATUS "All Mail" (APPENDLIMIT 4096)`)
	big := strings.Repeat("x", 5000)
	// A synchronising literal over the limit is refused before it is sent
	// (a non-synchronising one, already on its way, ends the connection).
	c.Send(fmt.Sprintf("t1 APPEND INBOX {%d}", len(big)))
	if _, done := c.Until("t1"); done.Status != "NO" || !strings.Contains(done.String(), "TOOBIG") {
		t.Fatalf("APPEND over the limit: %s", done)
	}
	small := "Subject: s\r\n\r\nsmall\r\n"
	c.OK(fmt.Sprintf("APPEND INBOX {%d+}\r\n%s", len(small), small))

	_, addr = e.serve(Config{Disabled: map[string]bool{"APPENDLIMIT": true}})
	d := e.dialAddr(addr)
	d.OK("LOGIN u pw")
	if caps := d.OK("CAPABILITY")[0].String(); strings.Contains(caps, "APPENDLIMIT") {
		t.Fatalf("APPENDLIMIT advertised though switched off: %s", caps)
	}
	if _, done := d.Do("STATUS INBOX (APPENDLIMIT)"); done.Status != "BAD" {
		t.Fatalf("STATUS APPENDLIMIT switched off: %s", done)
	}
}
