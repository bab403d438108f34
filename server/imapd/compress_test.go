package imapd

import (
	"bytes"
	"crypto/tls"
	"net"
	"sync"
	"testing"
	"time"

	"decimail/internal/imaptest"
	"decimail/server/store"
)

// wireTap records what the server sends on a client's connection.
type wireTap struct {
	net.Conn
	mu  sync.Mutex
	got bytes.Buffer
}

func (w *wireTap) Read(p []byte) (int, error) {
	n, err := w.Conn.Read(p)
	w.mu.Lock()
	w.got.Write(p[:n])
	w.mu.Unlock()
	return n, err
}

// since returns what arrived after the first occurrence of mark.
func (w *wireTap) since(mark string) []byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	b := w.got.Bytes()
	i := bytes.Index(b, []byte(mark))
	if i < 0 {
		return nil
	}
	return bytes.Clone(b[i+len(mark):])
}

func dialTap(t *testing.T, addr string) (*imaptest.TestClient, *wireTap) {
	nc, err := net.DialTimeout("tcp", addr, imaptest.DefaultTimeout)
	if err != nil {
		t.Fatal(err)
	}
	tap := &wireTap{Conn: nc}
	return imaptest.NewTest(t, tap), tap
}

// COMPRESS DEFLATE (RFC 4978): after the OK everything is raw DEFLATE in
// both directions, and the session works as before: plain responses,
// literals both ways (a synchronising one waits for "+", which must be
// flushed through the compressor), pipelined commands, IDLE's updates.
func TestCompress(t *testing.T) {
	e := newEnv(t)
	e.deliver("INBOX", testMsg("squeeze me"), store.Flags{})
	c, tap := dialTap(t, e.addr)
	c.OK("LOGIN u pw")
	if !c.Caps["COMPRESS=DEFLATE"] {
		t.Fatalf("COMPRESS=DEFLATE not advertised after LOGIN: %v", c.Caps)
	}
	tag := c.NextTag()
	c.CompressAfter(tag)
	_, done := c.DoTag(tag, "COMPRESS DEFLATE")
	imaptest.ExpectDone(t, done, "OK DEFLATE active")
	c.OK("SELECT INBOX")
	imaptest.Expect(t, c.OK("FETCH 1 (UID FLAGS)"), `* 1 FETCH (UID 1 FLAGS (\Recent))`)
	// Nothing after the OK is plain text: the server compresses "starting
	// immediately after the CRLF" (rfc4978.txt:148-152).
	after := tap.since(tag + " OK DEFLATE active\r\n")
	if len(after) == 0 || bytes.Contains(after, []byte("FETCH")) {
		t.Fatalf("after COMPRESS the server sent plain text (%d octets): %q", len(after), after)
	}
	imaptest.Expect(t, c.OK("FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])"), "* 1 FETCH (BODY[HEADER.FIELDS (SUBJECT)] "+flit("Subject: squeeze me\r\n\r\n")+")")
	u, done := c.Do("APPEND INBOX {7}\r\nHi: x\r\n")
	if !imaptest.MatchStatus(done, "OK [APPENDUID ? 2] *") {
		t.Fatalf("APPEND with a synchronising literal: %s", done)
	}
	imaptest.Expect(t, u, "* 2 EXISTS", "* 2 RECENT")
	// Pipelined: both answered, in one go.
	c.Send("p1 NOOP\r\np2 UID SEARCH RETURN (COUNT) ALL")
	u, done = c.Until("p2")
	imaptest.Expect(t, u, "p1 OK NOOP completed", `* ESEARCH (TAG "p2") UID COUNT 2`)
	imaptest.ExpectDone(t, done, "OK UID SEARCH completed")
	// IDLE: the continuation and the updates another session causes arrive
	// while the client waits.
	c.Send("i1 IDLE")
	c.Expect("+ idling")
	e.deliver("INBOX", testMsg("while idle"), store.Flags{})
	c.Expect("* 3 EXISTS", "* 3 RECENT")
	c.Send("DONE")
	u, done = c.Until("i1")
	imaptest.ExpectDone(t, done, "OK IDLE completed")
	imaptest.Expect(t, u)
	// Again: BAD, "COMPRESS already active", with COMPRESSIONACTIVE
	// (rfc4978.txt:131-132, 143-146); the
	// stream goes on compressed.
	_, done = c.Do("COMPRESS DEFLATE")
	imaptest.ExpectDone(t, done, "BAD [COMPRESSIONACTIVE] DEFLATE active already")
	c.OK("NOOP")
	c.OK("LOGOUT")
}

// COMPRESS outside the authenticated states, with a wrong argument, or
// switched off, is BAD and changes nothing; off, it is not advertised.
func TestCompressRefused(t *testing.T) {
	e := newEnv(t)
	c := e.dialAddr(e.addr)
	for _, cmd := range []string{"COMPRESS DEFLATE"} { // "command-auth =/ compress" (rfc4978.txt:308)
		if _, done := c.Do(cmd); done.Status != "BAD" {
			t.Errorf("%s before login: %s", cmd, done)
		}
	}
	c.OK("LOGIN u pw")
	for _, cmd := range []string{"COMPRESS", "COMPRESS GZIP", "COMPRESS DEFLATE DEFLATE", `COMPRESS "DEFLATE" x`} {
		if _, done := c.Do(cmd); done.Status != "BAD" {
			t.Errorf("%s: %s", cmd, done)
		}
	}
	c.OK("NOOP") // still plain text
	_, addr := e.serve(Config{PerUserDisabled: func(string) map[string]bool { return map[string]bool{"COMPRESS=DEFLATE": true} }})
	c = e.dialAddr(addr)
	c.OK("LOGIN u pw")
	if c.Caps["COMPRESS=DEFLATE"] {
		t.Error("COMPRESS=DEFLATE advertised although disabled for the user")
	}
	if _, done := c.Do("COMPRESS DEFLATE"); done.Status != "BAD" {
		t.Errorf("COMPRESS disabled: %s", done)
	}
	c.OK("NOOP")
}

// After STARTTLS the compressed stream runs inside TLS: "first COMPRESS,
// then SASL, and finally TLS" (rfc4978.txt:160-178).
func TestCompressAfterStartTLS(t *testing.T) {
	e := newEnv(t)
	_, addr := e.serve(Config{AuthFailDelay: time.Millisecond, TLS: selfSignedTLS(t)})
	c := e.dialAddr(addr)
	_, done := c.Do("STARTTLS")
	imaptest.ExpectDone(t, done, "OK Begin TLS negotiation now")
	if err := c.UpgradeTLS(&tls.Config{InsecureSkipVerify: true}); err != nil {
		t.Fatal(err)
	}
	c.OK("LOGIN u pw")
	if err := c.Compress(); err != nil {
		t.Fatal(err)
	}
	c.OK("SELECT INBOX")
	imaptest.Expect(t, okTag(t, c, "s1", "SEARCH RETURN () ALL"), `* ESEARCH (TAG "s1")`)
	imaptest.Expect(t, c.OK(`LIST "" INBOX`), `* LIST (\HasNoChildren) "/" "INBOX"`)
}

// TestCompressPartialFlush pins the answer to a client that ends its
// commands with zlib's Z_PARTIAL_FLUSH instead of a sync flush, as mbsync
// 1.4 does: with compress/flate's reader the command sat decoded in the
// server's window and mbsync timed out (internal/inflate). The octets are
// zlib's raw deflate of "a1 NOOP\r\n" with Z_PARTIAL_FLUSH.
func TestCompressPartialFlush(t *testing.T) {
	e := newEnv(t)
	c := e.dial()
	if err := c.Compress(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Conn().Write([]byte{0x4a, 0x34, 0x54, 0xf0, 0xf3, 0xf7, 0x0f, 0xe0, 0xe5, 0x02, 0x08}); err != nil {
		t.Fatal(err)
	}
	u, done := c.Until("a1")
	imaptest.ExpectDone(t, done, "OK NOOP completed")
	imaptest.Expect(t, u)
}
