package imaptest

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Value is a response in the form tests compare it, with go-cmp: atoms are
// Words (equal regardless of case), strings (quoted or literal) are
// strings, lists are Seqs, except that flag lists (FLAGS, PERMANENTFLAGS,
// LIST attributes) and the numbers of SEARCH are Sets (sorted) and the
// attribute lists of FETCH and STATUS are Items (by upper-cased name). These
// are the rules the scenario matcher applies (MatchResp), without wildcards,
// and stricter in one point: an atom never equals a string, so a test pins
// the quoting of its server ("INBOX" vs INBOX), while a scenario, which also
// runs against other servers, does not.
type Value struct {
	Tag    string
	Status string
	Code   Seq // nil without a [code]
	Text   string
	Data   Seq
	EOF    bool
}

// Word is an atom or number.
type Word string

// Seq is a list compared in order.
type Seq []any

// Set is a list compared regardless of order.
type Set []any

// Items are the attributes of a FETCH or STATUS response; a repeated name
// appears as "NAME (again)".
type Items map[string]any

// cmpOpts compare Words regardless of case.
var cmpOpts = cmp.Options{cmp.Comparer(func(a, b Word) bool { return strings.EqualFold(string(a), string(b)) })}

// Value returns r in comparable form. With exact, every list is a Seq: the
// order of flags and attributes counts (and Diff compares atoms as spelled).
func (r *Resp) Value(exact bool) Value {
	if r.EOF {
		return Value{EOF: true, Text: r.Text}
	}
	v := Value{Tag: r.Tag, Status: r.Status, Text: r.Text}
	if r.HasCode {
		v.Code = normSeq(r.Code, ctxCode, exact)
	}
	if r.Status == "" && r.Tag != "+" {
		v.Data = normSeq(r.Data, ctxData, exact)
		if !exact && len(r.Data) > 0 && strings.EqualFold(r.Data[0].S, "SEARCH") {
			// rfc3501.txt:3520: SEARCH numbers are in no particular order.
			v.Data = Seq{v.Data[0], sortSet(Set(v.Data[1:]))}
		}
	}
	return v
}

func normSeq(ts []Tok, c ctx, exact bool) Seq {
	out := make(Seq, len(ts))
	for i, t := range ts {
		mode := "seq"
		if !exact {
			mode = listMode(ts, i, c)
		}
		out[i] = normTok(t, mode, exact)
	}
	return out
}

func normTok(t Tok, mode string, exact bool) any {
	switch t.Kind {
	case Atom:
		return Word(t.S)
	case Str:
		return t.S
	case List:
		switch mode {
		case "set":
			return sortSet(Set(normSeq(t.L, ctxList, exact)))
		case "map":
			return normItems(t.L)
		}
		return normSeq(t.L, ctxList, exact)
	}
	return Word(t.String()) // an expectation token: compared as text
}

func normItems(ts []Tok) Items {
	m := make(Items, len(ts)/2)
	for i := 0; i < len(ts); i += 2 {
		k := ts[i].S
		if ts[i].Kind != Atom {
			k = ts[i].String()
		}
		k = normKey(k)
		for _, ok := m[k]; ok; _, ok = m[k] {
			k += " (again)"
		}
		if i+1 == len(ts) {
			m[k] = Word("<missing value>")
			break
		}
		m[k] = normTok(ts[i+1], listMode(ts[i:i+2], 1, ctxList), false)
	}
	return m
}

func sortSet(s Set) Set {
	key := func(x any) string {
		if w, ok := x.(Word); ok {
			return strings.ToUpper(string(w))
		}
		return fmt.Sprint(x)
	}
	sort.SliceStable(s, func(i, j int) bool { return key(s[i]) < key(s[j]) })
	return s
}

// DiffResps compares responses as Values, in order: "" if they are equal,
// else both lists and a go-cmp diff (-want +got).
func DiffResps(got, want []*Resp) string { return diffResps(got, want, false) }

func diffResps(got, want []*Resp, exact bool) string {
	gv, wv := make([]Value, len(got)), make([]Value, len(want))
	for i, r := range got {
		gv[i] = r.Value(exact)
	}
	for i, r := range want {
		wv[i] = r.Value(exact)
	}
	opts := cmpOpts
	if exact {
		opts = nil
	}
	d := cmp.Diff(wv, gv, opts)
	if d == "" {
		return ""
	}
	var b strings.Builder
	b.WriteString("got:\n")
	for _, r := range got {
		fmt.Fprintf(&b, "  %s\n", r)
	}
	b.WriteString("want:\n")
	for _, r := range want {
		fmt.Fprintf(&b, "  %s\n", r)
	}
	fmt.Fprintf(&b, "diff (-want +got):\n%s", d)
	return b.String()
}

// Diff parses want (responses as on the wire, literals inline, see
// ParseLine) and compares got with them as DiffResps does.
func Diff(got []*Resp, want ...string) string { return diff(got, want, false) }

func diff(got []*Resp, want []string, exact bool) string {
	wr := make([]*Resp, len(want))
	for i, w := range want {
		r, err := ParseLine(w)
		if err != nil {
			return fmt.Sprintf("bad expectation: %v", err)
		}
		wr[i] = r
	}
	return diffResps(got, wr, exact)
}

// Expect fails the test unless got equals want (see Diff): the responses of
// a command, all of them, in order. Expect(t, got) checks there are none.
func Expect(t testing.TB, got []*Resp, want ...string) {
	t.Helper()
	if d := Diff(got, want...); d != "" {
		t.Fatalf("responses differ:\n%s", d)
	}
}

// ExpectExact is Expect token for token: the order inside flag and
// attribute lists counts (FETCH items come in the order the client asked
// for them) and atoms are compared as spelled (a section name echoes the
// client's spelling). Quoted strings and literals are still alike.
func ExpectExact(t testing.TB, got []*Resp, want ...string) {
	t.Helper()
	if d := diff(got, want, true); d != "" {
		t.Fatalf("responses differ:\n%s", d)
	}
}

// ExpectDone fails the test unless the tagged response done equals want,
// written without the tag ("OK [READ-WRITE] SELECT completed").
func ExpectDone(t testing.TB, done *Resp, want string) {
	t.Helper()
	if d := DiffDone(done, want); d != "" {
		t.Fatalf("tagged response differs:\n%s", d)
	}
}

// DiffDone is the comparison of ExpectDone.
func DiffDone(done *Resp, want string) string {
	if done == nil {
		return "no tagged response"
	}
	return Diff([]*Resp{done}, done.Tag+" "+want)
}
