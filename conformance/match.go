package conformance

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// A Frag is one piece of a response as it travels on the wire: a run of
// line text, or the octets of a literal that the preceding text announced
// with {n}. A response is a list of fragments; literals may contain CRLF.
type Frag struct {
	Text  string
	Lit   []byte
	IsLit bool
}

// TokKind says what a Tok is. The last four kinds occur only in expectations.
type TokKind int

const (
	Atom TokKind = iota // atom or number; compared case-insensitively
	Str                 // quoted string or literal; compared exactly
	List                // parenthesized list
	Wild                // "*": the rest of the line or list
	Any                 // "?": exactly one token
	Var                 // "$name": captured on first use, compared later
	IStr                // i"text": a string compared case-insensitively
)

// Tok is one token of a response.
type Tok struct {
	Kind TokKind
	S    string
	L    []Tok
}

func (t Tok) String() string {
	switch t.Kind {
	case Str:
		if strings.ContainsAny(t.S, "\r\n") || len(t.S) > 60 {
			return fmt.Sprintf("{%d}%q", len(t.S), abbrev(t.S, 60))
		}
		return strconv.Quote(t.S)
	case IStr:
		return "i" + strconv.Quote(t.S)
	case List:
		parts := make([]string, len(t.L))
		for i, x := range t.L {
			parts[i] = x.String()
		}
		return "(" + strings.Join(parts, " ") + ")"
	case Wild:
		return "*"
	case Any:
		return "?"
	case Var:
		return "$" + t.S
	}
	return t.S
}

func abbrev(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// Resp is a parsed response line (received, or expected in a scenario).
type Resp struct {
	Tag     string // "*", "+" or a command tag
	Status  string // OK, NO, BAD, PREAUTH, BYE; "" for data and continuations
	HasCode bool
	Code    []Tok  // tokens inside [...]
	Text    string // human-readable text of status responses and continuations
	Data    []Tok  // tokens after "*" of data responses (e.g. 3 FETCH (...))
	Raw     string // for messages
	EOF     bool   // the connection was closed (or failed: Text holds the error)
}

func (r *Resp) String() string {
	if r.EOF {
		return "<connection closed> " + r.Text
	}
	return r.Raw
}

var statusWords = map[string]bool{"OK": true, "NO": true, "BAD": true, "PREAUTH": true, "BYE": true}

// ParseResp parses a response. With expect set, the wildcard tokens of the
// scenario language are recognised and lit resolves {@file} references.
func ParseResp(frags []Frag, expect bool, lit func(string) ([]byte, error)) (*Resp, error) {
	r := &Resp{Raw: rawString(frags)}
	tz := &tokenizer{frags: frags, expect: expect, lit: lit}
	tag := tz.word()
	if tag == "" {
		return nil, fmt.Errorf("missing tag")
	}
	r.Tag = tag
	if tag == "+" {
		r.Text = tz.rest()
		return r, tz.err
	}
	save := tz.pos
	word := tz.word()
	if statusWords[strings.ToUpper(word)] || tag != "*" {
		r.Status = strings.ToUpper(word)
		tz.skipSpace()
		if tz.peek() == '[' {
			tz.pos++
			r.HasCode = true
			r.Code = tz.list(']')
		}
		r.Text = tz.rest()
		return r, tz.err
	}
	tz.pos = save
	r.Data = tz.list(0)
	return r, tz.err
}

func rawString(frags []Frag) string {
	var b strings.Builder
	for _, f := range frags {
		if f.IsLit {
			if len(f.Lit) > 80 || strings.ContainsAny(string(f.Lit), "\r\n") {
				fmt.Fprintf(&b, "<literal %d octets: %q>", len(f.Lit), abbrev(string(f.Lit), 80))
			} else {
				fmt.Fprintf(&b, "<literal %q>", f.Lit)
			}
			continue
		}
		b.WriteString(f.Text)
	}
	return b.String()
}

type tokenizer struct {
	frags  []Frag
	fi     int // current fragment (always a text fragment)
	pos    int
	expect bool
	lit    func(string) ([]byte, error)
	err    error
}

func (z *tokenizer) text() string {
	if z.fi >= len(z.frags) {
		return ""
	}
	return z.frags[z.fi].Text
}

func (z *tokenizer) peek() byte {
	if t := z.text(); z.pos < len(t) {
		return t[z.pos]
	}
	return 0
}

func (z *tokenizer) skipSpace() {
	for z.peek() == ' ' {
		z.pos++
	}
}

// word reads up to the next space.
func (z *tokenizer) word() string {
	z.skipSpace()
	t := z.text()
	i := z.pos
	for z.pos < len(t) && t[z.pos] != ' ' {
		z.pos++
	}
	return t[i:z.pos]
}

// rest returns the remaining text of a status response.
func (z *tokenizer) rest() string {
	z.skipSpace()
	t := z.text()
	s := t[min(z.pos, len(t)):]
	z.pos = len(t)
	return s
}

func (z *tokenizer) fail(format string, args ...any) {
	if z.err == nil {
		z.err = fmt.Errorf(format, args...)
	}
}

var litRe = regexp.MustCompile(`^~?\{(\d+)\+?\}$`)

// list reads tokens until the closing byte (0: end of the response).
func (z *tokenizer) list(end byte) []Tok {
	var out []Tok
	for z.err == nil {
		z.skipSpace()
		c := z.peek()
		if c == 0 {
			if end != 0 {
				z.fail("missing %q", end)
			}
			return out
		}
		if end != 0 && c == end {
			z.pos++
			return out
		}
		switch {
		case c == '(':
			z.pos++
			out = append(out, Tok{Kind: List, L: z.list(')')})
		case c == ')' || c == ']':
			z.fail("unexpected %q", c)
		case c == '"':
			out = append(out, Tok{Kind: Str, S: z.quoted()})
		case z.expect && c == 'i' && strings.HasPrefix(z.text()[z.pos:], `i"`):
			z.pos++
			out = append(out, Tok{Kind: IStr, S: z.quoted()})
		default:
			out = append(out, z.atom())
		}
	}
	return out
}

func (z *tokenizer) quoted() string {
	t := z.text()
	var b strings.Builder
	for z.pos++; z.pos < len(t); z.pos++ {
		switch t[z.pos] {
		case '\\':
			z.pos++
			if z.pos < len(t) {
				b.WriteByte(t[z.pos])
			}
		case '"':
			z.pos++
			return b.String()
		default:
			b.WriteByte(t[z.pos])
		}
	}
	z.fail("unterminated quoted string")
	return b.String()
}

// atom reads an atom; "[...]" inside it (BODY[HEADER.FIELDS (A B)]) is kept
// whole, spaces included. It also handles {n} literals and the expectation
// forms *, ?, $name, $$, {@file}.
func (z *tokenizer) atom() Tok {
	t := z.text()
	i, depth := z.pos, 0
	for ; z.pos < len(t); z.pos++ {
		c := t[z.pos]
		if c == '[' {
			depth++
		} else if c == ']' && depth > 0 {
			depth--
		} else if depth == 0 && (c == ' ' || c == '(' || c == ')' || c == ']') {
			break
		}
	}
	s := t[i:z.pos]
	if m := litRe.FindStringSubmatch(s); m != nil && z.pos == len(t) {
		n, _ := strconv.Atoi(m[1])
		if z.fi+1 >= len(z.frags) || !z.frags[z.fi+1].IsLit {
			z.fail("literal {%s} without data", m[1])
			return Tok{}
		}
		data := z.frags[z.fi+1].Lit
		if len(data) != n {
			z.fail("literal {%d} has %d octets", n, len(data))
		}
		z.fi, z.pos = z.fi+2, 0
		return Tok{Kind: Str, S: string(data)}
	}
	if !z.expect {
		return Tok{Kind: Atom, S: s}
	}
	switch {
	case s == "*":
		return Tok{Kind: Wild}
	case s == "?":
		return Tok{Kind: Any}
	case strings.HasPrefix(s, "$$"):
		return Tok{Kind: Atom, S: s[1:]}
	case strings.HasPrefix(s, "$") && len(s) > 1:
		return Tok{Kind: Var, S: s[1:]}
	case strings.HasPrefix(s, "{@") && strings.HasSuffix(s, "}"):
		data, err := z.lit(strings.TrimSuffix(s[2:len(s)-1], "+"))
		if err != nil {
			z.fail("%v", err)
		}
		return Tok{Kind: Str, S: string(data)}
	}
	return Tok{Kind: Atom, S: s}
}

// Bindings holds the values captured by $name.
type Bindings map[string]string

func (b Bindings) clone() Bindings {
	c := make(Bindings, len(b))
	for k, v := range b {
		c[k] = v
	}
	return c
}

// MatchResp reports whether got matches the expectation exp. On success it
// returns b extended with new captures; b itself is never modified.
func MatchResp(exp, got *Resp, b Bindings) (Bindings, bool) {
	if got.EOF || exp.Tag != got.Tag {
		return nil, false
	}
	if exp.Tag == "+" {
		return b, glob(exp.Text, got.Text)
	}
	if exp.Status != got.Status {
		return nil, false
	}
	if exp.Status != "" {
		if exp.HasCode {
			if !got.HasCode {
				return nil, false
			}
			var ok bool
			if b, ok = matchSeq(exp.Code, got.Code, b.clone(), ctxCode); !ok {
				return nil, false
			}
		}
		return b, glob(exp.Text, got.Text)
	}
	if len(exp.Data) > 0 && len(got.Data) > 0 && strings.EqualFold(exp.Data[0].S, "SEARCH") && strings.EqualFold(got.Data[0].S, "SEARCH") {
		// RFC 3501 §7.2.5 does not order the numbers of a SEARCH response.
		return matchSet(exp.Data[1:], got.Data[1:], b)
	}
	return matchSeq(exp.Data, got.Data, b.clone(), ctxData)
}

type ctx int

const (
	ctxList ctx = iota // an ordinary list: ordered
	ctxData            // the top level of a data response
	ctxCode            // inside [...] of a status response
)

// listMode decides how the list at es[i] is compared: as a set (flags, LIST
// attributes), as a map of name/value pairs (FETCH, STATUS) or in order.
func listMode(es []Tok, i int, c ctx) string {
	prev := ""
	if i > 0 && es[i-1].Kind == Atom {
		prev = strings.ToUpper(es[i-1].S)
	}
	switch {
	case prev == "FLAGS" || prev == "PERMANENTFLAGS":
		return "set"
	case c == ctxData && i == 1 && (prev == "LIST" || prev == "LSUB"):
		return "set"
	case c == ctxData && i == 2 && prev == "FETCH":
		return "map"
	case c == ctxData && i == 2 && len(es) > 0 && strings.EqualFold(es[0].S, "STATUS"):
		return "map"
	}
	return "seq"
}

// matchSeq matches a sequence of expected tokens (with wildcards) against
// received tokens. It may modify b; callers pass a clone.
func matchSeq(es, gs []Tok, b Bindings, c ctx) (Bindings, bool) {
	return matchFrom(es, gs, 0, b, c)
}

func matchFrom(es, gs []Tok, i int, b Bindings, c ctx) (Bindings, bool) {
	if i == len(es) {
		return b, len(gs) == 0
	}
	e := es[i]
	if e.Kind == Wild {
		if i == len(es)-1 {
			return b, true
		}
		for k := 0; k <= len(gs); k++ {
			if nb, ok := matchFrom(es, gs[k:], i+1, b.clone(), c); ok {
				return nb, true
			}
		}
		return nil, false
	}
	if len(gs) == 0 {
		return nil, false
	}
	nb, ok := matchTok(e, gs[0], b, listMode(es, i, c))
	if !ok {
		return nil, false
	}
	return matchFrom(es, gs[1:], i+1, nb, c)
}

func matchTok(e, g Tok, b Bindings, mode string) (Bindings, bool) {
	switch e.Kind {
	case Any:
		return b, true
	case Var:
		v := canon(g)
		if old, ok := b[e.S]; ok {
			return b, old == v
		}
		b = b.clone()
		b[e.S] = v
		return b, true
	case IStr:
		return b, (g.Kind == Str || g.Kind == Atom && !isNil(g)) && strings.EqualFold(e.S, g.S)
	case Str:
		return b, (g.Kind == Str || g.Kind == Atom && !isNil(g)) && e.S == g.S
	case Atom:
		if g.Kind == Str {
			return b, !isNil(e) && e.S == g.S
		}
		return b, g.Kind == Atom && strings.EqualFold(e.S, g.S)
	case List:
		if g.Kind != List {
			return nil, false
		}
		switch mode {
		case "set":
			return matchSet(e.L, g.L, b)
		case "map":
			return matchMap(e.L, g.L, b)
		}
		return matchSeq(e.L, g.L, b.clone(), ctxList)
	}
	return nil, false
}

func isNil(t Tok) bool { return t.Kind == Atom && strings.EqualFold(t.S, "NIL") }

// canon is the value a $name capture stores.
func canon(t Tok) string {
	if t.Kind == Str || t.Kind == Atom {
		return t.S
	}
	return t.String()
}

// matchSet matches unordered lists: each expected element must match a
// distinct received one; extra received elements are allowed only if the
// expectation contains "*".
func matchSet(es, gs []Tok, b Bindings) (Bindings, bool) {
	used := make([]bool, len(gs))
	wild := false
	for _, e := range es {
		if e.Kind == Wild {
			wild = true
			continue
		}
		found := false
		for j, g := range gs {
			if used[j] {
				continue
			}
			if nb, ok := matchTok(e, g, b, "set"); ok {
				b, used[j], found = nb, true, true
				break
			}
		}
		if !found {
			return nil, false
		}
	}
	if !wild {
		for _, u := range used {
			if !u {
				return nil, false
			}
		}
	}
	return b, true
}

// matchMap matches FETCH and STATUS attribute lists: name/value pairs in any
// order. Names are compared case-insensitively with spaces normalised.
func matchMap(es, gs []Tok, b Bindings) (Bindings, bool) {
	wild := false
	var pairs [][2]Tok
	for i := 0; i < len(es); i++ {
		if es[i].Kind == Wild {
			wild = true
			continue
		}
		if i+1 >= len(es) {
			return nil, false
		}
		pairs = append(pairs, [2]Tok{es[i], es[i+1]})
		i++
	}
	if len(gs)%2 != 0 {
		return nil, false
	}
	used := make([]bool, len(gs)/2)
	for _, p := range pairs {
		found := false
		for j := 0; j < len(gs); j += 2 {
			if used[j/2] || normKey(p[0].S) != normKey(gs[j].S) {
				continue
			}
			nb, ok := matchTok(p[1], gs[j+1], b, listMode([]Tok{p[0], p[1]}, 1, ctxList))
			if !ok {
				return nil, false
			}
			b, used[j/2], found = nb, true, true
			break
		}
		if !found {
			return nil, false
		}
	}
	if !wild {
		for _, u := range used {
			if !u {
				return nil, false
			}
		}
	}
	return b, true
}

var spaceRe = regexp.MustCompile(`\s+`)

func normKey(s string) string {
	s = strings.ToUpper(spaceRe.ReplaceAllString(s, " "))
	s = strings.ReplaceAll(s, "( ", "(")
	return strings.ReplaceAll(s, " )", ")")
}

// glob matches text where "*" in the pattern stands for any run of characters.
func glob(pat, s string) bool {
	parts := strings.Split(pat, "*")
	if len(parts) == 1 {
		return pat == s
	}
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	for _, p := range parts[1 : len(parts)-1] {
		i := strings.Index(s, p)
		if i < 0 {
			return false
		}
		s = s[i+len(p):]
	}
	return strings.HasSuffix(s, parts[len(parts)-1])
}
