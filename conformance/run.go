package conformance

import (
	"encoding/base64"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"decimail/internal/imaptest"
)

// Run replays a scenario against a target.
func Run(t *testing.T, sc *Scenario, tg Target, fixtureDir string) {
	if sc.Applies == "decimail" && tg.Name() != "decimail" {
		t.Skipf("decimail-only scenario, target is %s", tg.Name())
	}
	addr, user, pass := tg.Reset(t)
	caps := loadFixture(t, tg, addr, user, pass, fixtureDir, sc.Fixture)
	for _, r := range sc.Requires {
		if slices.ContainsFunc(caps, func(c string) bool { return strings.EqualFold(c, r) }) {
			continue
		}
		// Decimail must advertise everything a scenario requires: a
		// capability it stops advertising fails its scenarios, it does
		// not make them vanish.
		if tg.Name() == "decimail" {
			t.Fatalf("%s requires %s, which Decimail does not advertise", sc.File, r)
		}
		t.Skipf("target %s does not advertise %s", tg.Name(), r)
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
	rec := newRecorder(t, sc)
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
			if tag, cmd, ok := strings.Cut(string(buf), " "); ok && imaptest.IsCompress(cmd) {
				// After its OK the conversation is compressed (RFC 4978):
				// the scenario goes on in plain text, the client deflates.
				c.CompressAfter(tag)
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
			rec.block(st, got, err == nil && ok)
			if err != nil || !ok {
				if rec != nil && ok {
					continue // recording: keep going to see the later blocks
				}
				t.Fatalf("%s: %s: responses do not match\n%s", where, st.Conn, blockDiff(sc.File, st, got, err, ok))
			}
			vars = nb
		}
	}
	// Whatever a connection received after its last block was sent outside
	// every block: nothing may be left unread.
	for _, name := range sc.Conns {
		for c := conns[name]; c.Pending(); {
			r := c.Next(time.Millisecond)
			if r == nil || r.EOF {
				break
			}
			t.Errorf("%s: %s: response after the last block: %s", sc.File, name, r)
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

// matchBlock matches received responses against an expect block. It is
// strict: every response must be matched by an expected line — a plain line
// exactly once, a "~" line at most once, a "~*" line any number of times.
// Only a block with "!lax REASON" ignores untagged responses that no line
// expects.
func matchBlock(st *Step, got []*Resp, vars Bindings) (Bindings, error) {
	tolerated := func(r *Resp) bool { return st.Lax != "" && r.Tag == "*" }
	b := vars
	if st.Ordered {
		i := 0
	next:
		for _, g := range got {
			for k := i; k < len(st.Exp); k++ {
				e := st.Exp[k]
				if nb, ok := MatchResp(e.Resp, g, b); ok {
					if e.Repeat {
						i = k // may match again; binds nothing
					} else {
						b, i = nb, k+1
					}
					continue next
				}
				if !e.Optional {
					break
				}
			}
			if !tolerated(g) {
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
	// Required lines choose first, so that an optional line cannot take the
	// response a required one needs; "~*" lines take what is left.
	for _, pass := range []func(e *ExpLine) bool{
		func(e *ExpLine) bool { return !e.Optional },
		func(e *ExpLine) bool { return e.Optional && !e.Repeat },
	} {
		for _, e := range st.Exp {
			if !pass(e) {
				continue
			}
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
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("expected line(s) %s not matched", strings.Join(missing, ", "))
	}
	for j, g := range got {
		if used[j] || tolerated(g) {
			continue
		}
		if !slices.ContainsFunc(st.Exp, func(e *ExpLine) bool {
			_, ok := MatchResp(e.Resp, g, b)
			return e.Repeat && ok
		}) {
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
	if st.Lax != "" {
		mode += ", !lax " + st.Lax
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
		case r.Status != "BYE":
			t.Fatalf("%s: %s: unexpected response before close: %s", where, c.name, r)
		}
	}
}
