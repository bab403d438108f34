package imaptest

import (
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"
)

// TestClient is a Client bound to a test: a failure to talk to the server
// ends the test, so the methods return only what the server said. It fails
// the test as well when a response is left unread: before each command
// (one already received and not read) and when the test ends.
type TestClient struct {
	*Client
	t testing.TB
}

// DialTest connects to addr and reads the greeting (which must be OK);
// the connection is closed when the test ends.
func DialTest(t testing.TB, addr string) *TestClient {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, DefaultTimeout)
	if err != nil {
		t.Fatal(err)
	}
	return NewTest(t, nc)
}

// NewTest is DialTest over a connection the test made (net.Pipe, TLS).
func NewTest(t testing.TB, nc net.Conn) *TestClient {
	t.Helper()
	c := &TestClient{Client: New(nc), t: t}
	t.Cleanup(c.finish)
	if err := c.ReadGreeting(); err != nil {
		t.Fatal(err)
	}
	return c
}

// finish fails the test on a response that arrived unread, then closes.
func (c *TestClient) finish() {
	defer c.Close()
	if c.t.Failed() {
		return
	}
	if r, err := c.Poll(time.Millisecond); r != nil {
		c.t.Errorf("unread response at the end of the test: %s", r)
	} else if err != nil && !isClosed(err) {
		c.t.Errorf("at the end of the test: %v", err)
	}
}

// isClosed reports whether err says the connection is closed (by either side).
func isClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.ErrClosedPipe)
}

// checkUnread fails the test if a response is waiting unread.
func (c *TestClient) checkUnread(before string) {
	c.t.Helper()
	if !c.Pending() {
		return
	}
	if r, err := c.Poll(time.Millisecond); r != nil {
		c.t.Fatalf("unread response before %q: %s", abbrev(before, 60), r)
	} else if err != nil {
		c.t.Fatalf("before %q: %v", abbrev(before, 60), err)
	}
}

// Do runs a command with a fresh tag (literals as in Client.Command) and
// returns its untagged responses and the tagged one, whatever its status.
func (c *TestClient) Do(cmd string) (untagged []*Resp, done *Resp) {
	c.t.Helper()
	return c.DoTag(c.NextTag(), cmd)
}

// DoTag is Do with the caller's tag.
func (c *TestClient) DoTag(tag, cmd string) (untagged []*Resp, done *Resp) {
	c.t.Helper()
	c.checkUnread(cmd)
	u, done, err := c.CommandTag(tag, cmd)
	if done == nil {
		c.t.Fatalf("%s %s: %v (untagged so far: %s)", tag, abbrev(cmd, 60), err, u)
	}
	return u, done
}

// OK runs a command that must succeed and returns its untagged responses.
func (c *TestClient) OK(cmd string) []*Resp {
	c.t.Helper()
	u, done := c.Do(cmd)
	if done.Status != "OK" {
		c.t.Fatalf("%s: %s (untagged %s)", abbrev(cmd, 60), done, u)
	}
	return u
}

// Send writes raw text and CRLF: a command line of the test's making, a
// literal's octets, DONE.
func (c *TestClient) Send(raw string) {
	c.t.Helper()
	c.checkUnread(raw)
	if err := c.Write([]byte(raw + "\r\n")); err != nil {
		c.t.Fatalf("send %q: %v", abbrev(raw, 60), err)
	}
}

// Next reads the next response.
func (c *TestClient) Next() *Resp {
	c.t.Helper()
	r, err := c.Read()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return r
}

// Until reads up to the response tagged tag (of a command sent with Send).
func (c *TestClient) Until(tag string) (untagged []*Resp, done *Resp) {
	c.t.Helper()
	u, done, err := c.Wait(tag)
	if done == nil {
		c.t.Fatalf("waiting for %s: %v (untagged so far: %s)", tag, err, u)
	}
	return u, done
}

// ExpectClosed fails the test unless the server closes the connection
// before sending anything more.
func (c *TestClient) ExpectClosed() {
	c.t.Helper()
	r, err := c.Read()
	if err == nil {
		c.t.Fatalf("expected the connection to close, got %s", r)
	}
	if !isClosed(err) {
		c.t.Fatalf("expected the connection to close: %v", err)
	}
}

// Expect reads the next len(want) responses and compares them with want
// (see Diff): for responses outside a command (IDLE) or after Send.
func (c *TestClient) Expect(want ...string) {
	c.t.Helper()
	got := make([]*Resp, len(want))
	for i := range got {
		got[i] = c.Next()
	}
	Expect(c.t, got, want...)
}
