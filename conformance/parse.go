// Package conformance replays IMAP scenarios (scenarios/**/*.scn) against a
// server and checks its responses. The scenario language is described in
// scenarios/README.md; parse.go reads it, internal/imaptest parses and
// matches responses (MatchResp), run.go drives connections, fixture.go loads fixtures over IMAP and
// dovecot.go runs a private Dovecot as a reference target.
package conformance

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"decimail/internal/imaptest"
)

// Scenario is one parsed .scn file.
type Scenario struct {
	File     string
	Title    string
	RFC      []string
	Fixture  string
	Conns    []string
	Login    bool
	Applies  string // "any" or "decimail"
	Requires []string
	Covers   []string
	Steps    []*Step
}

// StepKind is the kind of a scenario step.
type StepKind int

const (
	StepSend   StepKind = iota // cN> ...
	StepExpect                 // a block of consecutive cN< lines
	StepWait                   // cN wait 2s
	StepClosed                 // cN closed
)

// Step is one action of a scenario, executed in file order.
type Step struct {
	Kind    StepKind
	Conn    string
	Line    int
	Send    []SendPart
	Exp     []*ExpLine
	Ordered bool
	Lax     string // "!lax REASON": untagged responses no line expects are ignored
	Wait    time.Duration
}

// SendPart is text (subject to $name substitution) or raw literal octets.
type SendPart struct {
	Text string
	Raw  []byte
}

// ExpLine is one expected response with the line it was written on.
type ExpLine struct {
	Line     int
	Src      string
	Resp     *Resp
	Optional bool // "~ " prefix: may be absent (at most once)
	Repeat   bool // "~* " prefix: any number of matching responses, none included
}

var (
	bodyRe    = regexp.MustCompile(`^(c\d+)([<>|])(?: (.*))?$`)
	actionRe  = regexp.MustCompile(`^(c\d+) (wait|closed)(?: (.*))?$`)
	sendLitRe = regexp.MustCompile(`\{(\*|@[^{}]+?)(\+?)\}$`)
	expLitRe  = regexp.MustCompile(`\{\*\}$`)
)

// ParseFile reads a scenario file. msgDir holds the files that {@name}
// refers to.
func ParseFile(path, msgDir string) (*Scenario, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data, msgDir)
}

type pendingLit struct {
	announce *Step // the send step whose {*} gets the size
	data     []byte
	auto     bool // data comes from cN| lines
}

// Parse parses scenario text; name is used in error messages.
func Parse(name string, data []byte, msgDir string) (*Scenario, error) {
	sc := &Scenario{File: name, Login: true, Applies: "any"}
	loadLit := func(f string) ([]byte, error) { return os.ReadFile(filepath.Join(msgDir, f)) }
	lits := map[string]*pendingLit{} // per connection: literal being sent
	expFrags := map[string][]Frag{}  // per connection: expected response being built
	expStart := map[string]int{}     // its first line
	declared := map[string]bool{}
	inBody := false
	var conns []string

	errf := func(line int, format string, args ...any) error {
		return fmt.Errorf("%s:%d: %s", name, line, fmt.Sprintf(format, args...))
	}
	block := func(conn string, line int) *Step {
		if n := len(sc.Steps); n > 0 {
			if s := sc.Steps[n-1]; s.Kind == StepExpect && s.Conn == conn {
				return s
			}
		}
		s := &Step{Kind: StepExpect, Conn: conn, Line: line}
		sc.Steps = append(sc.Steps, s)
		return s
	}
	finishExp := func(conn string, line int) error {
		frags := expFrags[conn]
		delete(expFrags, conn)
		opt := strings.HasPrefix(frags[0].Text, "~ ")
		rep := strings.HasPrefix(frags[0].Text, "~* ")
		switch {
		case opt:
			frags[0].Text = frags[0].Text[2:]
		case rep:
			frags[0].Text = frags[0].Text[3:]
		}
		for i := 0; i+1 < len(frags); i++ {
			if frags[i+1].IsLit {
				frags[i].Text = expLitRe.ReplaceAllString(frags[i].Text, fmt.Sprintf("{%d}", len(frags[i+1].Lit)))
			}
		}
		r, err := imaptest.ParseResp(frags, true, loadLit)
		if err != nil {
			return errf(expStart[conn], "bad expected response: %v", err)
		}
		if rep && (r.Tag != "*" || hasVar(r)) {
			return errf(expStart[conn], "a ~* line must be untagged and bind no $variable")
		}
		b := block(conn, expStart[conn])
		b.Exp = append(b.Exp, &ExpLine{Line: expStart[conn], Src: r.Raw, Resp: r, Optional: opt || rep, Repeat: rep})
		return nil
	}

	sn := bufio.NewScanner(bytes.NewReader(data))
	sn.Buffer(nil, 1<<20)
	for ln := 1; sn.Scan(); ln++ {
		line := strings.TrimRight(sn.Text(), "\r")
		if !inBody {
			if strings.HasPrefix(line, "#") {
				if sc.Title == "" {
					sc.Title = strings.TrimSpace(strings.TrimLeft(line, "#"))
				}
				continue
			}
			if strings.TrimSpace(line) == "" {
				continue
			}
			if k, v, ok := strings.Cut(line, ":"); ok && !bodyRe.MatchString(line) && !actionRe.MatchString(line) {
				v = strings.TrimSpace(v)
				switch strings.TrimSpace(k) {
				case "rfc":
					sc.RFC = strings.Fields(v)
				case "fixture":
					sc.Fixture = v
				case "connections":
					conns = strings.Fields(v)
				case "login":
					sc.Login = v != "no"
				case "applies":
					sc.Applies = v
				case "requires":
					sc.Requires = strings.Fields(v)
				case "covers":
					sc.Covers = strings.Fields(v)
				default:
					return nil, errf(ln, "unknown header %q", k)
				}
				continue
			}
			inBody = true
			if conns == nil {
				conns = []string{"c1"}
			}
			for _, c := range conns {
				declared[c] = true
			}
			sc.Conns = conns
		}
		if strings.HasPrefix(line, "#") || strings.TrimSpace(line) == "" {
			continue
		}
		if m := actionRe.FindStringSubmatch(line); m != nil {
			if !declared[m[1]] {
				return nil, errf(ln, "connection %s not declared", m[1])
			}
			s := &Step{Conn: m[1], Line: ln, Kind: StepClosed}
			if m[2] == "wait" {
				d, err := time.ParseDuration(strings.TrimSpace(m[3]))
				if err != nil {
					return nil, errf(ln, "bad duration: %v", err)
				}
				s.Kind, s.Wait = StepWait, d
			}
			sc.Steps = append(sc.Steps, s)
			continue
		}
		m := bodyRe.FindStringSubmatch(line)
		if m == nil {
			return nil, errf(ln, "cannot parse line %q", line)
		}
		conn, op, text := m[1], m[2], m[3]
		if !declared[conn] {
			return nil, errf(ln, "connection %s not declared", conn)
		}
		if _, building := expFrags[conn]; building && op == ">" {
			return nil, errf(ln, "expected literal not continued by a %s< line", conn)
		}
		switch op {
		case ">":
			s := &Step{Kind: StepSend, Conn: conn, Line: ln}
			if p := lits[conn]; p != nil {
				if p.auto {
					last := &p.announce.Send[len(p.announce.Send)-1]
					last.Text = strings.Replace(last.Text, "{*", "{"+strconv.Itoa(len(p.data)), 1)
				}
				s.Send = append(s.Send, SendPart{Raw: p.data})
				delete(lits, conn)
			}
			if lm := sendLitRe.FindStringSubmatchIndex(text); lm != nil {
				ref, plus := text[lm[2]:lm[3]], text[lm[4]:lm[5]]
				p := &pendingLit{announce: s, auto: ref == "*"}
				if !p.auto {
					d, err := loadLit(ref[1:])
					if err != nil {
						return nil, errf(ln, "%v", err)
					}
					p.data = d
					text = text[:lm[0]] + "{" + strconv.Itoa(len(d)) + plus + "}"
				}
				lits[conn] = p
			}
			s.Send = append(s.Send, SendPart{Text: text + "\r\n"})
			sc.Steps = append(sc.Steps, s)
		case "|":
			if frags, ok := expFrags[conn]; ok {
				last := &frags[len(frags)-1]
				if !last.IsLit {
					frags = append(frags, Frag{IsLit: true})
					last = &frags[len(frags)-1]
				}
				last.Lit = append(last.Lit, text+"\r\n"...)
				expFrags[conn] = frags
			} else if p := lits[conn]; p != nil && p.auto {
				p.data = append(p.data, text+"\r\n"...)
			} else {
				return nil, errf(ln, "%s| without a preceding {*} literal", conn)
			}
		case "<":
			if frags, ok := expFrags[conn]; ok {
				if len(frags) == 0 || !frags[len(frags)-1].IsLit {
					frags = append(frags, Frag{IsLit: true}) // empty literal
				}
				expFrags[conn] = append(frags, Frag{Text: text})
			} else if text == "!ordered" {
				block(conn, ln).Ordered = true
				continue
			} else if text == "!lax" || strings.HasPrefix(text, "!lax ") {
				reason := strings.TrimSpace(strings.TrimPrefix(text, "!lax"))
				if reason == "" {
					return nil, errf(ln, "!lax needs a reason: why may this block ignore untagged responses?")
				}
				block(conn, ln).Lax = reason
				continue
			} else if text == "!only" {
				return nil, errf(ln, "!only is gone: every block is strict; remove it")
			} else {
				expFrags[conn], expStart[conn] = []Frag{{Text: text}}, ln
			}
			if !expLitRe.MatchString(text) {
				if err := finishExp(conn, ln); err != nil {
					return nil, err
				}
			}
		}
	}
	if err := sn.Err(); err != nil {
		return nil, err
	}
	for c := range expFrags {
		return nil, errf(expStart[c], "expected literal never finished")
	}
	for c := range lits {
		return nil, fmt.Errorf("%s: literal on %s never sent (add a %s> line after it)", name, c, c)
	}
	if len(sc.RFC) == 0 {
		return nil, fmt.Errorf("%s: missing rfc: header", name)
	}
	if sc.Applies != "any" && sc.Applies != "decimail" {
		return nil, fmt.Errorf("%s: applies must be any or decimail", name)
	}
	if len(sc.Steps) == 0 {
		return nil, fmt.Errorf("%s: no steps", name)
	}
	return sc, nil
}

// hasVar reports whether an expected response binds or compares a $name.
func hasVar(r *Resp) bool {
	var in func(ts []Tok) bool
	in = func(ts []Tok) bool {
		for _, t := range ts {
			if t.Kind == Var || t.Kind == List && in(t.L) {
				return true
			}
		}
		return false
	}
	return in(r.Code) || in(r.Data)
}
