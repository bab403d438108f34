package imaptest

import (
	"bufio"
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

// Resp is a parsed response (received, or expected in a scenario or test).
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

// Name is what the response is, upper-cased: the status of a status
// response, the word of a data response ("FETCH" of "* 3 FETCH (...)",
// "CAPABILITY"), "+" for a continuation request.
func (r *Resp) Name() string {
	switch {
	case r.Tag == "+":
		return "+"
	case r.Status != "":
		return r.Status
	case len(r.Data) > 1 && r.Data[0].Kind == Atom && isNumber(r.Data[0].S):
		return strings.ToUpper(r.Data[1].S)
	case len(r.Data) > 0:
		return strings.ToUpper(r.Data[0].S)
	}
	return ""
}

func isNumber(s string) bool {
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// Attrs returns the attributes of a FETCH or STATUS response by name,
// upper-cased with spaces normalised ("BODY[HEADER.FIELDS (SUBJECT)]"), or
// nil for other responses.
func (r *Resp) Attrs() map[string]Tok {
	if n := r.Name(); (n != "FETCH" && n != "STATUS") || len(r.Data) < 3 || r.Data[2].Kind != List {
		return nil
	}
	l := r.Data[2].L
	m := make(map[string]Tok, len(l)/2)
	for i := 0; i+1 < len(l); i += 2 {
		m[normKey(l[i].S)] = l[i+1]
	}
	return m
}

// CodeName is the first word of the response code, upper-cased ("" if none).
func (r *Resp) CodeName() string {
	if len(r.Code) == 0 {
		return ""
	}
	return strings.ToUpper(r.Code[0].S)
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

// ParseLine parses a response written as it travels on the wire, without
// the final CRLF; literals are inline ("* 1 FETCH (BODY[] {5}\r\nhello)").
func ParseLine(s string) (*Resp, error) {
	br := bufio.NewReader(strings.NewReader(s + "\r\n"))
	r, err := ReadResp(br)
	if err != nil {
		return nil, fmt.Errorf("%q: %w", s, err)
	}
	if br.Buffered() > 0 {
		return nil, fmt.Errorf("%q: more than one response", s)
	}
	return r, nil
}

// ReadResp reads one response, literals included, and parses it.
func ReadResp(br *bufio.Reader) (*Resp, error) {
	var raw Raw
	if err := raw.read(br); err != nil {
		return nil, err
	}
	return raw.Parse()
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
	if z.pos == len(t) && strings.HasSuffix(s, "}") {
		if m := litRe.FindStringSubmatch(s); m != nil {
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

// Quote returns s as an IMAP quoted string.
func Quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}
