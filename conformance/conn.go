package conformance

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"decimail/internal/imaptest"
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
const DefaultTimeout = imaptest.DefaultTimeout

// The response model, its parser and the scenario matcher are
// internal/imaptest's, shared with the imapd tests and the benchmarks.
type (
	Resp     = imaptest.Resp
	Frag     = imaptest.Frag
	Tok      = imaptest.Tok
	TokKind  = imaptest.TokKind
	Bindings = imaptest.Bindings
)

const (
	Atom = imaptest.Atom
	Str  = imaptest.Str
	List = imaptest.List
	Wild = imaptest.Wild
	Any  = imaptest.Any
	Var  = imaptest.Var
	IStr = imaptest.IStr
)

// MatchResp is imaptest.MatchResp (the runner's name for it).
func MatchResp(exp, got *Resp, b Bindings) (Bindings, bool) { return imaptest.MatchResp(exp, got, b) }

// Conn is a scenario connection: the shared client with its background
// reader (Next waits with a timeout and never cuts a response in half),
// the name the scenario gives it and its pending "wait".
type Conn struct {
	*imaptest.Client
	name string
	wait time.Duration // timeout for the next expect block (cN wait)
	// greetingCaps are the greeting's CAPABILITY code (Login reads the
	// greeting): the not-authenticated state's, AUTH=... among them.
	greetingCaps []string
}

// Dial connects to addr; the greeting is left unread.
func Dial(name, addr string) (*Conn, error) {
	nc, err := net.DialTimeout("tcp", addr, DefaultTimeout)
	if err != nil {
		return nil, err
	}
	c := &Conn{Client: imaptest.New(nc), name: name}
	c.Timeout = 4 * DefaultTimeout // a command's responses (fixtures, -race)
	c.Background()
	return c, nil
}

func (c *Conn) Close() { c.Client.Close() }

// Next returns the next response, nil after the timeout, or an EOF
// response once the connection is closed or broken.
func (c *Conn) Next(d time.Duration) *Resp {
	r, err := c.Poll(d)
	if err != nil {
		return &Resp{EOF: true, Text: err.Error()}
	}
	return r
}

// Command sends one command and collects responses up to the tagged one.
// Each element of lits is sent after a continuation request, the way the
// line before it (ending in {n}) announced it.
func (c *Conn) Command(tag, line string, lits ...[]byte) (untagged []*Resp, done *Resp, err error) {
	cmd := line
	for _, l := range lits {
		cmd += "\r\n" + string(l)
	}
	untagged, done, err = c.CommandTag(tag, cmd)
	switch {
	case done == nil:
		return untagged, nil, fmt.Errorf("%s: %w", c.name, err)
	case err != nil:
		return untagged, done, fmt.Errorf("%s %s: %s", tag, line, done.Raw)
	}
	return untagged, done, nil
}

// Login reads the greeting and logs in with LOGIN.
func (c *Conn) Login(user, pass string) error {
	g := c.Next(DefaultTimeout)
	if g == nil || g.EOF || g.Status != "OK" {
		return fmt.Errorf("%s: bad greeting %v", c.name, g)
	}
	if len(g.Code) > 0 && strings.EqualFold(g.Code[0].S, "CAPABILITY") {
		for _, tok := range g.Code[1:] {
			c.greetingCaps = append(c.greetingCaps, tok.S)
		}
	}
	_, _, err := c.Command("L0", "LOGIN "+imaptest.Quote(user)+" "+imaptest.Quote(pass))
	return err
}

func abbrev(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
