package conformance

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// The recorder serves rewriting scenarios, not testing: with
// DECIMAIL_CONFORMANCE_RECORD=DIR the runner writes, per scenario, every
// untagged response that no expected line of its block matches, rendered in
// the scenario language (values that differ from run to run become "?"), for
// an author to review against the RFC and add (scenarios/README.md).
type recorder struct {
	mu   sync.Mutex
	file string
	out  Recording
}

// Recording is what one scenario's run left unmatched.
type Recording struct {
	Scenario string
	Target   string
	Blocks   []RecordedBlock
}

// RecordedBlock is one expect block with the responses it did not expect.
type RecordedBlock struct {
	Conn      string
	Line      int // the line the new lines go before: the block's first tagged line, or 0
	LastLine  int // the block's last expected line
	Unmatched []string
	OK        bool
}

func newRecorder(t *testing.T, sc *Scenario) *recorder {
	dir := os.Getenv("DECIMAIL_CONFORMANCE_RECORD")
	if dir == "" {
		return nil
	}
	r := &recorder{file: filepath.Join(dir, strings.ReplaceAll(sc.File, "/", "_")+".json"),
		out: Recording{Scenario: sc.File}}
	t.Cleanup(func() {
		data, _ := json.MarshalIndent(r.out, "", "  ")
		if err := os.WriteFile(r.file, data, 0o644); err != nil {
			t.Error(err)
		}
	})
	return r
}

func (r *recorder) block(st *Step, got []*Resp, ok bool) {
	if r == nil {
		return
	}
	rb := RecordedBlock{Conn: st.Conn, OK: ok}
	for _, e := range st.Exp {
		rb.LastLine = max(rb.LastLine, e.Line)
		if rb.Line == 0 && e.Resp.Tag != "*" {
			rb.Line = e.Line
		}
	}
	for _, g := range got {
		if g.EOF || g.Tag != "*" {
			continue
		}
		matched := false
		for _, e := range st.Exp {
			if _, ok := MatchResp(e.Resp, g, Bindings{}); ok || looseMatch(e.Resp, g) {
				matched = true
				break
			}
		}
		if !matched {
			rb.Unmatched = append(rb.Unmatched, Render(g))
		}
	}
	r.mu.Lock()
	r.out.Blocks = append(r.out.Blocks, rb)
	r.mu.Unlock()
}

// looseMatch matches with variables unbound: a block's $names are bound by
// earlier blocks, which the recorder does not track.
func looseMatch(exp, got *Resp) bool {
	var unbind func(ts []Tok) []Tok
	unbind = func(ts []Tok) []Tok {
		out := make([]Tok, len(ts))
		for i, t := range ts {
			switch t.Kind {
			case Var:
				t = Tok{Kind: Any}
			case List:
				t.L = unbind(t.L)
			}
			out[i] = t
		}
		return out
	}
	e := *exp
	e.Code, e.Data = unbind(exp.Code), unbind(exp.Data)
	_, ok := MatchResp(&e, got, Bindings{})
	return ok
}

// volatile names the items whose values differ between runs and servers.
var volatile = map[string]bool{"UIDVALIDITY": true, "HIGHESTMODSEQ": true, "MAILBOXID": true,
	"EMAILID": true, "THREADID": true, "MODSEQ": true}

// Render writes a received untagged response as an expected line.
func Render(r *Resp) string {
	var b strings.Builder
	b.WriteString(r.Tag)
	if r.Status != "" {
		b.WriteString(" " + r.Status)
		if r.HasCode {
			code := slices.Clone(r.Code)
			if len(code) > 1 && (strings.EqualFold(code[0].S, "COPYUID") || strings.EqualFold(code[0].S, "APPENDUID")) {
				code[1] = Tok{Kind: Any}
			}
			b.WriteString(" [" + renderToks(code) + "]")
		}
		b.WriteString(" *")
		return b.String()
	}
	b.WriteString(" " + renderToks(r.Data))
	return b.String()
}

func renderToks(ts []Tok) string {
	parts := make([]string, len(ts))
	for i, t := range ts {
		if i > 0 && ts[i-1].Kind == Atom && volatile[strings.ToUpper(ts[i-1].S)] {
			parts[i] = "?"
			continue
		}
		switch t.Kind {
		case Any:
			parts[i] = "?"
		case List:
			parts[i] = "(" + renderToks(t.L) + ")"
		case Str:
			if strings.ContainsAny(t.S, "\r\n") {
				parts[i] = "<LITERAL " + strconv.Quote(t.S) + ">"
			} else {
				parts[i] = `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(t.S) + `"`
			}
		default:
			parts[i] = t.S
			if strings.HasPrefix(t.S, "$") {
				parts[i] = "$" + t.S // a keyword, not a variable
			}
		}
	}
	return strings.Join(parts, " ")
}
