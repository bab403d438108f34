package conformance

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Target is a server the scenarios run against.
type Target interface {
	Name() string
	// Reset returns the address of the server and the credentials of an
	// account that is empty: only INBOX, no messages, nothing subscribed,
	// UIDs starting at 1.
	Reset(t testing.TB) (addr string, user, pass string)
}

// DefaultTimeout bounds every wait for a response. Blocks end as soon as
// they match, so a generous bound costs nothing on a passing run and keeps a
// loaded 2-core CI machine (-race, bcrypt) from failing a correct server.
const DefaultTimeout = 15 * time.Second

// Conn is a client connection that reads responses in the background.
type Conn struct {
	name  string
	nc    net.Conn
	resps chan *Resp
	wait  time.Duration // timeout for the next expect block (cN wait)
}

// Dial connects to addr; the greeting is left unread.
func Dial(name, addr string) (*Conn, error) {
	nc, err := net.DialTimeout("tcp", addr, DefaultTimeout)
	if err != nil {
		return nil, err
	}
	c := &Conn{name: name, nc: nc, resps: make(chan *Resp, 1024)}
	go c.readLoop()
	return c, nil
}

func (c *Conn) Close() { c.nc.Close() }

var lineLitRe = regexp.MustCompile(`~?\{(\d+)\+?\}$`)

// ReadResp reads one response, literals included.
func ReadResp(br *bufio.Reader) (*Resp, error) {
	var frags []Frag
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return nil, err
		}
		line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
		frags = append(frags, Frag{Text: line})
		m := lineLitRe.FindStringSubmatch(line)
		if m == nil {
			break
		}
		n, _ := strconv.Atoi(m[1])
		lit := make([]byte, n)
		if _, err := io.ReadFull(br, lit); err != nil {
			return nil, err
		}
		frags = append(frags, Frag{IsLit: true, Lit: lit})
	}
	return ParseResp(frags, false, nil)
}

func (c *Conn) readLoop() {
	br := bufio.NewReader(c.nc)
	for {
		r, err := ReadResp(br)
		if err != nil {
			c.resps <- &Resp{EOF: true, Text: err.Error()}
			close(c.resps)
			return
		}
		c.resps <- r
	}
}

// Next returns the next response, or nil after the timeout.
func (c *Conn) Next(d time.Duration) *Resp {
	select {
	case r, ok := <-c.resps:
		if !ok {
			return &Resp{EOF: true, Text: "read after close"}
		}
		return r
	case <-time.After(d):
		return nil
	}
}

// Pending returns the responses received and not yet read, without waiting.
func (c *Conn) Pending() []*Resp {
	var out []*Resp
	for {
		select {
		case r, ok := <-c.resps:
			if !ok {
				return out
			}
			out = append(out, r)
		default:
			return out
		}
	}
}

func (c *Conn) Write(b []byte) error {
	c.nc.SetWriteDeadline(time.Now().Add(DefaultTimeout))
	_, err := c.nc.Write(b)
	return err
}

// Command sends one line and collects responses up to the tagged one.
// Continuation requests are answered with the next element of lits.
func (c *Conn) Command(tag, line string, lits ...[]byte) (untagged []*Resp, done *Resp, err error) {
	if err := c.Write([]byte(tag + " " + line + "\r\n")); err != nil {
		return nil, nil, err
	}
	for {
		r := c.Next(4 * DefaultTimeout)
		switch {
		case r == nil:
			return untagged, nil, fmt.Errorf("%s: timeout waiting for %s", c.name, tag)
		case r.EOF:
			return untagged, nil, fmt.Errorf("%s: connection closed waiting for %s: %s", c.name, tag, r.Text)
		case r.Tag == "+" && len(lits) > 0:
			if err := c.Write(append(lits[0], "\r\n"...)); err != nil {
				return untagged, nil, err
			}
			lits = lits[1:]
		case r.Tag == tag:
			if r.Status != "OK" {
				return untagged, r, fmt.Errorf("%s %s: %s", tag, line, r.Raw)
			}
			return untagged, r, nil
		default:
			untagged = append(untagged, r)
		}
	}
}

// Login reads the greeting and logs in with LOGIN.
func (c *Conn) Login(user, pass string) error {
	g := c.Next(DefaultTimeout)
	if g == nil || g.EOF || g.Status != "OK" {
		return fmt.Errorf("%s: bad greeting %v", c.name, g)
	}
	_, _, err := c.Command("L0", "LOGIN "+quote(user)+" "+quote(pass))
	return err
}

func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}
