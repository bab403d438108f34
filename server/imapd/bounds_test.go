package imapd

// Bounds on what one session can hold or keep running (issue 13): database
// connections, statements, the accept loop. Each test builds the situation
// an attacker or a stalled client creates and checks the bound holds.

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"decimail/internal/imaptest"
	"decimail/internal/testwait"
	"decimail/server/pgrun"
	"decimail/server/store"
)

// newEnvWith is newEnv with store options (pool sizes, timeouts).
func newEnvWith(t *testing.T, o store.Options) *testEnv {
	t.Helper()
	o.PasswordCost = bcrypt.MinCost
	st, err := store.Open(t.Context(), pgrun.TestDB(t), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	u, err := st.CreateUser(t.Context(), "u", "pw")
	if err != nil {
		t.Fatal(err)
	}
	e := &testEnv{t: t, st: st, user: u}
	e.srv, e.addr = e.serve(Config{AuthFailDelay: time.Millisecond})
	return e
}

// A client that asks for many large bodies and then reads nothing holds no
// database connection while the server waits to write: FETCH reads a chunk,
// releases the connection, then writes. With one connection in the pool and
// three stalled readers, a fourth session still works.
func TestFetchStalledReaderHoldsNoConnection(t *testing.T) {
	e := newEnvWith(t, store.Options{SessionConns: 1, AcquireTimeout: 3 * time.Second})
	big := strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\r\n", 16<<10) // 1 MiB
	for i := range 12 {
		e.deliver("INBOX", testMsg(fmt.Sprint("big", i))+big, store.Flags{})
	}
	for range 3 {
		nc, err := net.Dial("tcp", e.addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nc.Close() })
		// Small receive buffer, and the client never reads: the server's
		// writes block after a few hundred kilobytes.
		nc.(*net.TCPConn).SetReadBuffer(4 << 10)
		fmt.Fprintf(nc, "a LOGIN u pw\r\nb SELECT INBOX\r\nc FETCH 1:* BODY.PEEK[]\r\n")
	}
	pool := e.st.Pool()
	testwait.For(t, 10*time.Second, "the stalled sessions to be blocked in a socket write with no connection acquired", func() (bool, string) {
		s := pool.Stat()
		return s.TotalConns() > 0 && s.AcquiredConns() == 0 && s.AcquireCount() >= 9,
			fmt.Sprintf("acquired %d of %d, %d acquires", s.AcquiredConns(), s.TotalConns(), s.AcquireCount())
	})
	c := e.dial()
	u := c.OK("SELECT INBOX")
	if len(u) == 0 {
		t.Fatal("SELECT returned nothing")
	}
	imaptest.Expect(t, c.OK("FETCH 12 (UID)"), "* 12 FETCH (UID 12)")
}

// blockMessages holds an ACCESS EXCLUSIVE lock on message_flags until the
// test ends, so that any statement reading it waits in Postgres.
func blockMessages(t *testing.T, st *store.Store) {
	t.Helper()
	tx, err := st.Pool().Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tx.Rollback(context.Background()) })
	if _, err := tx.Exec(t.Context(), "LOCK TABLE message_flags IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
}

// waiting counts the backends of this database waiting on a lock.
func waiting(t *testing.T, st *store.Store) (n int) {
	err := st.Pool().QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity
		WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// A statement that runs past the statement timeout is cancelled by Postgres
// and answered NO [LIMIT], never SERVERBUG.
func TestStatementTimeout(t *testing.T) {
	e := newEnvWith(t, store.Options{StatementTimeout: 300 * time.Millisecond})
	e.deliver("INBOX", testMsg("one"), store.Flags{})
	c := e.dial()
	c.OK("SELECT INBOX")
	blockMessages(t, e.st)
	_, done := c.Do("FETCH 1 (FLAGS RFC822.SIZE ENVELOPE)")
	imaptest.ExpectDone(t, done, "NO [LIMIT] command took too long")
}

// A client that leaves while its command waits in Postgres gets the
// statement cancelled at once, not when it would have ended.
func TestHangupCancelsStatement(t *testing.T) {
	e := newEnv(t)
	e.deliver("INBOX", testMsg("one"), store.Flags{})
	c := e.dial()
	expectHangupCancels(t, e, c)
}

// expectHangupCancels has logged-in c send a FETCH that waits on a lock,
// then leave: the FETCH's statement must be cancelled.
func expectHangupCancels(t *testing.T, e *testEnv, c *imaptest.TestClient) {
	t.Helper()
	c.OK("SELECT INBOX")
	blockMessages(t, e.st)
	c.Send("f FETCH 1 (FLAGS RFC822.SIZE ENVELOPE)")
	testwait.For(t, 10*time.Second, "the FETCH to wait on the lock", func() (bool, string) {
		n := waiting(t, e.st)
		return n == 1, fmt.Sprintf("%d backends waiting", n)
	})
	c.Close()
	testwait.For(t, 10*time.Second, "the FETCH's statement to be cancelled after the client left", func() (bool, string) {
		n := waiting(t, e.st)
		return n == 0, fmt.Sprintf("%d backends still waiting", n)
	})
}

// No free connection within the acquire timeout: NO [UNAVAILABLE], the
// session goes on; deliveries use their own pool meanwhile.
func TestPoolBusy(t *testing.T) {
	e := newEnvWith(t, store.Options{SessionConns: 1, AcquireTimeout: 200 * time.Millisecond})
	e.deliver("INBOX", testMsg("one"), store.Flags{})
	c := e.dial()
	c.OK("SELECT INBOX")
	held, err := e.st.Pool().Acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	_, done := c.Do("FETCH 1 (FLAGS ENVELOPE)")
	imaptest.ExpectDone(t, done, "NO [UNAVAILABLE] database unavailable, try again later")
	ctx := store.WithClass(t.Context(), store.ClassDelivery)
	if _, err := e.st.Deliver(ctx, e.user.ID, []byte(testMsg("two")), store.DeliverOptions{}); err != nil {
		t.Fatalf("delivery while the sessions' pool is exhausted: %v", err)
	}
	held.Release()
	// The session works again, and learns of the delivery (with this FETCH,
	// or a NOOP once the notification is in).
	u := c.OK("FETCH 1 (UID)")
	testwait.For(t, 10*time.Second, "the delivery to be announced", func() (bool, string) {
		if len(u) < 3 {
			u = append(u, c.OK("NOOP")...)
		}
		return len(u) >= 3, fmt.Sprint(u)
	})
	imaptest.Expect(t, u, "* 1 FETCH (UID 1)", "* 2 EXISTS", "* 2 RECENT")
}

// On IMAPS, a connection over the per-address limit that never starts its
// TLS handshake does not hold up the accept loop (the BYE that refuses it is
// written off the loop, under a deadline).
func TestIMAPSOverLimitSilentPeer(t *testing.T) {
	e := newEnv(t)
	srv := New(Config{AuthFailDelay: time.Millisecond, TLS: selfSignedTLS(t), MaxConnsPerIP: 1, LimitLoopback: true}, e.st, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.ServeTLS(ln)
	t.Cleanup(func() { srv.Close() })
	first, err := net.Dial("tcp", ln.Addr().String()) // admitted, silent
	if err != nil {
		t.Fatal(err)
	}
	testwait.For(t, 30*time.Second, "the first connection to be admitted", func() (bool, string) {
		srv.mu.Lock()
		defer srv.mu.Unlock()
		return len(srv.conns) == 1, fmt.Sprintf("%d connections", len(srv.conns))
	})
	silent, err := net.Dial("tcp", ln.Addr().String()) // over the limit, silent
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	// Only once the accept loop has refused it: closed before, first's
	// place could be free when silent is accepted, and silent admitted
	// (what failed under load: the admitted connection was silent's).
	testwait.For(t, 30*time.Second, "the second connection to be refused", func() (bool, string) {
		return srv.refused.Load() == 1, fmt.Sprintf("%d refused", srv.refused.Load())
	})
	first.Close()
	testwait.For(t, 30*time.Second, "the first connection's place to be freed", func() (bool, string) {
		srv.mu.Lock()
		n := len(srv.conns)
		srv.mu.Unlock()
		if n == 0 {
			return true, ""
		}
		// Seen once under load (make test's packages side by side on 2
		// cores) and never alone: say where the session is when it fails.
		buf := make([]byte, 1<<20)
		return false, fmt.Sprintf("%d connections; goroutines of the package:\n%s", n, imapdStacks(buf[:runtime.Stack(buf, true)]))
	})
	// Generous deadlines: make test runs this beside the other packages
	// under -race on 2 cores, where 5 s was once not enough.
	d := &net.Dialer{Timeout: 30 * time.Second}
	nc, err := tls.DialWithDialer(d, "tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("a new IMAPS client behind a silent refused one: %v", err)
	}
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	imaptest.NewTest(t, nc) // reads the greeting
}

// Server.Close while a session switches to TLS, and once it has: Close
// closes the accepted connection, which STARTTLS never replaces (a stress
// run under -race found Close reading the one it does replace). The race
// detector orders every socket read after every socket write (ioSync in
// internal/poll), so this test cannot show that race itself; it shows that
// closing the accepted connection ends TLS sessions too.
func TestCloseAfterStartTLS(t *testing.T) {
	e := newEnv(t)
	cfg := Config{AuthFailDelay: time.Millisecond, TLS: selfSignedTLS(t)}
	for range 10 { // Close while the session switches to TLS
		srv, addr := e.serve(cfg)
		c := e.dialAddr(addr)
		_, done := c.Do("STARTTLS")
		imaptest.ExpectDone(t, done, "OK Begin TLS negotiation now")
		upgraded := make(chan struct{})
		go func() { c.UpgradeTLS(&tls.Config{InsecureSkipVerify: true}); close(upgraded) }()
		srv.Close()
		<-upgraded // the handshake ends with the closed connection
		c.Close()  // what it got (a BYE, nothing) does not matter here
	}
	srv, addr := e.serve(cfg) // and once the session is in TLS
	c := e.dialAddr(addr)
	_, done := c.Do("STARTTLS")
	imaptest.ExpectDone(t, done, "OK Begin TLS negotiation now")
	if err := c.UpgradeTLS(&tls.Config{InsecureSkipVerify: true}); err != nil {
		t.Fatal(err)
	}
	c.OK("LOGIN u pw")
	srv.Close()
	for { // at most a BYE, then the end
		r, err := c.Read()
		if err != nil {
			break
		}
		if r.Status != "BYE" {
			t.Fatalf("the session survived Server.Close: %s", r)
		}
	}
}

// repeated reads n bytes of line, repeated (a message body generated on
// the fly: the test itself allocates nothing of its size).
type repeated struct {
	n    int
	line []byte
	off  int
}

func (r *repeated) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, io.EOF
	}
	k := 0
	for k < len(p) && r.n > 0 {
		c := copy(p[k:min(len(p), k+r.n)], r.line[r.off:])
		k, r.n, r.off = k+c, r.n-c, (r.off+c)%len(r.line)
	}
	return k, nil
}

// An APPEND message streams to a spool file as it arrives and is read once
// by the delivery: the server allocates about the message's size, not the
// three copies (literal buffer, string, []byte) and more it made before
// (issue 13: three 60 MiB APPENDs added 1.07 GB).
func TestAppendMemoryPerMessage(t *testing.T) {
	e := newEnv(t)
	const size = 40 << 20
	hdr := "From: alice@example.com\r\nSubject: big\r\n\r\n"
	nc, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	c := imaptest.NewTest(t, nc)
	c.OK("LOGIN u pw")
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	fmt.Fprintf(nc, "a APPEND INBOX {%d+}\r\n%s", size, hdr)
	if _, err := io.Copy(nc, &repeated{n: size - len(hdr), line: []byte(strings.Repeat("0123456789", 7) + "\r\n")}); err != nil {
		t.Fatal(err)
	}
	io.WriteString(nc, "\r\n")
	_, done := c.Until("a")
	if !imaptest.MatchStatus(done, "OK [APPENDUID ? 1] APPEND completed") {
		t.Fatalf("APPEND: %s", done)
	}
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("APPEND of %d MiB: %.2f× its size allocated", size>>20, float64(alloc)/size)
	if alloc > size*3/2 {
		t.Errorf("an APPEND of %d MiB allocated %d MiB (%.2f×), want at most 1.5×", size>>20, alloc>>20, float64(alloc)/size)
	}
	var n int
	if err := e.st.Pool().QueryRow(t.Context(), `SELECT count(*) FROM messages WHERE size = $1`, size).Scan(&n); err != nil || n != 1 {
		t.Fatalf("%d messages of %d bytes stored (%v)", n, size, err)
	}
}

// imapdStacks keeps the goroutines of a stack dump that run this package's
// code (a failure's diagnosis).
func imapdStacks(dump []byte) string {
	var keep []string
	for _, g := range strings.Split(string(dump), "\n\n") {
		if strings.Contains(g, "decimail/server/imapd.(*Conn)") || strings.Contains(g, "decimail/server/imapd.(*Server)") {
			keep = append(keep, g)
		}
	}
	return strings.Join(keep, "\n\n")
}
