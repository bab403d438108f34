package imaptest

import (
	"regexp"
	"strings"
)

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

// MatchStatus reports whether the status response r matches pattern, a
// status line without the tag in the scenario language ("NO [TRYCREATE] *",
// "OK [MAILBOXID (?)] CREATE completed"): "*" in the text stands for any
// text, "*" and "?" in the code for any tokens and one token.
func MatchStatus(r *Resp, pattern string) bool {
	if r == nil || r.EOF || r.Status == "" {
		return false
	}
	exp, err := ParseResp([]Frag{{Text: r.Tag + " " + pattern}}, true, nil)
	if err != nil || exp.Status == "" {
		return false
	}
	_, ok := MatchResp(exp, r, Bindings{})
	return ok
}

// Match reports whether r matches pattern, a whole response in the
// scenario language (`* STATUS "INBOX" (SIZE ?)`, `* 1 FETCH (UID 1 *)`).
func Match(r *Resp, pattern string) bool {
	exp, err := ParseResp([]Frag{{Text: pattern}}, true, nil)
	if r == nil || err != nil {
		return false
	}
	_, ok := MatchResp(exp, r, Bindings{})
	return ok
}
