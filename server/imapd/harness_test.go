package imapd

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"decimail/server/pgrun"
	"decimail/server/store"
)

func TestMain(m *testing.M) { os.Exit(pgrun.RunTests(m)) }

// testEnv is a real server on a real socket over a fresh Postgres database,
// with one user "u" (password "pw").
type testEnv struct {
	t    testing.TB
	st   *store.Store
	user store.User
	srv  *Server
	addr string
}

func newEnv(t testing.TB) *testEnv {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, pgrun.TestDB(t), store.Options{PasswordCost: bcrypt.MinCost})
	if err != nil {
		t.Fatal(err)
	}
	u, err := st.CreateUser(ctx, "u", "pw")
	if err != nil {
		t.Fatal(err)
	}
	e := &testEnv{t: t, st: st, user: u}
	e.srv, e.addr = e.serve(Config{AuthFailDelay: time.Millisecond})
	t.Cleanup(st.Close)
	return e
}

// serve starts another server process-alike on the same store.
func (e *testEnv) serve(cfg Config) (*Server, string) {
	srv := New(cfg, e.st, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		e.t.Fatal(err)
	}
	go srv.Serve(ln)
	e.t.Cleanup(func() { srv.Close() })
	return srv, ln.Addr().String()
}

// deliver stores a message in a folder of u.
func (e *testEnv) deliver(folder, raw string, f store.Flags) store.Delivered {
	e.t.Helper()
	d, err := e.st.Deliver(context.Background(), e.user.ID, []byte(raw), store.DeliverOptions{Mailbox: folder, Flags: f,
		InternalDate: time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)})
	if err != nil {
		e.t.Fatal(err)
	}
	return d
}

func testMsg(subject string) string {
	return "From: Alice <alice@example.com>\r\nTo: u@example.test\r\nSubject: " + subject +
		"\r\nDate: Mon, 2 Nov 2026 10:00:00 +0100\r\nMessage-ID: <" + strings.ReplaceAll(subject, " ", ".") +
		"@example.com>\r\n\r\nHello " + subject + "\r\n"
}

// client is a raw IMAP test client: it sends lines and reads responses,
// folding literals into the line they belong to.
type client struct {
	t  testing.TB
	nc net.Conn
	br *bufio.Reader
	n  int
}

// dial connects and logs in as u.
func (e *testEnv) dial() *client {
	c := e.dialAddr(e.addr)
	c.ok("LOGIN u pw")
	return c
}

func (e *testEnv) dialAddr(addr string) *client {
	e.t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		e.t.Fatal(err)
	}
	c := &client{t: e.t, nc: nc, br: bufio.NewReader(nc)}
	e.t.Cleanup(func() { nc.Close() })
	if g := c.line(); !strings.HasPrefix(g, "* OK") {
		e.t.Fatalf("greeting %q", g)
	}
	return c
}

var literalRe = regexp.MustCompile(`\{(\d+)\+?\}$`)

// line reads one response line with its literals inlined.
func (c *client) line() string {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	var b strings.Builder
	for {
		l, err := c.br.ReadString('\n')
		if err != nil {
			c.t.Fatalf("read: %v (after %q)", err, b.String()+l)
		}
		l = strings.TrimSuffix(l, "\r\n")
		b.WriteString(l)
		m := literalRe.FindStringSubmatch(l)
		if m == nil {
			return b.String()
		}
		n, _ := strconv.Atoi(m[1])
		buf := make([]byte, n)
		if _, err := io.ReadFull(c.br, buf); err != nil {
			c.t.Fatalf("literal: %v", err)
		}
		b.WriteString("\r\n")
		b.Write(buf)
	}
}

// do sends a command with a fresh tag and returns its untagged responses and
// its tagged status line (without the tag).
func (c *client) do(cmd string) (untagged []string, tagged string) {
	c.t.Helper()
	c.n++
	tag := fmt.Sprintf("t%d", c.n)
	c.send(tag + " " + cmd)
	for {
		l := c.line()
		if strings.HasPrefix(l, tag+" ") {
			return untagged, strings.TrimPrefix(l, tag+" ")
		}
		untagged = append(untagged, l)
	}
}

func (c *client) send(raw string) {
	c.t.Helper()
	if _, err := io.WriteString(c.nc, raw+"\r\n"); err != nil {
		c.t.Fatal(err)
	}
}

// ok runs a command that must succeed and returns its untagged responses.
func (c *client) ok(cmd string) []string {
	c.t.Helper()
	u, st := c.do(cmd)
	if !strings.HasPrefix(st, "OK") {
		c.t.Fatalf("%s: %s (untagged %q)", cmd, st, u)
	}
	return u
}

// expect fails unless the untagged responses equal want, in order.
func expect(t testing.TB, got []string, want ...string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}
