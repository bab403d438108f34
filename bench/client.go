package bench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// Client is a minimal raw IMAP client for timing: it writes command lines
// and reads responses with their literals inline, nothing more. It parses
// nothing it does not need, so what a measurement times is the server.
type Client struct {
	nc   net.Conn
	r    *bufio.Reader
	w    *bufio.Writer
	tag  int
	Caps map[string]bool
	buf  []byte
}

// Dial connects and reads the greeting.
func Dial(addr string) (*Client, error) {
	nc, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	c := &Client{nc: nc, r: bufio.NewReaderSize(nc, 64<<10), w: bufio.NewWriterSize(nc, 64<<10), Caps: map[string]bool{}}
	g, err := c.ReadResponse()
	if err != nil {
		nc.Close()
		return nil, err
	}
	if !bytes.HasPrefix(g, []byte("* OK")) && !bytes.HasPrefix(g, []byte("* PREAUTH")) {
		nc.Close()
		return nil, fmt.Errorf("greeting: %q", g)
	}
	c.parseCaps(g)
	return c, nil
}

// Login dials, logs in and records the capabilities.
func Login(addr, user, pass string) (*Client, error) {
	c, err := Dial(addr)
	if err != nil {
		return nil, err
	}
	if err := c.Cmd(fmt.Sprintf("LOGIN %s %s", quote(user), quote(pass)), nil); err != nil {
		c.Close()
		return nil, err
	}
	if !c.Caps["LITERAL+"] {
		if err := c.Cmd("CAPABILITY", nil); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

func quote(s string) string { return strconv.Quote(s) }

// Close closes the connection without LOGOUT.
func (c *Client) Close() error { return c.nc.Close() }

// Logout says LOGOUT and closes.
func (c *Client) Logout() error {
	c.Cmd("LOGOUT", nil)
	return c.nc.Close()
}

// Conn exposes the socket (deadlines).
func (c *Client) Conn() net.Conn { return c.nc }

func (c *Client) parseCaps(line []byte) {
	s := string(line)
	i := strings.Index(strings.ToUpper(s), "CAPABILITY ")
	if i < 0 {
		return
	}
	s = s[i+len("CAPABILITY "):]
	if j := strings.IndexByte(s, ']'); j >= 0 {
		s = s[:j]
	}
	for _, f := range strings.Fields(s) {
		c.Caps[strings.ToUpper(f)] = true
	}
}

// ReadResponse reads one response line with any literals inline. The slice
// is valid until the next read.
func (c *Client) ReadResponse() ([]byte, error) {
	c.buf = c.buf[:0]
	for {
		line, err := c.r.ReadSlice('\n')
		for errors.Is(err, bufio.ErrBufferFull) {
			c.buf = append(c.buf, line...)
			line, err = c.r.ReadSlice('\n')
		}
		if err != nil {
			return nil, err
		}
		c.buf = append(c.buf, line...)
		n, ok := literalLen(c.buf)
		if !ok {
			return c.buf, nil
		}
		start := len(c.buf)
		c.buf = append(c.buf, make([]byte, n)...)
		if _, err := io.ReadFull(c.r, c.buf[start:]); err != nil {
			return nil, err
		}
	}
}

// literalLen reports a trailing {n} (or {n+}) before CRLF.
func literalLen(b []byte) (int64, bool) {
	b = bytes.TrimRight(b, "\r\n")
	if len(b) < 3 || b[len(b)-1] != '}' {
		return 0, false
	}
	i := bytes.LastIndexByte(b, '{')
	if i < 0 {
		return 0, false
	}
	num := bytes.TrimSuffix(b[i+1:len(b)-1], []byte("+"))
	n, err := strconv.ParseInt(string(num), 10, 64)
	return n, err == nil
}

// StatusError is a tagged NO or BAD.
type StatusError struct{ Line string }

func (e *StatusError) Error() string { return "imap: " + e.Line }

// Cmd sends one command and reads until its tagged reply; each untagged or
// continuation response goes to fn (may be nil). A NO/BAD is a *StatusError.
func (c *Client) Cmd(cmd string, fn func(resp []byte)) error {
	tag, err := c.Send(cmd)
	if err != nil {
		return err
	}
	return c.Wait(tag, fn)
}

// Send writes one command line and flushes; it returns the tag.
func (c *Client) Send(cmd string) (string, error) {
	c.tag++
	tag := "b" + strconv.Itoa(c.tag)
	c.w.WriteString(tag + " " + cmd + "\r\n")
	return tag, c.w.Flush()
}

// Wait reads responses until the one tagged tag.
func (c *Client) Wait(tag string, fn func(resp []byte)) error {
	for {
		resp, err := c.ReadResponse()
		if err != nil {
			return err
		}
		if len(resp) > len(tag) && string(resp[:len(tag)]) == tag && resp[len(tag)] == ' ' {
			st := strings.TrimRight(string(resp[len(tag)+1:]), "\r\n")
			if strings.HasPrefix(st, "OK") {
				c.parseCaps(resp)
				return nil
			}
			return &StatusError{st}
		}
		if bytes.HasPrefix(resp, []byte("* CAPABILITY ")) || bytes.HasPrefix(resp, []byte("* OK [CAPABILITY ")) {
			c.parseCaps(resp)
		}
		if fn != nil {
			fn(resp)
		}
	}
}

// Count runs cmd and returns the number of untagged responses that start
// with "* " and contain word (e.g. "FETCH").
func (c *Client) Count(cmd, word string) (int, error) {
	n := 0
	w := []byte(word)
	err := c.Cmd(cmd, func(r []byte) {
		if bytes.HasPrefix(r, []byte("* ")) && bytes.Contains(r[:min(len(r), 40)], w) {
			n++
		}
	})
	return n, err
}

// SearchUIDs runs a (UID) SEARCH and returns the number of hits.
func (c *Client) SearchCount(cmd string) (int, error) {
	n := 0
	err := c.Cmd(cmd, func(r []byte) {
		if bytes.HasPrefix(r, []byte("* SEARCH")) {
			n += len(bytes.Fields(r)) - 2
		}
	})
	return n, err
}

// Append stores msgs in mailbox with their flags and dates, pipelined in
// windows of window commands when the server offers LITERAL+ (one round
// trip per message otherwise). With MULTIAPPEND (RFC 3502) as well, each
// window is one APPEND command: Dovecot then commits (and fsyncs) once per
// window instead of once per message, which is what a migration tool does.
func (c *Client) Append(mailbox string, msgs []Message, window int) error {
	if window < 1 {
		window = 1
	}
	plus := c.Caps["LITERAL+"]
	if plus && c.Caps["MULTIAPPEND"] {
		return c.multiAppend(mailbox, msgs, window)
	}
	var tags []string
	flushWait := func() error {
		if err := c.w.Flush(); err != nil {
			return err
		}
		for _, t := range tags {
			if err := c.Wait(t, nil); err != nil {
				return fmt.Errorf("append: %w", err)
			}
		}
		tags = tags[:0]
		return nil
	}
	for i := range msgs {
		m := &msgs[i]
		c.tag++
		tag := "a" + strconv.Itoa(c.tag)
		date := m.Date.Format("02-Jan-2006 15:04:05 -0700")
		if plus {
			fmt.Fprintf(c.w, "%s APPEND %s %s %q {%d+}\r\n", tag, quote(mailbox), m.FlagList(), date, len(m.Raw))
			c.w.Write(m.Raw)
			c.w.WriteString("\r\n")
			tags = append(tags, tag)
			if len(tags) >= window {
				if err := flushWait(); err != nil {
					return err
				}
			}
			continue
		}
		fmt.Fprintf(c.w, "%s APPEND %s %s %q {%d}\r\n", tag, quote(mailbox), m.FlagList(), date, len(m.Raw))
		if err := c.w.Flush(); err != nil {
			return err
		}
		resp, err := c.ReadResponse()
		if err != nil {
			return err
		}
		if !bytes.HasPrefix(resp, []byte("+")) {
			return fmt.Errorf("append: no continuation: %q", resp)
		}
		c.w.Write(m.Raw)
		c.w.WriteString("\r\n")
		tags = append(tags, tag)
		if err := flushWait(); err != nil {
			return err
		}
	}
	return flushWait()
}

// IdleUntil enters IDLE (the caller has selected a mailbox), calls ready once
// the server confirmed, and returns when an untagged response containing
// want arrives (or the deadline passes); it then ends IDLE with DONE.
func (c *Client) IdleUntil(want string, ready func(), deadline time.Time) (time.Time, error) {
	tag, err := c.Send("IDLE")
	if err != nil {
		return time.Time{}, err
	}
	for {
		resp, err := c.ReadResponse()
		if err != nil {
			return time.Time{}, err
		}
		if bytes.HasPrefix(resp, []byte("+")) {
			break
		}
		if bytes.HasPrefix(resp, []byte(tag+" ")) {
			return time.Time{}, &StatusError{string(resp)}
		}
	}
	c.nc.SetReadDeadline(deadline)
	defer c.nc.SetReadDeadline(time.Time{})
	ready()
	var at time.Time
	for {
		resp, err := c.ReadResponse()
		if err != nil {
			return time.Time{}, err
		}
		if bytes.Contains(resp, []byte(want)) {
			at = time.Now()
			break
		}
	}
	c.nc.SetReadDeadline(time.Time{})
	c.w.WriteString("DONE\r\n")
	if err := c.w.Flush(); err != nil {
		return at, err
	}
	return at, c.Wait(tag, nil)
}

func (c *Client) multiAppend(mailbox string, msgs []Message, window int) error {
	for len(msgs) > 0 {
		batch := msgs[:min(window, len(msgs))]
		msgs = msgs[len(batch):]
		c.tag++
		tag := "a" + strconv.Itoa(c.tag)
		fmt.Fprintf(c.w, "%s APPEND %s", tag, quote(mailbox))
		for i := range batch {
			m := &batch[i]
			fmt.Fprintf(c.w, " %s %q {%d+}\r\n", m.FlagList(), m.Date.Format("02-Jan-2006 15:04:05 -0700"), len(m.Raw))
			c.w.Write(m.Raw)
		}
		c.w.WriteString("\r\n")
		if err := c.w.Flush(); err != nil {
			return err
		}
		if err := c.Wait(tag, nil); err != nil {
			return fmt.Errorf("append: %w", err)
		}
	}
	return nil
}
