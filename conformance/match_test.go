package conformance

import (
	"bufio"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func exp(t *testing.T, s string) *Resp {
	t.Helper()
	r, err := ParseResp([]Frag{{Text: s}}, true, func(string) ([]byte, error) { return []byte("file\r\n"), nil })
	if err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return r
}

func wire(t *testing.T, s string) *Resp {
	t.Helper()
	r, err := ReadResp(bufio.NewReader(strings.NewReader(s)))
	if err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return r
}

func TestMatchResp(t *testing.T) {
	for _, tc := range []struct {
		exp, got string
		ok       bool
	}{
		{`* 5 EXISTS`, "* 5 EXISTS\r\n", true},
		{`* 5 EXISTS`, "* 4 EXISTS\r\n", false},
		{`* 5 exists`, "* 5 EXISTS\r\n", true},
		{`a1 OK *`, "a1 OK [READ-WRITE] done\r\n", true},
		{`a1 OK [READ-WRITE] *`, "a1 OK [READ-ONLY] done\r\n", false},
		{`a1 OK [READ-WRITE] *`, "a1 OK done\r\n", false},
		{`a1 OK *`, "a2 OK done\r\n", false},
		{`a1 NO *`, "a1 OK done\r\n", false},
		{`a1 OK [UIDVALIDITY ?] U*`, "a1 OK [UIDVALIDITY 9] UIDs\r\n", true},
		{`+ *`, "+ idling\r\n", true},
		{`* FLAGS (\Seen \Answered)`, "* FLAGS (\\Answered \\Seen)\r\n", true},
		{`* FLAGS (\Seen)`, "* FLAGS (\\Answered \\Seen)\r\n", false},
		{`* FLAGS (\Seen *)`, "* FLAGS (\\Answered \\Seen)\r\n", true},
		{`* OK [PERMANENTFLAGS (\Seen \*)] *`, "* OK [PERMANENTFLAGS (\\* \\Seen)] x\r\n", true},
		{`* LIST (\Noselect *) "/" Lists`, "* LIST (\\HasChildren \\Noselect) \"/\" \"Lists\"\r\n", true},
		{`* LIST () "/" ?`, "* LIST (\\HasNoChildren) \"/\" INBOX\r\n", false},
		{`* 1 FETCH (UID 7 FLAGS (\Seen))`, "* 1 FETCH (FLAGS (\\Seen) UID 7)\r\n", true},
		{`* 1 FETCH (UID 7)`, "* 1 FETCH (FLAGS (\\Seen) UID 7)\r\n", false},
		{`* 1 FETCH (UID 7 *)`, "* 1 FETCH (FLAGS (\\Seen) UID 7)\r\n", true},
		{`* 1 FETCH (BODY[HEADER.FIELDS (Subject)] "x")`, "* 1 FETCH (BODY[HEADER.FIELDS (SUBJECT)] {1}\r\nx)\r\n", true},
		{`* 1 FETCH (BODY[] "a\r\nb")`, "* 1 FETCH (BODY[] {4}\r\na\r\nb)\r\n", false}, // quoted: no escapes for CRLF
		{`* 1 FETCH (BODY[] {@f})`, "* 1 FETCH (BODY[] {6}\r\nfile\r\n)\r\n", true},
		{`* 1 FETCH (BODY[] ?)`, "* 1 FETCH (BODY[] NIL)\r\n", true},
		{`* 1 FETCH (ENVELOPE (? "Hi" *))`, "* 1 FETCH (ENVELOPE (\"d\" \"Hi\" NIL NIL))\r\n", true},
		{`* 1 FETCH (ENVELOPE (? NIL *))`, "* 1 FETCH (ENVELOPE (\"d\" \"NIL\" NIL))\r\n", false},
		{`* 1 FETCH (BODYSTRUCTURE (i"TEXT" i"PLAIN" *))`, "* 1 FETCH (BODYSTRUCTURE (\"text\" \"plain\" NIL))\r\n", true},
		{`* 1 FETCH (BODYSTRUCTURE ("TEXT" *))`, "* 1 FETCH (BODYSTRUCTURE (\"text\" NIL))\r\n", false},
		{`* STATUS INBOX (UIDNEXT 6 MESSAGES 5)`, "* STATUS \"INBOX\" (MESSAGES 5 UIDNEXT 6)\r\n", true},
		{`* SEARCH 1 2 3`, "* SEARCH 1 2 3\r\n", true},
		{`* SEARCH 1 2 3`, "* SEARCH 1 3 2\r\n", true},
		{`* SEARCH 1 2`, "* SEARCH 1 3 2\r\n", false},
		{`* SEARCH 1 *`, "* SEARCH 1 3 2\r\n", true},
		{`* SEARCH`, "* SEARCH\r\n", true},
		{`* 1 FETCH (FLAGS ($$Forwarded))`, "* 1 FETCH (FLAGS ($Forwarded))\r\n", true},
		{`* 1 FETCH (FLAGS ($$Forwarded))`, "* 1 FETCH (FLAGS ($Junk))\r\n", false},
	} {
		_, ok := MatchResp(exp(t, tc.exp), wire(t, tc.got), Bindings{})
		if ok != tc.ok {
			t.Errorf("match(%q, %q) = %v, want %v", tc.exp, tc.got, ok, tc.ok)
		}
	}
}

func TestCaptures(t *testing.T) {
	b, ok := MatchResp(exp(t, `* OK [UIDVALIDITY $uv] *`), wire(t, "* OK [UIDVALIDITY 42] x\r\n"), Bindings{})
	if !ok || b["uv"] != "42" {
		t.Fatalf("capture: %v %v", b, ok)
	}
	if _, ok := MatchResp(exp(t, `a1 OK [COPYUID $uv 1 1] *`), wire(t, "a1 OK [COPYUID 42 1 1] x\r\n"), b); !ok {
		t.Error("bound $uv did not match its value")
	}
	if _, ok := MatchResp(exp(t, `a1 OK [COPYUID $uv 1 1] *`), wire(t, "a1 OK [COPYUID 43 1 1] x\r\n"), b); ok {
		t.Error("bound $uv matched another value")
	}
	if got := substitute("a1 UID FETCH $uv ($$x $Forwarded)", b); got != "a1 UID FETCH 42 ($x $Forwarded)" {
		t.Errorf("substitute: %q", got)
	}
}

func TestGlob(t *testing.T) {
	for _, tc := range []struct {
		pat, s string
		ok     bool
	}{{"*", "", true}, {"a*c", "abc", true}, {"a*c", "abd", false}, {"*ok*", "is ok here", true}, {"x", "y", false}} {
		if glob(tc.pat, tc.s) != tc.ok {
			t.Errorf("glob(%q, %q) != %v", tc.pat, tc.s, tc.ok)
		}
	}
}

const sample = `# Sample scenario exercising the syntax (RFC 3501 §6.3.11, RFC 2177 §3)
rfc: rfc3501.txt:2527-2606 rfc2177.txt:47-67
fixture: basic
connections: c1 c2
covers: command=APPEND

c1> a1 APPEND INBOX {*}
c1< + *
c1| Subject: hi
c1|
c1| body
c1>
c1< a1 OK *
c2> b1 LOGIN {4}
c2< + *
c2> fred {@small.eml+}
c2> 
c2< !only
c2< * 1 FETCH (BODY[] {*}
c2| line 1
c2< )
c2< b1 NO *
c1 wait 2s
c1< * 1 EXISTS
c1 closed
`

func TestParse(t *testing.T) {
	sc, err := Parse("sample.scn", []byte(sample), t.TempDir())
	if err == nil {
		t.Fatal("missing {@small.eml} was not reported")
	}
	dir := t.TempDir()
	writeFile(t, dir+"/small.eml", "0123456789")
	sc, err = Parse("sample.scn", []byte(sample), dir)
	if err != nil {
		t.Fatal(err)
	}
	if sc.Title != "Sample scenario exercising the syntax (RFC 3501 §6.3.11, RFC 2177 §3)" || sc.Fixture != "basic" || !sc.Login ||
		!cmp.Equal(sc.Conns, []string{"c1", "c2"}) || !cmp.Equal(sc.RFC, []string{"rfc3501.txt:2527-2606", "rfc2177.txt:47-67"}) { // RFC 3501 §6.3.11, RFC 2177 §3
		t.Errorf("header: %+v", sc)
	}
	var got []string
	for _, s := range sc.Steps {
		switch s.Kind {
		case StepSend:
			var b strings.Builder
			for _, p := range s.Send {
				b.Write(p.Raw)
				b.WriteString(p.Text)
			}
			got = append(got, s.Conn+" send "+b.String())
		case StepExpect:
			for _, e := range s.Exp {
				got = append(got, s.Conn+" expect "+e.Resp.String())
			}
			if s.Only {
				got = append(got, s.Conn+" !only")
			}
		case StepWait:
			got = append(got, s.Conn+" wait "+s.Wait.String())
		case StepClosed:
			got = append(got, s.Conn+" closed")
		}
	}
	want := []string{
		"c1 send a1 APPEND INBOX {21}\r\n",
		"c1 expect + *",
		"c1 send Subject: hi\r\n\r\nbody\r\n\r\n",
		"c1 expect a1 OK *",
		"c2 send b1 LOGIN {4}\r\n",
		"c2 expect + *",
		"c2 send fred {10+}\r\n",
		"c2 send 0123456789\r\n",
		`c2 expect * 1 FETCH (BODY[] {8}<literal 8 octets: "line 1\r\n">)`,
		"c2 expect b1 NO *",
		"c2 !only",
		"c1 wait 2s",
		"c1 expect * 1 EXISTS",
		"c1 closed",
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("steps (-want +got):\n%s", d)
	}
	r := sc.Steps[8].Exp[0].Resp
	if len(r.Data) != 3 || r.Data[2].L[1].S != "line 1\r\n" {
		t.Errorf("expected literal: %#v", r.Data)
	}
}

func TestParseErrors(t *testing.T) {
	for _, bad := range []string{
		"c1> a1 NOOP\n",                       // no rfc header
		"rfc: x\nc2> a1 NOOP\n",               // undeclared connection
		"rfc: x\nc1> a1 APPEND INBOX {*}\n",   // literal never sent
		"rfc: x\nc1< * 1 FETCH (BODY[] {*}\n", // expected literal not finished
		"rfc: x\nc1| text\n",                  // | without literal
		"rfc: x\nbogus: 1\nc1> a1 NOOP\n",     // unknown header
		"rfc: x\nc1 wait soon\n",              // bad duration
		"rfc: x\nc1< * 1 FETCH (\n",           // unbalanced
	} {
		if _, err := Parse("bad.scn", []byte(bad), t.TempDir()); err == nil {
			t.Errorf("no error for %q", bad)
		}
	}
}

func TestMatchBlock(t *testing.T) {
	sc, err := Parse("b.scn", []byte("rfc: x\nc1> a1 NOOP\nc1< * 2 EXISTS\nc1< * 1 RECENT\nc1< a1 OK *\n"), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	st := sc.Steps[1]
	ok := []*Resp{wire(t, "* 1 RECENT\r\n"), wire(t, "* OK [HIGHESTMODSEQ 4] x\r\n"), wire(t, "* 2 EXISTS\r\n"), wire(t, "a1 OK done\r\n")}
	if _, err := matchBlock(st, ok, Bindings{}); err != nil {
		t.Errorf("unordered block with informational OK: %v", err)
	}
	st.Only = true
	if _, err := matchBlock(st, ok, Bindings{}); err == nil {
		t.Error("!only accepted an extra * OK")
	}
	st.Only, st.Ordered = false, true
	if _, err := matchBlock(st, ok, Bindings{}); err == nil {
		t.Error("ordered block accepted RECENT before EXISTS")
	}
	st.Ordered = false
	extra := append([]*Resp{wire(t, "* 3 EXPUNGE\r\n")}, ok...)
	if _, err := matchBlock(st, extra, Bindings{}); err == nil {
		t.Error("unexpected EXPUNGE accepted")
	}
	// collect stops at the tagged reply and leaves later responses queued.
	c := &Conn{name: "c1", resps: make(chan *Resp, 8)}
	for _, r := range append(ok, wire(t, "* 9 EXISTS\r\n")) {
		c.resps <- r
	}
	got, complete := collect(c, st, time.Second, Bindings{})
	if !complete || len(got) != 4 || len(c.resps) != 1 {
		t.Errorf("collect: complete=%v got=%d left=%d", complete, len(got), len(c.resps))
	}
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLaxBlock(t *testing.T) {
	sc, err := Parse("b.scn", []byte("rfc: x\nc1> a1 SELECT INBOX\nc1< a1 OK *\n"), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	st := sc.Steps[1]
	got := []*Resp{wire(t, "* 3 EXISTS\r\n"), wire(t, "a1 OK done\r\n")}
	if _, err := matchBlock(st, got, Bindings{}); err != nil {
		t.Errorf("tagged-only block rejected untagged data: %v", err)
	}
	st.Only = true
	if _, err := matchBlock(st, got, Bindings{}); err == nil {
		t.Error("!only tagged-only block accepted untagged data")
	}
}

func TestOptionalLine(t *testing.T) {
	sc, err := Parse("b.scn", []byte("rfc: x\nc1> a1 EXPUNGE\nc1< !ordered\nc1< * 1 EXPUNGE\nc1< ~ * 4 RECENT\nc1< a1 OK *\n"), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	st := sc.Steps[1]
	for _, got := range [][]*Resp{
		{wire(t, "* 1 EXPUNGE\r\n"), wire(t, "a1 OK done\r\n")},
		{wire(t, "* 1 EXPUNGE\r\n"), wire(t, "* 4 RECENT\r\n"), wire(t, "a1 OK done\r\n")},
	} {
		for _, ordered := range []bool{true, false} {
			st.Ordered = ordered
			if _, err := matchBlock(st, got, Bindings{}); err != nil {
				t.Errorf("ordered=%v %d responses: %v", ordered, len(got), err)
			}
		}
	}
	if _, err := matchBlock(st, []*Resp{wire(t, "* 4 RECENT\r\n"), wire(t, "a1 OK done\r\n")}, Bindings{}); err == nil {
		t.Error("missing required EXPUNGE accepted")
	}
}
