package imapd

import (
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"decimail/internal/imaptest"
	"decimail/internal/testwait"
	"decimail/server/store"
)

// osThreads is the process's number of OS threads (/proc/self/status).
func osThreads(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Threads:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no Threads: line in /proc/self/status")
	return 0
}

// A session in IDLE is not watched for a hangup: IDLE waits on its read of
// the client, which a hangup ends. Found by BenchmarkIdleMemory: the watch
// ran on every IDLE past 50 ms, in a poll(2) that waited 200 ms at a time,
// so 2,000 idle IDLE sessions held 2,048 OS threads and used a third of a
// core doing nothing (Go stops a process at 10,000 threads).
func TestIdleNotWatched(t *testing.T) {
	e := newEnv(t)
	const n = 60
	var cs []*imaptest.TestClient
	for range n {
		c := e.dial()
		c.OK("SELECT INBOX")
		c.Send("i IDLE")
		if r := c.Next(); r.Tag != "+" {
			t.Fatalf("IDLE: %s", r)
		}
		cs = append(cs, c)
	}
	// From here only IDLE runs (a slow LOGIN or SELECT above, on a loaded
	// machine, may have been looked at: it has ended).
	time.Sleep(20 * time.Millisecond)
	before, polls := osThreads(t), e.srv.hangupPolls.Load()
	time.Sleep(hangupDelay + 3*hangupEvery)
	if got := e.srv.hangupPolls.Load() - polls; got != 0 {
		t.Errorf("the hangup watch looked %d times at %d sessions in IDLE", got, n)
	}
	if got := osThreads(t) - before; got > n/4 {
		t.Errorf("%d sessions in IDLE added %d OS threads", n, got)
	}
	// A client that leaves during IDLE still ends its session: the next
	// sessions' IDLE (on the same server) goes on, and a last one finishes.
	for _, c := range cs[1:] {
		c.Close()
	}
	c := cs[0]
	c.Send("DONE")
	_, done := c.Until("i")
	imaptest.ExpectDone(t, done, "OK IDLE completed")
	testwait.For(t, 10*time.Second, "the sessions of the clients that left to end", func() (bool, string) {
		e.srv.mu.Lock()
		m := len(e.srv.conns)
		e.srv.mu.Unlock()
		return m == 1, fmt.Sprintf("%d sessions open", m)
	})
}

// Commands that wait in Postgres are watched without holding an OS thread
// each: the watch's poll does not wait, a timer repeats it. A client that
// leaves still gets its statement cancelled (TestHangupCancelsStatement).
func TestHangupWatchHoldsNoThread(t *testing.T) {
	const n = 30
	e := newEnvWith(t, store.Options{SessionConns: n + 5})
	e.deliver("INBOX", testMsg("one"), store.Flags{})
	var cs []*imaptest.TestClient
	for range n {
		c := e.dial()
		c.OK("SELECT INBOX")
		cs = append(cs, c)
	}
	blockMessages(t, e.st)
	before, polls := osThreads(t), e.srv.hangupPolls.Load()
	for _, c := range cs {
		c.Send("f FETCH 1 (FLAGS RFC822.SIZE ENVELOPE)")
	}
	testwait.For(t, 10*time.Second, "the FETCHes to wait on the lock", func() (bool, string) {
		m := waiting(t, e.st)
		return m == n, fmt.Sprintf("%d backends waiting", m)
	})
	time.Sleep(hangupDelay + 3*hangupEvery)
	if got := e.srv.hangupPolls.Load() - polls; got < n {
		t.Errorf("the hangup watch looked %d times at %d waiting commands, want at least one each", got, n)
	}
	if got := osThreads(t) - before; got > n/3 {
		t.Errorf("%d watched commands added %d OS threads", n, got)
	}
	for _, c := range cs {
		c.Close()
	}
	testwait.For(t, 10*time.Second, "every statement to be cancelled after its client left", func() (bool, string) {
		m := waiting(t, e.st)
		return m == 0, fmt.Sprintf("%d backends still waiting", m)
	})
}

// On IMAPS too (the watch looks at the TCP connection under TLS): a client
// that leaves while its command waits gets its statement cancelled.
func TestHangupCancelsStatementIMAPS(t *testing.T) {
	e := newEnv(t)
	e.deliver("INBOX", testMsg("one"), store.Flags{})
	srv := New(Config{AuthFailDelay: time.Millisecond, TLS: selfSignedTLS(t)}, e.st, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.ServeTLS(ln)
	t.Cleanup(func() { srv.Close() })
	nc, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	c := imaptest.NewTest(t, nc)
	c.OK("LOGIN u pw")
	expectHangupCancels(t, e, c)
}
