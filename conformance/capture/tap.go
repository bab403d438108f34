package main

// imap-tap: a logging TCP proxy between a mail client and the server. Each
// accepted connection is written to its own transcript file in the format
// of fixtures/transcripts (README "Transcript format (imap-tap v1)"), which
// conformance.ParseTranscript reads:
//
//   - '#' header lines (client, client-version, server, date, scenario,
//     account, connection, format), '# t+Ns' before a line that follows a
//     pause of at least 1 s (seconds since the connection was accepted), and
//     a '# end:' footer;
//   - 'C: '/'S: ' + one wire line without its CRLF ('C~ '/'S~ ' for a bare
//     LF, 'C= '/'S= ' for bytes without a line end at close); literals are
//     not treated specially, they are part of the byte stream.
//
// A line is logged before it is forwarded, so a response never appears
// before the command that caused it, and lines are forwarded whole (IMAP
// never needs a partial line to make progress).
//
// Besides the per-connection files the tap writes one timeline of the whole
// capture: every line of every connection, in arrival order, with the time
// since the tap started and the connection number. The transcripts alone
// cannot say how the connections of a multi-connection client interleaved
// (it is removed when no two connections were open at once).

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// TapHeader is what the header lines of each transcript say.
type TapHeader struct {
	Proto         string // "IMAP"
	Client        string // "thunderbird"
	ClientVersion string
	Server        string // "Decimail <rev>"; the addresses are added
	Scenario      string
	Account       string // the account setup (conformance.AccountSetups)
}

// Tap accepts connections on ln and relays each to upstream.
type Tap struct {
	ln       net.Listener
	upstream string
	dir      string
	capture  string // e.g. "01-unread-read-delete"
	hdr      TapHeader
	start    time.Time

	mu       sync.Mutex // timeline and n
	timeline *bufio.Writer
	tlFile   *os.File
	n        int
	files    []string
	wg       sync.WaitGroup
	conns    map[net.Conn]bool
	lastLine time.Time // last line of any connection
	open     int       // connections open now
	overlap  bool      // two connections were open at once
}

// StartTap listens on 127.0.0.1 (a free port) and serves until Close.
func StartTap(upstream, dir, capture string, hdr TapHeader) (*Tap, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	tl, err := os.Create(filepath.Join(dir, capture+".timeline"))
	if err != nil {
		ln.Close()
		return nil, err
	}
	t := &Tap{ln: ln, upstream: upstream, dir: dir, capture: capture, hdr: hdr, start: time.Now(),
		tlFile: tl, timeline: bufio.NewWriter(tl), conns: map[net.Conn]bool{}}
	fmt.Fprintf(t.timeline, "# imap-tap timeline of capture %q: every line of every connection in arrival order; +seconds since the tap started, cN = connection N\n", capture)
	go t.serve()
	return t, nil
}

// Addr is where clients connect.
func (t *Tap) Addr() string { return t.ln.Addr().String() }

// Files are the transcripts written so far, in connection order.
func (t *Tap) Files() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]string(nil), t.files...)
}

// Conns is the number of connections accepted so far.
func (t *Tap) Conns() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.n
}

// Quiet is how long no line has passed on any connection (since the tap
// started when there was none).
func (t *Tap) Quiet() time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.lastLine.IsZero() {
		return time.Since(t.start)
	}
	return time.Since(t.lastLine)
}

// Close stops accepting, cuts the connections still open (the client is
// gone by then) and waits until every transcript is complete.
func (t *Tap) Close() error {
	t.ln.Close()
	t.mu.Lock()
	for c := range t.conns {
		c.Close()
	}
	t.mu.Unlock()
	t.wg.Wait()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.timeline.Flush()
	err := t.tlFile.Close()
	if !t.overlap {
		// Connections one after another: their transcripts already have
		// every line in order.
		os.Remove(t.tlFile.Name())
	}
	return err
}

func (t *Tap) serve() {
	for {
		c, err := t.ln.Accept()
		if err != nil {
			return
		}
		t.mu.Lock()
		t.n++
		n := t.n
		t.open++
		t.overlap = t.overlap || t.open > 1
		t.conns[c] = true
		t.wg.Add(1)
		t.mu.Unlock()
		go func() {
			defer t.wg.Done()
			if err := t.relay(c, n); err != nil {
				fmt.Fprintf(os.Stderr, "imap-tap: connection %d: %v\n", n, err)
			}
		}()
	}
}

// tapConn is one relayed connection and its transcript.
type tapConn struct {
	t        *Tap
	n        int
	accepted time.Time
	mu       sync.Mutex
	w        *bufio.Writer
	last     time.Time
	sent     [2]int64 // bytes: client, server
	closer   string   // who closed first
}

func (t *Tap) relay(cc net.Conn, n int) error {
	defer func() {
		cc.Close()
		t.mu.Lock()
		delete(t.conns, cc)
		t.open--
		t.mu.Unlock()
	}()
	accepted := time.Now()
	name := fmt.Sprintf("%s-conn%d.txt", t.capture, n)
	f, err := os.Create(filepath.Join(t.dir, name))
	if err != nil {
		return err
	}
	defer f.Close()
	t.mu.Lock()
	t.files = append(t.files, name)
	t.mu.Unlock()
	sc, err := net.Dial("tcp", t.upstream)
	if err != nil {
		return err
	}
	t.mu.Lock()
	t.conns[sc] = true
	t.mu.Unlock()
	defer func() {
		sc.Close()
		t.mu.Lock()
		delete(t.conns, sc)
		t.mu.Unlock()
	}()
	c := &tapConn{t: t, n: n, accepted: accepted, w: bufio.NewWriter(f), last: accepted}
	h := t.hdr
	fmt.Fprintf(c.w, "# imap-tap transcript v1 (%s)\n", h.Proto)
	fmt.Fprintf(c.w, "# client: %s\n", h.Client)
	fmt.Fprintf(c.w, "# client-version: %s\n", h.ClientVersion)
	fmt.Fprintf(c.w, "# server: %s (%s, reached via tap on %s)\n", h.Server, t.upstream, t.Addr())
	fmt.Fprintf(c.w, "# date: %s\n", accepted.UTC().Format("2006-01-02T15:04:05Z"))
	fmt.Fprintf(c.w, "# scenario: %s\n", h.Scenario)
	if h.Account != "" {
		fmt.Fprintf(c.w, "# account: %s\n", h.Account)
	}
	fmt.Fprintf(c.w, "# connection: %d of capture %q, client address %s\n", n, t.capture, cc.RemoteAddr())
	fmt.Fprintf(c.w, "# format: 'C: '/'S: ' + one wire line without its CRLF; literals inline verbatim; '# t+Ns' marks pauses >= 1s\n")
	c.w.Flush()

	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); c.pump(cc, sc, 'C') }()
	go func() { defer wg.Done(); c.pump(sc, cc, 'S') }()
	wg.Wait()

	end := time.Now()
	fmt.Fprintf(c.w, "# end: %s after %.3fs; %s closed the connection first; client sent %d bytes, server sent %d bytes\n",
		end.UTC().Format("2006-01-02T15:04:05Z"), end.Sub(accepted).Seconds(), c.closer, c.sent[0], c.sent[1])
	return c.w.Flush()
}

// pump copies src to dst line by line, logging each line first. At EOF it
// half-closes dst, so the other side sees the close; an error closes both.
func (c *tapConn) pump(src, dst net.Conn, dir byte) {
	br := bufio.NewReaderSize(src, 64<<10)
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			c.log(dir, line)
			if _, werr := dst.Write(line); werr != nil {
				err = werr
			}
		}
		if err != nil {
			c.mu.Lock()
			if c.closer == "" {
				if dir == 'C' {
					c.closer = "client"
				} else {
					c.closer = "server"
				}
			}
			c.mu.Unlock()
			if tc, ok := dst.(*net.TCPConn); ok && errors.Is(err, io.EOF) {
				tc.CloseWrite()
			} else {
				src.Close()
				dst.Close()
			}
			return
		}
	}
}

// log writes one line of direction dir ('C' or 'S') to the transcript and
// the timeline.
func (c *tapConn) log(dir byte, line []byte) {
	now := time.Now()
	kind, payload := byte('='), line
	switch {
	case len(line) >= 2 && line[len(line)-2] == '\r' && line[len(line)-1] == '\n':
		kind, payload = ':', line[:len(line)-2]
	case line[len(line)-1] == '\n':
		kind, payload = '~', line[:len(line)-1]
	}
	c.mu.Lock()
	if now.Sub(c.last) >= time.Second {
		fmt.Fprintf(c.w, "# t+%.3fs\n", now.Sub(c.accepted).Seconds())
	}
	c.last = now
	c.w.Write([]byte{dir, kind, ' '})
	c.w.Write(payload)
	c.w.WriteByte('\n')
	if dir == 'C' {
		c.sent[0] += int64(len(line))
	} else {
		c.sent[1] += int64(len(line))
	}
	c.w.Flush()
	c.mu.Unlock()

	t := c.t
	t.mu.Lock()
	t.lastLine = now
	fmt.Fprintf(t.timeline, "+%.6f c%d %c%c %s\n", now.Sub(t.start).Seconds(), c.n, dir, kind, payload)
	t.timeline.Flush()
	t.mu.Unlock()
}
