package conformance

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"regexp"
	"slices"
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

// Run replays a scenario against a target.
func Run(t *testing.T, sc *Scenario, tg Target, fixtureDir string) {
	if sc.Applies == "decimail" && tg.Name() != "decimail" {
		t.Skipf("decimail-only scenario, target is %s", tg.Name())
	}
	addr, user, pass := tg.Reset(t)
	caps := loadFixture(t, tg, addr, user, pass, fixtureDir, sc.Fixture)
	for _, r := range sc.Requires {
		if !slices.ContainsFunc(caps, func(c string) bool { return strings.EqualFold(c, r) }) {
			t.Skipf("target %s does not advertise %s", tg.Name(), r)
		}
	}
	conns := map[string]*Conn{}
	for _, name := range sc.Conns {
		c, err := Dial(name, addr)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		t.Cleanup(c.Close)
		if sc.Login {
			if err := c.Login(user, pass); err != nil {
				t.Fatalf("%s: login: %v", name, err)
			}
		}
		conns[name] = c
	}
	vars := Bindings{
		"user":    user,
		"pass":    pass,
		"userlen": strconv.Itoa(len(user)),
		"passlen": strconv.Itoa(len(pass)),
		"plain":   base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + pass)),
	}
	for _, st := range sc.Steps {
		c := conns[st.Conn]
		where := fmt.Sprintf("%s:%d", sc.File, st.Line)
		switch st.Kind {
		case StepSend:
			var buf []byte
			for _, p := range st.Send {
				buf = append(buf, p.Raw...)
				buf = append(buf, substitute(p.Text, vars)...)
			}
			if err := c.Write(buf); err != nil {
				t.Fatalf("%s: %s: write: %v", where, st.Conn, err)
			}
		case StepWait:
			c.wait = st.Wait
		case StepClosed:
			expectClosed(t, c, where)
		case StepExpect:
			d := DefaultTimeout
			if c.wait > 0 {
				d, c.wait = c.wait, 0
			}
			got, ok := collect(c, st, d, vars)
			nb, err := matchBlock(st, got, vars)
			if err != nil || !ok {
				t.Fatalf("%s: %s: responses do not match\n%s", where, st.Conn, blockDiff(sc.File, st, got, err, ok))
			}
			vars = nb
		}
	}
}

var varRe = regexp.MustCompile(`\$\$|\$[A-Za-z0-9_]+`)

// substitute replaces $name by bound variables in sent text; unbound names
// (keywords such as $Forwarded) are sent as written, $$ sends $.
func substitute(s string, vars Bindings) string {
	return varRe.ReplaceAllStringFunc(s, func(m string) string {
		if m == "$$" {
			return "$"
		}
		if v, ok := vars[m[1:]]; ok {
			return v
		}
		return m
	})
}

// collect reads the responses belonging to an expect block. A block with
// tagged or continuation lines ends when all of them have arrived; a block
// of untagged lines only ends as soon as all expected lines are matched.
// ok is false on timeout or end of connection.
func collect(c *Conn, st *Step, d time.Duration, vars Bindings) (got []*Resp, ok bool) {
	tags := map[string]int{}
	for _, e := range st.Exp {
		if e.Resp.Tag != "*" && !e.Optional {
			tags[e.Resp.Tag]++
		}
	}
	deadline := time.Now().Add(d)
	for {
		if len(tags) == 0 && len(got) > 0 {
			if _, err := matchBlock(st, got, vars); err == nil {
				return got, true
			}
		}
		r := c.Next(time.Until(deadline))
		if r == nil {
			return got, false
		}
		got = append(got, r)
		if r.EOF {
			return got, false
		}
		if r.Tag != "*" {
			if tags[r.Tag]--; tags[r.Tag] <= 0 {
				delete(tags, r.Tag)
			}
			if len(tags) == 0 {
				return got, true
			}
		}
	}
}

// tolerated reports whether an unexpected response may be ignored: untagged
// OK responses are informational (RFC 3501 §7.1.1) unless !only is given.
func tolerated(r *Resp, only bool) bool {
	return !only && r.Tag == "*" && r.Status == "OK"
}

// matchBlock matches received responses against an expect block.
func matchBlock(st *Step, got []*Resp, vars Bindings) (Bindings, error) {
	// A block that expects no untagged response only checks the result:
	// untagged responses are then ignored (unless !only).
	lax := !st.Only && !slices.ContainsFunc(st.Exp, func(e *ExpLine) bool { return e.Resp.Tag == "*" })
	tolerated := func(r *Resp, only bool) bool { return tolerated(r, only) || lax && r.Tag == "*" }
	b := vars
	if st.Ordered {
		i := 0
	next:
		for _, g := range got {
			for k := i; k < len(st.Exp); k++ {
				if nb, ok := MatchResp(st.Exp[k].Resp, g, b); ok {
					b, i = nb, k+1
					continue next
				}
				if !st.Exp[k].Optional {
					break
				}
			}
			if !tolerated(g, st.Only) {
				return nil, fmt.Errorf("unexpected response %q", g.String())
			}
		}
		for ; i < len(st.Exp); i++ {
			if !st.Exp[i].Optional {
				return nil, fmt.Errorf("line %d not matched", st.Exp[i].Line)
			}
		}
		return b, nil
	}
	used := make([]bool, len(got))
	var missing []string
	for _, e := range st.Exp {
		found := false
		for j, g := range got {
			if used[j] {
				continue
			}
			if nb, ok := MatchResp(e.Resp, g, b); ok {
				b, used[j], found = nb, true, true
				break
			}
		}
		if !found && !e.Optional {
			missing = append(missing, strconv.Itoa(e.Line))
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("expected line(s) %s not matched", strings.Join(missing, ", "))
	}
	for j, g := range got {
		if !used[j] && !tolerated(g, st.Only) {
			return nil, fmt.Errorf("unexpected response %q", g.String())
		}
	}
	return b, nil
}

func blockDiff(file string, st *Step, got []*Resp, err error, complete bool) string {
	var b strings.Builder
	if err != nil {
		fmt.Fprintf(&b, "  %v\n", err)
	}
	if !complete {
		b.WriteString("  (timed out or connection closed before the block was complete)\n")
	}
	mode := "unordered"
	if st.Ordered {
		mode = "ordered"
	}
	if st.Only {
		mode += ", !only"
	}
	fmt.Fprintf(&b, "  expected (%s):\n", mode)
	for _, e := range st.Exp {
		fmt.Fprintf(&b, "    %s:%d: %s\n", file, e.Line, e.Src)
	}
	b.WriteString("  got:\n")
	for _, g := range got {
		fmt.Fprintf(&b, "    %s\n", g.String())
	}
	return b.String()
}

func expectClosed(t *testing.T, c *Conn, where string) {
	deadline := time.Now().Add(DefaultTimeout)
	for {
		r := c.Next(time.Until(deadline))
		switch {
		case r == nil:
			t.Fatalf("%s: %s: connection still open", where, c.name)
		case r.EOF:
			return
		case !tolerated(r, false) && r.Status != "BYE":
			t.Fatalf("%s: %s: unexpected response before close: %s", where, c.name, r)
		}
	}
}
