package imapd

import (
	"context"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"decimail/internal/imaptest"
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
	dsn  string // set by scramEnv
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

// dial connects and logs in as u.
func (e *testEnv) dial() *imaptest.TestClient {
	c := e.dialAddr(e.addr)
	c.OK("LOGIN u pw")
	return c
}

// dialAddr connects to addr and reads the greeting.
func (e *testEnv) dialAddr(addr string) *imaptest.TestClient {
	e.t.Helper()
	return imaptest.DialTest(e.t, addr)
}
