package conformance

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"decimail/internal/imaptest"
)

func exp(t *testing.T, s string) *Resp {
	t.Helper()
	r, err := imaptest.ParseResp([]Frag{{Text: s}}, true, func(string) ([]byte, error) { return []byte("file\r\n"), nil })
	if err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return r
}

func wire(t *testing.T, s string) *Resp {
	t.Helper()
	r, err := imaptest.ReadResp(bufio.NewReader(strings.NewReader(s)))
	if err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return r
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
c2< !lax the sample says why
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
			if s.Lax != "" {
				got = append(got, s.Conn+" !lax "+s.Lax)
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
		"c2 !lax the sample says why",
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
	if _, err := matchBlock(st, ok, Bindings{}); err == nil {
		t.Error("strict block accepted an * OK [HIGHESTMODSEQ] no line expects")
	}
	st.Lax = "test"
	if _, err := matchBlock(st, ok, Bindings{}); err != nil {
		t.Errorf("!lax block rejected an extra * OK: %v", err)
	}
	ok = slices.Delete(ok, 1, 2)
	if _, err := matchBlock(st, ok, Bindings{}); err != nil {
		t.Errorf("unordered block: %v", err)
	}
	st.Lax, st.Ordered = "", true
	if _, err := matchBlock(st, ok, Bindings{}); err == nil {
		t.Error("ordered block accepted RECENT before EXISTS")
	}
	st.Ordered = false
	extra := append([]*Resp{wire(t, "* 3 EXPUNGE\r\n")}, ok...)
	if _, err := matchBlock(st, extra, Bindings{}); err == nil {
		t.Error("unexpected EXPUNGE accepted")
	}
	// collect stops at the tagged reply and leaves later responses queued.
	c := pipeConn(t, "* 1 RECENT\r\n* OK [HIGHESTMODSEQ 4] x\r\n* 2 EXISTS\r\na1 OK done\r\n* 9 EXISTS\r\n")
	got, complete := collect(c, st, time.Second, Bindings{})
	if !complete || len(got) != 4 {
		t.Errorf("collect: complete=%v got=%d", complete, len(got))
	}
	if r := c.Next(time.Second); r == nil || r.Raw != "* 9 EXISTS" {
		t.Errorf("after collect: %v", r)
	}
}

// pipeConn is a Conn whose server side sends the responses in wire.
func pipeConn(t *testing.T, wire string) *Conn {
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	go b.Write([]byte(wire))
	c := &Conn{Client: imaptest.New(a), name: "c1"}
	c.Background()
	t.Cleanup(c.Close)
	return c
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
	if _, err := matchBlock(st, got, Bindings{}); err == nil {
		t.Error("tagged-only block accepted untagged data")
	}
	st.Lax = "the SELECT data is not the point"
	if _, err := matchBlock(st, got, Bindings{}); err != nil {
		t.Errorf("!lax block rejected untagged data: %v", err)
	}
	if _, err := Parse("b.scn", []byte("rfc: x\nc1> a1 NOOP\nc1< !lax\nc1< a1 OK *\n"), t.TempDir()); err == nil {
		t.Error("!lax without a reason accepted")
	}
	if _, err := Parse("b.scn", []byte("rfc: x\nc1> a1 NOOP\nc1< !only\nc1< a1 OK *\n"), t.TempDir()); err == nil {
		t.Error("!only accepted")
	}
}

func TestRepeatLine(t *testing.T) {
	sc, err := Parse("b.scn", []byte("rfc: x\nc1> a1 STORE 1:* +FLAGS (x)\nc1< ~* * ? FETCH (FLAGS ?)\nc1< * 2 EXISTS\nc1< a1 OK *\n"), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	st := sc.Steps[1]
	for _, ordered := range []bool{false, true} {
		st.Ordered = ordered
		for n := range 4 {
			var got []*Resp
			for i := range n {
				got = append(got, wire(t, fmt.Sprintf("* %d FETCH (FLAGS (x))\r\n", i+1)))
			}
			got = append(got, wire(t, "* 2 EXISTS\r\n"), wire(t, "a1 OK done\r\n"))
			if _, err := matchBlock(st, got, Bindings{}); err != nil {
				t.Errorf("ordered=%v, %d FETCH responses: %v", ordered, n, err)
			}
		}
		bad := []*Resp{wire(t, "* 1 FETCH (UID 4)\r\n"), wire(t, "* 2 EXISTS\r\n"), wire(t, "a1 OK done\r\n")}
		if _, err := matchBlock(st, bad, Bindings{}); err == nil {
			t.Errorf("ordered=%v: a FETCH without FLAGS matched a ~* FLAGS line", ordered)
		}
		if _, err := matchBlock(st, []*Resp{wire(t, "a1 OK done\r\n")}, Bindings{}); err == nil {
			t.Errorf("ordered=%v: missing EXISTS accepted", ordered)
		}
	}
	if _, err := Parse("b.scn", []byte("rfc: x\nc1> a1 NOOP\nc1< ~* * $n EXISTS\nc1< a1 OK *\n"), t.TempDir()); err == nil {
		t.Error("~* line with a variable accepted")
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
