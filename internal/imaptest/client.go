package imaptest

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultTimeout bounds every wait for a response (Client.Timeout) and the
// dial. Commands end as soon as their tagged response arrives, so a generous
// bound costs nothing on a passing run and keeps a loaded 2-core CI machine
// (-race, bcrypt) from failing a correct server.
const DefaultTimeout = 15 * time.Second

// Client is an IMAP client connection for tests, the conformance runner and
// benchmarks. It writes what it is told (commands with automatic or given
// tags, or raw bytes) and reads responses either parsed (Read, Command) or
// raw (ReadRaw, Stream: framed by their literals but not tokenized, for
// benchmarks, where the client must cost as little as possible).
//
// A Client reads synchronously: only the goroutine that calls its methods
// touches the connection. Background starts a reader goroutine instead (the
// conformance runner waits for responses with a timeout); from then on only
// the parsed methods (Read, Poll, Command, Wait) can read. A Client is not
// safe for concurrent use.
type Client struct {
	Greeting *Resp
	// Caps are the capabilities of the last CAPABILITY response or
	// [CAPABILITY] code (greeting, LOGIN), upper-cased.
	Caps map[string]bool
	// Timeout bounds each read of a response and each write. Zero leaves
	// deadlines to the caller (Conn().SetDeadline): benchmarks do that.
	Timeout time.Duration

	nc       net.Conn
	br       *bufio.Reader
	bw       *bufio.Writer
	tag      int
	raw      Raw
	rdl, wdl time.Time // the deadlines this client set (zero: none)

	arm       compressArm // COMPRESS armed (compress.go)
	deflating bool        // the writer compresses

	bg        chan result // background mode: responses read by the reader goroutine
	bgErr     error       // the error that ended the background reader
	closed    chan struct{}
	closeOnce sync.Once
}

type result struct {
	r        *Resp
	compress bool // r is the OK to COMPRESS: the writer compresses from now on
	caps     []string
	hasCaps  bool
	err      error
}

// StatusError is a tagged NO or BAD (or a BYE greeting).
type StatusError struct{ Resp *Resp }

func (e *StatusError) Error() string { return "imap: " + e.Resp.String() }

// New wraps a connection; nothing is read (see ReadGreeting).
func New(nc net.Conn) *Client {
	return &Client{
		nc: nc, br: bufio.NewReaderSize(nc, 64<<10), bw: bufio.NewWriterSize(nc, 64<<10),
		Caps: map[string]bool{}, Timeout: DefaultTimeout, closed: make(chan struct{}),
	}
}

// Dial connects to addr and reads the greeting, which must be OK or PREAUTH.
func Dial(addr string) (*Client, error) {
	nc, err := net.DialTimeout("tcp", addr, DefaultTimeout)
	if err != nil {
		return nil, err
	}
	c := New(nc)
	if err := c.ReadGreeting(); err != nil {
		nc.Close()
		return nil, err
	}
	return c, nil
}

// ReadGreeting reads the greeting into c.Greeting; an error unless it is OK
// or PREAUTH.
func (c *Client) ReadGreeting() error {
	g, err := c.Read()
	if err != nil {
		return fmt.Errorf("greeting: %w", err)
	}
	c.Greeting = g
	if g.Tag != "*" || (g.Status != "OK" && g.Status != "PREAUTH") {
		return fmt.Errorf("greeting: %w", &StatusError{g})
	}
	return nil
}

// Conn is the underlying connection.
func (c *Client) Conn() net.Conn { return c.nc }

// Close closes the connection without LOGOUT.
func (c *Client) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
	return c.nc.Close()
}

// Logout says LOGOUT, reads the answer and closes.
func (c *Client) Logout() error {
	_, _, err := c.Command("LOGOUT")
	if cerr := c.Close(); err == nil {
		err = cerr
	}
	return err
}

// Login logs in with LOGIN.
func (c *Client) Login(user, pass string) error {
	_, _, err := c.Command("LOGIN " + Quote(user) + " " + Quote(pass))
	return err
}

// ---- writing ----

// NextTag returns a fresh tag ("t1", "t2", ...).
func (c *Client) NextTag() string {
	c.tag++
	return "t" + strconv.Itoa(c.tag)
}

// Buffer is the client's write buffer, for building commands in place
// (pipelining, literal octets from byte slices); Flush sends it.
func (c *Client) Buffer() *bufio.Writer { return c.bw }

// Flush sends what is buffered.
func (c *Client) Flush() error {
	c.armWrite()
	return c.bw.Flush()
}

// Write sends raw bytes (anything buffered first).
func (c *Client) Write(b []byte) error {
	c.bw.Write(b)
	return c.Flush()
}

// Queue buffers "tag cmd CRLF" with a fresh tag and returns the tag. cmd
// is written as it is: literals in it must be non-synchronising ({n+}).
func (c *Client) Queue(cmd string) string {
	tag := c.NextTag()
	c.bw.WriteString(tag)
	c.bw.WriteByte(' ')
	c.bw.WriteString(cmd)
	c.bw.WriteString("\r\n")
	return tag
}

// segments splits a command (CRLF included) after the CRLF of each
// synchronising literal's {n}: the server must answer "+" before the next
// segment. Literal octets are skipped, not searched for markers.
func segments(cmd string) []string {
	var segs []string
	start := 0
	for i := 0; i < len(cmd); {
		j := strings.Index(cmd[i:], "}\r\n")
		if j < 0 {
			break
		}
		end := i + j + 3 // after CRLF
		n, ok := literalLen([]byte(cmd[i : i+j+1]))
		if !ok {
			i = end
			continue
		}
		if cmd[i+j-1] != '+' {
			segs = append(segs, cmd[start:end])
			start = end
		}
		i = min(end+n, len(cmd))
	}
	return append(segs, cmd[start:])
}

// ---- reading ----

func (c *Client) armRead() {
	if c.Timeout <= 0 {
		if !c.rdl.IsZero() {
			c.nc.SetReadDeadline(time.Time{})
			c.rdl = time.Time{}
		}
		return
	}
	// Re-arm only when a quarter of the timeout has passed: a deadline per
	// response would cost a timer update each on long listings.
	if now := time.Now(); c.rdl.Sub(now) < c.Timeout*3/4 {
		c.rdl = now.Add(c.Timeout)
		c.nc.SetReadDeadline(c.rdl)
	}
}

func (c *Client) armWrite() {
	if c.Timeout <= 0 {
		if !c.wdl.IsZero() {
			c.nc.SetWriteDeadline(time.Time{})
			c.wdl = time.Time{}
		}
		return
	}
	if now := time.Now(); c.wdl.Sub(now) < c.Timeout*3/4 {
		c.wdl = now.Add(c.Timeout)
		c.nc.SetWriteDeadline(c.wdl)
	}
}

var errBackground = errors.New("imaptest: raw reads are not available once the background reader runs")

// ReadRaw reads one response without tokenizing it. The Raw is valid until
// the next read.
func (c *Client) ReadRaw() (*Raw, error) {
	if c.bg != nil {
		return nil, errBackground
	}
	c.armRead()
	if err := c.raw.read(c.br); err != nil {
		return nil, err
	}
	if caps, ok := capsOf(c.raw.Bytes); ok {
		c.setCaps(caps)
	}
	if c.arm.tag != "" && c.raw.Tagged(c.arm.tag) {
		r, err := c.raw.Parse()
		if err == nil && c.arm.starts(r) {
			c.br = inflating(c.br)
			c.startDeflate()
		}
	}
	return &c.raw, nil
}

// Read reads and parses one response. An error is a read error (a timeout
// after Timeout, the connection closed: io.EOF) or a response that does not
// parse.
func (c *Client) Read() (*Resp, error) {
	if c.bg != nil {
		return c.recv(c.Timeout, false)
	}
	raw, err := c.ReadRaw()
	if err != nil {
		return nil, err
	}
	return raw.Parse()
}

// Poll returns the next response if one starts within d, and nil, nil if
// none does. Without the background reader it waits for the first octet
// with a read deadline of d (which replaces a deadline set through Conn).
func (c *Client) Poll(d time.Duration) (*Resp, error) {
	if c.bg != nil {
		return c.recv(d, true)
	}
	if c.br.Buffered() == 0 {
		c.rdl = time.Now().Add(d)
		c.nc.SetReadDeadline(c.rdl)
		if _, err := c.br.Peek(1); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return nil, nil
			}
			return nil, err
		}
	}
	return c.Read()
}

// Pending reports whether a response (or part of one) has been received but
// not read.
func (c *Client) Pending() bool {
	if c.bg != nil {
		return len(c.bg) > 0
	}
	return c.br.Buffered() > 0
}

// Background starts a goroutine that reads and parses every response as
// it arrives; Read, Poll and the commands then take them from a queue, so
// a timeout never interrupts a response half read. It ends with the
// connection.
func (c *Client) Background() {
	if c.bg != nil {
		return
	}
	ch := make(chan result, 1024)
	c.bg = ch
	if !c.rdl.IsZero() {
		c.nc.SetReadDeadline(time.Time{})
		c.rdl = time.Time{}
	}
	br := c.br
	go func() {
		defer close(ch)
		var raw Raw
		for {
			var res result
			if res.err = raw.read(br); res.err == nil {
				res.r, res.err = raw.Parse()
				res.caps, res.hasCaps = capsOf(raw.Bytes)
				if res.err == nil && c.arm.starts(res.r) {
					br = inflating(br) // what follows the OK is compressed
					res.compress = true
				}
			}
			select {
			case ch <- res:
			case <-c.closed:
				return
			}
			if res.err != nil {
				return
			}
		}
	}()
}

// recv takes the next response from the background reader, waiting at most
// d (0: no limit). With poll, running out of time is not an error.
func (c *Client) recv(d time.Duration, poll bool) (*Resp, error) {
	if c.bgErr != nil {
		return nil, c.bgErr
	}
	var timeout <-chan time.Time
	switch {
	case d > 0:
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	case poll: // no time left: only what is queued
		select {
		case res, ok := <-c.bg:
			return c.take(res, ok)
		default:
			return nil, nil
		}
	}
	select {
	case res, ok := <-c.bg:
		return c.take(res, ok)
	case <-timeout:
		if poll {
			return nil, nil
		}
		return nil, fmt.Errorf("no response within %v: %w", d, os.ErrDeadlineExceeded)
	}
}

// take accepts a result of the background reader.
func (c *Client) take(res result, ok bool) (*Resp, error) {
	switch {
	case !ok:
		c.bgErr = errors.New("read after close")
	case res.err != nil:
		c.bgErr = res.err
	default:
		if res.hasCaps {
			c.setCaps(res.caps)
		}
		if res.compress {
			c.startDeflate()
		}
		return res.r, nil
	}
	return nil, c.bgErr
}

// capsOf finds the capability list in a CAPABILITY response or a status
// response with a [CAPABILITY ...] code (cheap checks on the raw line).
func capsOf(b []byte) ([]string, bool) {
	sp := bytes.IndexByte(b, ' ')
	if sp < 0 {
		return nil, false
	}
	rest := b[sp+1:]
	if b[0] == '*' && bytes.HasPrefix(rest, []byte("CAPABILITY ")) {
		line := rest[len("CAPABILITY "):]
		if i := bytes.IndexByte(line, '\n'); i >= 0 {
			line = line[:i]
		}
		return strings.Fields(string(line)), true
	}
	for _, p := range []string{"OK [CAPABILITY ", "PREAUTH [CAPABILITY "} {
		if bytes.HasPrefix(rest, []byte(p)) {
			line := rest[len(p):]
			if i := bytes.IndexByte(line, ']'); i >= 0 {
				return strings.Fields(string(line[:i])), true
			}
		}
	}
	return nil, false
}

func (c *Client) setCaps(caps []string) {
	c.Caps = make(map[string]bool, len(caps))
	for _, s := range caps {
		c.Caps[strings.ToUpper(s)] = true
	}
}

// ---- commands ----

// Command sends cmd with a fresh tag and reads up to its tagged response.
// Literals are written inline: "APPEND INBOX {5}\r\nhello"; before the
// octets of a synchronising literal the client waits for "+" (a tagged
// answer instead ends the command), non-synchronising ones ({5+}) go
// straight out. Other tagged responses count as untagged. A tagged NO or
// BAD comes back as done and as a *StatusError.
func (c *Client) Command(cmd string) (untagged []*Resp, done *Resp, err error) {
	return c.CommandTag(c.NextTag(), cmd)
}

// CommandTag is Command with a tag of the caller's choosing.
func (c *Client) CommandTag(tag, cmd string) (untagged []*Resp, done *Resp, err error) {
	for i, seg := range segments(tag + " " + cmd + "\r\n") {
		if i > 0 {
			for {
				r, err := c.Read()
				if err != nil {
					return untagged, nil, fmt.Errorf("%s: waiting for a continuation request: %w", tag, err)
				}
				if r.Tag == "+" {
					break
				}
				if r.Tag == tag {
					return untagged, r, statusErr(r)
				}
				untagged = append(untagged, r)
			}
		}
		c.bw.WriteString(seg)
		if err := c.Flush(); err != nil {
			return untagged, nil, err
		}
	}
	u, done, err := c.Wait(tag)
	return append(untagged, u...), done, err
}

// Wait reads responses up to the one tagged tag (a command sent with
// Write, Queue or Buffer).
func (c *Client) Wait(tag string) (untagged []*Resp, done *Resp, err error) {
	for {
		r, err := c.Read()
		if err != nil {
			return untagged, nil, fmt.Errorf("%s: waiting for the tagged response: %w", tag, err)
		}
		switch r.Tag {
		case tag:
			return untagged, r, statusErr(r)
		case "+":
			return untagged, nil, fmt.Errorf("%s: unexpected continuation request %q", tag, r.Raw)
		}
		untagged = append(untagged, r)
	}
}

func statusErr(r *Resp) error {
	if r.Status == "OK" {
		return nil
	}
	return &StatusError{r}
}

// Stream sends cmd (literals as in Command) and reads to its tagged
// response without parsing: each other response goes to fn (may be nil)
// as it was read, valid during the call. A NO or BAD is a *StatusError.
func (c *Client) Stream(cmd string, fn func(*Raw)) error {
	tag := c.NextTag()
	for i, seg := range segments(tag + " " + cmd + "\r\n") {
		if i > 0 {
			for {
				raw, err := c.ReadRaw()
				if err != nil {
					return err
				}
				if len(raw.Bytes) > 0 && raw.Bytes[0] == '+' {
					break
				}
				if raw.Tagged(tag) {
					return rawStatus(raw)
				}
				if fn != nil {
					fn(raw)
				}
			}
		}
		c.bw.WriteString(seg)
		if err := c.Flush(); err != nil {
			return err
		}
	}
	return c.WaitRaw(tag, fn)
}

// WaitRaw reads to the response tagged tag, passing the others to fn
// unparsed (see Stream).
func (c *Client) WaitRaw(tag string, fn func(*Raw)) error {
	for {
		raw, err := c.ReadRaw()
		if err != nil {
			return err
		}
		if raw.Tagged(tag) {
			return rawStatus(raw)
		}
		if fn != nil {
			fn(raw)
		}
	}
}

// rawStatus is nil for a tagged OK, else the parsed NO/BAD as an error.
func rawStatus(raw *Raw) error {
	b := raw.Bytes[bytes.IndexByte(raw.Bytes, ' ')+1:]
	if len(b) >= 2 && (b[0] == 'O' || b[0] == 'o') && (b[1] == 'K' || b[1] == 'k') && (len(b) == 2 || b[2] == ' ' || b[2] == '\r') {
		return nil
	}
	r, err := raw.Parse()
	if err != nil {
		return err
	}
	return &StatusError{r}
}

// UpgradeTLS starts TLS on the connection (after the tagged OK to
// STARTTLS); nothing may be left unread.
func (c *Client) UpgradeTLS(cfg *tls.Config) error {
	if c.bg != nil || c.br.Buffered() > 0 {
		return errors.New("imaptest: data received before the TLS handshake")
	}
	tc := tls.Client(c.nc, cfg)
	c.armRead()
	c.armWrite()
	if err := tc.Handshake(); err != nil {
		return err
	}
	c.nc = tc
	c.br.Reset(tc)
	c.bw.Reset(tc)
	return nil
}
