package imapd

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"decimail/internal/imaptest"
	"decimail/server/store"
)

const binaryMsg = "From: a@example.com\r\nSubject: bin\r\nMIME-Version: 1.0\r\n" +
	"Content-Type: multipart/mixed; boundary=b\r\n\r\n" +
	"--b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\ncaf=C3=A9 =\r\nau lait\r\n" +
	"--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\nAAECAwBoaQ==\r\n" + // 00 01 02 03 00 'h' 'i'
	"--b\r\nContent-Type: application/x-thing\r\nContent-Transfer-Encoding: x-frobnicate\r\n\r\nzzz\r\n" +
	"--b\r\nContent-Type: text/plain\r\n\r\nplain\r\n" +
	"--b--\r\n"

// fetchRaw sends a FETCH and returns its raw untagged response.
func fetchRaw(t *testing.T, c *imaptest.TestClient, cmd string) string {
	t.Helper()
	c.Send("r1 " + cmd)
	raw, err := c.ReadRaw()
	if err != nil {
		t.Fatal(err)
	}
	got := string(raw.Bytes)
	if _, done := c.Until("r1"); done.Status != "OK" {
		t.Fatalf("%s: %s", cmd, done)
	}
	return got
}

// BINARY (RFC 9051 §6.4.5, from RFC 3516): decoded parts, a literal8 only
// when the data holds NUL, partial ranges of the decoded data, sizes,
// BINARY.PEEK leaving \Seen alone, UNKNOWN-CTE.
func TestFetchBinary(t *testing.T) {
	e := newEnv(t)
	e.deliver("INBOX", binaryMsg, store.Flags{})
	c := e.dial()
	if caps := c.OK("CAPABILITY")[0].String(); !strings.Contains(caps, " BINARY") {
		t.Fatalf("capabilities: %s", caps)
	}
	c.OK("SELECT INBOX")
	// base64 with NUL: literal8 (rfc9051.txt:5899-5903, 6663).
	if got, want := fetchRaw(t, c, "FETCH 1 BINARY.PEEK[2]"), "* 1 FETCH (BINARY[2] ~{7}\r\n\x00\x01\x02\x03\x00hi)\r\n"; got != want {
		t.Errorf("BINARY[2]: %q, want %q", got, want)
	}
	// A partial range, "a subset of the data", of the decoded data
	// (rfc9051.txt:4379-4383), here
	// without NUL: a plain literal.
	if got, want := fetchRaw(t, c, "FETCH 1 BINARY.PEEK[2]<4.3>"), "* 1 FETCH (BINARY[2]<4> ~{3}\r\n\x00hi)\r\n"; got != want {
		t.Errorf("BINARY[2]<4.3>: %q, want %q", got, want)
	}
	if got, want := fetchRaw(t, c, "FETCH 1 BINARY.PEEK[2]<5.10>"), "* 1 FETCH (BINARY[2]<5> {2}\r\nhi)\r\n"; got != want {
		t.Errorf("BINARY[2]<5.10>: %q, want %q", got, want)
	}
	imaptest.Expect(t, c.OK("FETCH 1 (BINARY.PEEK[1] BINARY.SIZE[1] BINARY.SIZE[2] BINARY.PEEK[4] BINARY.PEEK[9] BINARY.PEEK[2]<99.1>)"),
		`* 1 FETCH (BINARY[1] "café au lait" BINARY.SIZE[1] 13 BINARY.SIZE[2] 7 BINARY[4] "plain" BINARY[9] NIL BINARY[2]<99> "")`)
	// An encoding the server cannot undo: NO [UNKNOWN-CTE] (rfc9051.txt:5912-5915).
	for _, item := range []string{"BINARY.PEEK[3]", "BINARY.SIZE[3]", "(FLAGS BINARY.PEEK[3])"} {
		if _, done := c.Do("FETCH 1 " + item); done.Status != "NO" || done.CodeName() != "UNKNOWN-CTE" {
			t.Errorf("FETCH 1 %s: %s", item, done)
		}
	}
	imaptest.Expect(t, c.OK("FETCH 1 FLAGS"), `* 1 FETCH (FLAGS (\Recent))`) // PEEK set nothing
	imaptest.Expect(t, c.OK("FETCH 1 BINARY[4]"), `* 1 FETCH (BINARY[4] "plain" FLAGS (\Seen \Recent))`)
}

// APPEND of a literal8 (RFC 3516 §4.4): binary data is stored as sent, and
// BINARY[] returns it in a literal8, BODY[] with its NULs as 0x80.
func TestAppendLiteral8(t *testing.T) {
	e := newEnv(t)
	c := e.dial()
	msg := "Subject: nul\r\nContent-Transfer-Encoding: binary\r\n\r\na\x00b\r\n"
	c.OK(fmt.Sprintf("APPEND INBOX ~{%d+}\r\n%s", len(msg), msg))
	if got := e.fetchBody("INBOX", 1); got != msg {
		t.Fatalf("stored %q", got)
	}
	c.OK("SELECT INBOX")
	if got, want := fetchRaw(t, c, "FETCH 1 BINARY.PEEK[1]"), "* 1 FETCH (BINARY[1] ~{5}\r\na\x00b\r\n)\r\n"; got != want {
		t.Errorf("BINARY[1]: %q, want %q", got, want)
	}
	if got, want := fetchRaw(t, c, "FETCH 1 BODY.PEEK[TEXT]"), "* 1 FETCH (BODY[TEXT] {5}\r\na\x80b\r\n)\r\n"; got != want {
		t.Errorf("BODY[TEXT]: %q, want %q", got, want)
	}
}

// Switched off, BINARY is not advertised, its items are BAD and APPEND
// takes no literal8.
func TestBinaryDisabled(t *testing.T) {
	e := newEnv(t)
	e.deliver("INBOX", binaryMsg, store.Flags{})
	_, addr := e.serve(Config{Disabled: map[string]bool{"BINARY": true}, AuthFailDelay: time.Millisecond})
	c := e.dialAddr(addr)
	c.OK("LOGIN u pw")
	if caps := c.OK("CAPABILITY")[0].String(); strings.Contains(caps, "BINARY") {
		t.Fatalf("BINARY advertised though switched off: %s", caps)
	}
	if _, done := c.Do("APPEND INBOX ~{5+}\r\nx\r\n\r\n"); done.Status != "BAD" {
		t.Errorf("literal8 APPEND: %s", done)
	}
	c.OK("SELECT INBOX")
	for _, item := range []string{"BINARY[1]", "BINARY.PEEK[1]", "BINARY.SIZE[1]"} {
		if _, done := c.Do("FETCH 1 " + item); done.Status != "BAD" {
			t.Errorf("FETCH 1 %s: %s", item, done)
		}
	}
}
