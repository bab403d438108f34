package imaptest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"decimail/internal/testwait"
)

// The client's own tests run it against a scripted peer over a loopback
// socket: the package knows no real server (server/imapd tests it against
// Decimail, the conformance suite against Decimail and Dovecot).

// step is one move of the scripted server: read exactly "C: text" octets
// from the client, or write "S: text".
type step string

func script(t *testing.T, steps ...step) string {
	t.Helper()
	return scriptGated(t, nil, steps...)
}

// scriptGated is script whose "Z: " steps wait until the test sends on gate:
// the server stays silent exactly as long as the test needs.
func scriptGated(t *testing.T, gate <-chan struct{}, steps ...step) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		nc, err := ln.Accept()
		ln.Close()
		if err != nil {
			done <- err
			return
		}
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(10 * time.Second))
		br := bufio.NewReader(nc)
		for _, s := range steps {
			text := string(s[3:])
			switch s[:3] {
			case "S: ":
				if _, err := io.WriteString(nc, text); err != nil {
					done <- err
					return
				}
			case "C: ":
				buf := make([]byte, len(text))
				if _, err := io.ReadFull(br, buf); err != nil || string(buf) != text {
					done <- fmt.Errorf("server read %q (%v), script says %q", buf, err, text)
					return
				}
			case "Z: ": // silent until the test opens the gate
				<-gate
			}
		}
		done <- nil
	}()
	t.Cleanup(func() {
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return ln.Addr().String()
}

func TestCommandLiterals(t *testing.T) {
	addr := script(t,
		"S: * OK [CAPABILITY IMAP4rev1 LITERAL+] hi\r\n",
		// A synchronising literal waits for "+"; untagged data may come first.
		"C: t1 APPEND INBOX {5}\r\n",
		"S: * 3 EXISTS\r\n+ go ahead\r\n",
		"C: hello {3+}\r\nabc\r\n",
		"S: * 4 EXISTS\r\nt1 OK [APPENDUID 1 4] done\r\n",
		// A refused literal: the tagged NO ends the command, the octets stay unsent.
		"C: t2 APPEND INBOX {999}\r\n",
		"S: t2 NO [TOOBIG] too big\r\n",
		"C: t3 CAPABILITY\r\n",
		"S: * CAPABILITY IMAP4rev1 IDLE\r\nt3 OK done\r\n",
	)
	c, err := Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !c.Caps["LITERAL+"] || c.Greeting.Text != "hi" {
		t.Fatalf("greeting %v, caps %v", c.Greeting, c.Caps)
	}
	u, done, err := c.Command("APPEND INBOX {5}\r\nhello {3+}\r\nabc")
	if err != nil {
		t.Fatal(err)
	}
	Expect(t, u, "* 3 EXISTS", "* 4 EXISTS")
	ExpectDone(t, done, "OK [APPENDUID 1 4] done")
	_, done, err = c.Command("APPEND INBOX {999}\r\n" + strings.Repeat("x", 999))
	var se *StatusError
	if !errors.As(err, &se) || se.Resp != done || !MatchStatus(done, "NO [TOOBIG] *") {
		t.Fatalf("refused literal: %v %v", done, err)
	}
	if _, _, err := c.Command("CAPABILITY"); err != nil || !c.Caps["IDLE"] || c.Caps["LITERAL+"] {
		t.Fatalf("CAPABILITY: %v %v", c.Caps, err)
	}
}

func TestSegments(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"a NOOP\r\n", []string{"a NOOP\r\n"}},
		{"a LOGIN {1}\r\nx {2}\r\nyy\r\n", []string{"a LOGIN {1}\r\n", "x {2}\r\n", "yy\r\n"}},
		{"a LOGIN {1+}\r\nx {2}\r\nyy\r\n", []string{"a LOGIN {1+}\r\nx {2}\r\n", "yy\r\n"}},
		// Octets of a literal are not searched for markers.
		{"a APPEND x {6}\r\n{1}\r\n\r\n", []string{"a APPEND x {6}\r\n", "{1}\r\n\r\n"}},
		{"a APPEND x ~{2}\r\nab\r\n", []string{"a APPEND x ~{2}\r\n", "ab\r\n"}},
		{"a X {}\r\n", []string{"a X {}\r\n"}},
	} {
		if got := segments(tc.in); strings.Join(got, "|") != strings.Join(tc.want, "|") {
			t.Errorf("segments(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestRawAndStream(t *testing.T) {
	addr := script(t,
		"S: * OK hi\r\n",
		"C: t1 FETCH 1:2 BODY[]\r\n",
		"S: * 1 FETCH (BODY[] {9}\r\nab\r\n{1}\r\n)\r\n* 2 FETCH (BODY[] {0}\r\n UID 9)\r\nt1 OK done\r\n",
		"C: t2 SELECT x\r\n",
		"S: t2 NO [NONEXISTENT] no\r\n",
	)
	c, err := Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var got []*Resp
	err = c.Stream("FETCH 1:2 BODY[]", func(r *Raw) {
		p, err := r.Parse()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, p)
	})
	if err != nil {
		t.Fatal(err)
	}
	Expect(t, got, "* 1 FETCH (BODY[] {9}\r\nab\r\n{1}\r\n)", `* 2 FETCH (BODY[] "" UID 9)`)
	if a := got[0].Attrs(); a["BODY[]"].S != "ab\r\n{1}\r\n" || got[1].Name() != "FETCH" {
		t.Errorf("attrs %v, name %q", a, got[1].Name())
	}
	var se *StatusError
	if err := c.Stream("SELECT x", nil); !errors.As(err, &se) || se.Resp.CodeName() != "NONEXISTENT" {
		t.Fatalf("Stream NO: %v", err)
	}
}

func TestReadErrors(t *testing.T) {
	for _, tc := range []struct{ in, err string }{
		{"* 1 FETCH (BODY[] {10}\r\nabc", "unexpected EOF"},
		{"* 1 FETCH (BODY[] \"abc)\r\n", "unterminated quoted string"},
		{"* 1 FETCH (UID 1\r\n", "missing ')'"},
		{"", "EOF"},
	} {
		_, err := ReadResp(bufio.NewReader(strings.NewReader(tc.in)))
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%q: %v, want %s", tc.in, err, tc.err)
		}
	}
}

func TestBackground(t *testing.T) {
	gate := make(chan struct{})
	addr := scriptGated(t, gate,
		"S: * OK hi\r\n",
		"C: t1 IDLE\r\n",
		"S: + idling\r\n",
		"Z: ",
		"S: * 2 EXISTS\r\n",
		"C: DONE\r\n",
		"S: t1 OK done\r\n* BYE bye\r\n",
	)
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c := New(nc)
	defer c.Close()
	c.Background()
	if err := c.ReadGreeting(); err != nil {
		t.Fatal(err)
	}
	if err := c.Write([]byte("t1 IDLE\r\n")); err != nil {
		t.Fatal(err)
	}
	if r, err := c.Poll(time.Second); err != nil || r.Tag != "+" {
		t.Fatalf("continuation: %v %v", r, err)
	}
	if r, err := c.Poll(time.Millisecond); r != nil || err != nil {
		t.Fatalf("Poll before the update: %v %v", r, err)
	}
	gate <- struct{}{}
	if r, err := c.Poll(5 * time.Second); err != nil || r.Name() != "EXISTS" {
		t.Fatalf("update: %v %v", r, err)
	}
	c.Write([]byte("DONE\r\n"))
	if _, done, err := c.Wait("t1"); err != nil || done.Status != "OK" {
		t.Fatalf("DONE: %v %v", done, err)
	}
	if r, err := c.Read(); err != nil || r.Status != "BYE" {
		t.Fatalf("BYE: %v %v", r, err)
	}
	for range 2 { // the end stays the end
		if _, err := c.Read(); !errors.Is(err, io.EOF) {
			t.Fatalf("after BYE: %v", err)
		}
	}
}

// A synchronous Poll that times out loses nothing: the response that
// arrives later is read whole.
func TestPollSync(t *testing.T) {
	gate := make(chan struct{})
	addr := scriptGated(t, gate,
		"S: * OK hi\r\n",
		"Z: ",
		"S: * 1 FETCH (BODY[] {3}\r\n",
		"Z: ",
		"S: abc)\r\n",
	)
	c, err := Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if r, err := c.Poll(time.Millisecond); r != nil || err != nil {
		t.Fatalf("early Poll: %v %v", r, err)
	}
	gate <- struct{}{}                 // the first half of the response
	go func() { gate <- struct{}{} }() // the rest, while Poll waits
	r, err := c.Poll(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	Expect(t, []*Resp{r}, `* 1 FETCH (BODY[] "abc")`)
}

// fakeT records failures; Fatal ends the goroutine like testing.T does.
type fakeT struct {
	testing.TB
	mu       sync.Mutex
	msgs     []string
	cleanups []func()
}

func (f *fakeT) Helper() {}
func (f *fakeT) Errorf(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.msgs = append(f.msgs, fmt.Sprintf(format, args...))
}
func (f *fakeT) Fatalf(format string, args ...any) { f.Errorf(format, args...); runtime.Goexit() }
func (f *fakeT) Fatal(args ...any)                 { f.Errorf("%s", fmt.Sprint(args...)); runtime.Goexit() }
func (f *fakeT) Failed() bool                      { f.mu.Lock(); defer f.mu.Unlock(); return len(f.msgs) > 0 }
func (f *fakeT) Cleanup(fn func())                 { f.cleanups = append(f.cleanups, fn) }

// run runs body as a test and returns its failures.
func (f *fakeT) run(body func(t testing.TB)) []string {
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() {
			for i := len(f.cleanups) - 1; i >= 0; i-- {
				f.cleanups[i]()
			}
		}()
		body(f)
	}()
	<-done
	return f.msgs
}

// TestClient fails the test on a response nobody read: before the next
// command, and at the end of the test.
func TestLeftoverResponses(t *testing.T) {
	addr := script(t,
		"S: * OK hi\r\n",
		"C: t1 NOOP\r\n",
		"S: t1 OK done\r\n* 5 EXISTS\r\n",
	)
	msgs := (&fakeT{TB: t}).run(func(t testing.TB) {
		c := DialTest(t, addr)
		Expect(t, c.OK("NOOP"))
		testwait.For(t, 30*time.Second, "the * 5 EXISTS after the tagged OK", func() (bool, string) { return c.Pending(), "nothing pending" })
	})
	if len(msgs) != 1 || !strings.Contains(msgs[0], "unread response at the end of the test: * 5 EXISTS") {
		t.Errorf("failures %q", msgs)
	}
	addr = script(t,
		"S: * OK hi\r\n",
		"C: t1 NOOP\r\n",
		"S: t1 OK done\r\n* 5 EXISTS\r\n",
	)
	msgs = (&fakeT{TB: t}).run(func(t testing.TB) {
		c := DialTest(t, addr)
		c.OK("NOOP") // reads "* 5 EXISTS" into its buffer with the tagged OK
		c.OK("NOOP")
	})
	if len(msgs) != 1 || !strings.Contains(msgs[0], `unread response before "NOOP": * 5 EXISTS`) {
		t.Errorf("failures %q", msgs)
	}
}

// Expect fails with a go-cmp diff.
func TestExpectFails(t *testing.T) {
	got := lines(t, `* 1 FETCH (FLAGS (\Seen) UID 1)`)
	msgs := (&fakeT{TB: t}).run(func(t testing.TB) {
		Expect(t, got, `* 1 FETCH (FLAGS (\Seen \Flagged) UID 1)`)
	})
	if len(msgs) != 1 || !strings.Contains(msgs[0], "diff (-want +got)") || !strings.Contains(msgs[0], "Flagged") {
		t.Errorf("failures %q", msgs)
	}
}

// The raw path allocates nothing per response once its buffer has grown:
// benchmarks read through it and must measure the server.
func TestReadRawAllocs(t *testing.T) {
	one := "* 1 FETCH (UID 1 FLAGS (\\Seen) BODY[HEADER.FIELDS (SUBJECT)] {14}\r\nSubject: x\r\n\r\n)\r\n"
	br := bufio.NewReader(strings.NewReader(strings.Repeat(one, 200)))
	var raw Raw
	if err := raw.read(br); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(100, func() {
		if err := raw.read(br); err != nil {
			t.Fatal(err)
		}
		if _, ok := capsOf(raw.Bytes); ok || !raw.Tagged("*") {
			t.Fatal("misread")
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per response", allocs)
	}
}
