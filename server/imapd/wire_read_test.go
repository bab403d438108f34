package imapd

import (
	"bufio"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var testLimits = Limits{MaxLine: 200, MaxLiteral: 100, MaxAppend: 1000}

// newTestReader reads from in; conts counts continuation requests.
func newTestReader(in string, lim Limits) (*reader, *int) {
	n := new(int)
	r := newReader(bufio.NewReader(strings.NewReader(in)), lim, func() error { *n++; return nil })
	return r, n
}

func atom(s string) Value { return Value{Kind: Atom, S: s} }
func str(s string) Value  { return Value{Kind: String, S: s} }
func lit(s string) Value  { return Value{Kind: Literal, S: s} }
func list(v ...Value) Value {
	if v == nil {
		v = []Value{}
	}
	return Value{Kind: List, List: v}
}

func TestReadCommand(t *testing.T) {
	tests := []struct {
		in    string
		want  Command
		conts int
	}{
		{"a1 noop\r\n", Command{Tag: "a1", Name: "NOOP"}, 0},
		{"a1 NOOP\n", Command{Tag: "a1", Name: "NOOP"}, 0}, // bare LF tolerated
		{"x uid fetch 1:*,5 (FLAGS UID)\r\n", Command{Tag: "x", Name: "UID FETCH",
			Args: []Value{atom("1:*,5"), list(atom("FLAGS"), atom("UID"))}}, 0},
		{"a LOGIN \"us\\\"er\" \"p\\\\w\"\r\n", Command{Tag: "a", Name: "LOGIN",
			Args: []Value{str(`us"er`), str(`p\w`)}}, 0},
		{"a LOGIN {4}\r\nuser {2+}\r\npw\r\n", Command{Tag: "a", Name: "LOGIN",
			Args: []Value{lit("user"), lit("pw")}}, 1},
		{"a APPEND INBOX (\\Seen $Junk) ~{3}\r\na\x00b\r\n", Command{Tag: "a", Name: "APPEND",
			Args: []Value{atom("INBOX"), list(atom(`\Seen`), atom("$Junk")), {Kind: Literal8, S: "a\x00b"}}}, 1},
		{"f FETCH 1 (BODY.PEEK[HEADER.FIELDS (From To)]<0.100> body[] BINARY[1.2])\r\n", Command{Tag: "f", Name: "FETCH",
			Args: []Value{atom("1"), list(atom("BODY.PEEK[HEADER.FIELDS (From To)]<0.100>"), atom("body[]"), atom("BINARY[1.2]"))}}, 0},
		{"f FETCH 1 BODY[HEADER.FIELDS (\"X]\")]\r\n", Command{Tag: "f", Name: "FETCH",
			Args: []Value{atom("1"), atom(`BODY[HEADER.FIELDS ("X]")]`)}}, 0},
		{"l LIST \"\" %/*\r\n", Command{Tag: "l", Name: "LIST", Args: []Value{str(""), atom("%/*")}}, 0},
		{"s SEARCH (OR (FROM x) NOT ()) NIL\r\n", Command{Tag: "s", Name: "SEARCH",
			Args: []Value{list(atom("OR"), list(atom("FROM"), atom("x")), atom("NOT"), list()), atom("NIL")}}, 0},
		{"c CREATE foo[bar]\r\n", Command{Tag: "c", Name: "CREATE", Args: []Value{atom("foo[bar]")}}, 0},
		{"t] NOOP\r\n", Command{Tag: "t]", Name: "NOOP"}, 0},
		{"s SEARCH CHARSET UTF-8 TEXT \"gr\xc3\xbc\xc3\x9f\"\r\n", Command{Tag: "s", Name: "SEARCH",
			Args: []Value{atom("CHARSET"), atom("UTF-8"), atom("TEXT"), str("grüß")}}, 0},
		{"a LOGIN {0}\r\n {0+}\r\n\r\n", Command{Tag: "a", Name: "LOGIN", Args: []Value{lit(""), lit("")}}, 1},
	}
	for _, tt := range tests {
		r, conts := newTestReader(tt.in, testLimits)
		got, err := r.ReadCommand()
		if err != nil {
			t.Errorf("%q: %v", tt.in, err)
			continue
		}
		tt.want.Line = 1
		if d := cmp.Diff(&tt.want, got); d != "" {
			t.Errorf("%q: -want +got\n%s", tt.in, d)
		}
		if *conts != tt.conts {
			t.Errorf("%q: %d continuation requests, want %d", tt.in, *conts, tt.conts)
		}
		if _, err := r.ReadCommand(); err != io.EOF {
			t.Errorf("%q: trailing input, err %v", tt.in, err)
		}
	}
}

// TestReadCommandErrors checks the reply status of bad input and that the
// reader resyncs: the next command ("n NOOP") is read correctly.
func TestReadCommandErrors(t *testing.T) {
	tests := []struct {
		in, tag, kind, code string
		conts               int
	}{
		{"\r\n", "", "BAD", "", 0},
		{"+ NOOP\r\n", "", "BAD", "", 0},
		{"a\r\n", "a", "BAD", "", 0}, // a tag alone: tagged BAD (rfc3501.txt:3680),
		{"a \r\n", "a", "BAD", "", 0},
		{"a NOOP \r\n", "a", "BAD", "", 0},
		{"a UID\r\n", "a", "BAD", "", 0},
		{"a LOGIN \"x\r\n", "a", "BAD", "", 0},
		{"a LOGIN \"\\x\"\r\n", "a", "BAD", "", 0},
		{"a LOGIN (x\r\n", "a", "BAD", "", 0},
		{"a LOGIN x) y\r\n", "a", "BAD", "", 0},
		{"a LOGIN {3}x\r\n", "a", "BAD", "", 0},
		{"a LOGIN {x}\r\n", "a", "BAD", "", 0},
		{"a FETCH 1 BODY[HEADER\r\n", "a", "BAD", "", 0},
		{"a FETCH 1 BODY[]<1.x>\r\n", "a", "BAD", "", 0},
		// Error early in the line, then a non-synchronising literal to skip.
		{"a LOGIN \"\\x\" {5+}\r\nn NOO\r\n", "a", "BAD", "", 0},
		// Line too long.
		{"a LOGIN " + strings.Repeat("x", 300) + "\r\n", "a", "BAD", "TOOBIG", 0},
		{"a LOGIN " + strings.Repeat("x", 150) + " {3+}\r\nabc " + strings.Repeat("y", 100) + "\r\n", "a", "BAD", "TOOBIG", 0},
		// Synchronising literal too big: no "+", nothing read.
		{"a LOGIN {101}\r\n", "a", "BAD", "TOOBIG", 0},
		{"a APPEND INBOX {1001}\r\n", "a", "NO", "TOOBIG", 0},
		// Non-synchronising literal too big: read and discarded.
		{"a LOGIN {101+}\r\n" + strings.Repeat("z", 101) + " x\r\n", "a", "BAD", "TOOBIG", 0},
		{"a APPEND INBOX {1000+}\r\n" + strings.Repeat("z", 1000) + " {101+}\r\n" + strings.Repeat("z", 101) + "\r\n", "a", "BAD", "TOOBIG", 0},
		// The sum of literals is capped too: an APPEND's message plus
		// MaxLiteral of other literals.
		{"a APPEND INBOX {600+}\r\n" + strings.Repeat("z", 600) + " {600}\r\n", "a", "NO", "TOOBIG", 0},
	}
	for _, tt := range tests {
		r, conts := newTestReader(tt.in+"n NOOP\r\n", testLimits)
		_, err := r.ReadCommand()
		var pe *ParseError
		if !errors.As(err, &pe) {
			t.Errorf("%q: err %v, want a ParseError", tt.in, err)
			continue
		}
		if pe.Tag != tt.tag || pe.Status.Kind != tt.kind || pe.Status.Code != tt.code {
			t.Errorf("%q: got tag %q %v, want %q %s [%s]", tt.in, pe.Tag, pe.Status, tt.tag, tt.kind, tt.code)
		}
		if *conts != tt.conts {
			t.Errorf("%q: %d continuation requests, want %d", tt.in, *conts, tt.conts)
		}
		cmd, err := r.ReadCommand()
		if err != nil || cmd.Tag != "n" || cmd.Name != "NOOP" {
			t.Errorf("%q: no resync: %+v %v", tt.in, cmd, err)
		}
	}
}

// A non-synchronising literal beyond even the APPEND limit ends the
// session (RFC 7888 §4 option 2) instead of reading gigabytes.
func TestReadCommandHugeNonSyncLiteral(t *testing.T) {
	for _, in := range []string{"a APPEND INBOX {5000+}\r\n", "a LOGIN \"\\x\" {5000+}\r\n"} {
		r, _ := newTestReader(in+strings.Repeat("z", 5000), testLimits)
		_, err := r.ReadCommand()
		var pe *ParseError
		if !errors.As(err, &pe) || pe.Status.Kind != "BYE" || pe.Status.Code != CodeTooBig {
			t.Errorf("%q: got %v, want BYE [TOOBIG]", in, err)
		}
	}
}

func TestReadCommandLineNumbers(t *testing.T) {
	r, _ := newTestReader("a NOOP\r\nb NOOP\r\n", testLimits)
	for i, tag := range []string{"a", "b"} {
		cmd, err := r.ReadCommand()
		if err != nil || cmd.Tag != tag || cmd.Line != i+1 {
			t.Fatalf("got %+v %v", cmd, err)
		}
	}
}

func TestReadLine(t *testing.T) {
	r, _ := newTestReader("DONE\r\n"+strings.Repeat("x", 300)+"\r\nok\n", testLimits)
	if l, err := r.ReadLine(); l != "DONE" || err != nil {
		t.Fatalf("got %q %v", l, err)
	}
	if _, err := r.ReadLine(); err == nil {
		t.Fatal("long line accepted")
	}
	if l, err := r.ReadLine(); l != "ok" || err != nil {
		t.Fatalf("after a long line: %q %v", l, err)
	}
}

// FuzzReadCommand: the reader never panics, and a command re-encoded from
// its parsed Values reads back to the same Values.
func FuzzReadCommand(f *testing.F) {
	for _, s := range transcriptSeeds(f) {
		f.Add(s)
	}
	f.Add("a APPEND INBOX (\\Seen) {3+}\r\nabc\r\n")
	f.Add("a FETCH 1:* (BODY.PEEK[HEADER.FIELDS (From \"To\")]<0.100>)\r\n")
	f.Add("a LOGIN {1}\r\nx ~{2+}\r\nyz\r\n")
	lim := Limits{MaxLine: 4096, MaxLiteral: 4096, MaxAppend: 8192}
	f.Fuzz(func(t *testing.T, in string) {
		r, _ := newTestReader(in, lim)
		for range 10 {
			cmd, err := r.ReadCommand()
			var pe *ParseError
			if errors.As(err, &pe) {
				continue
			}
			if err != nil {
				return
			}
			enc := formatCommand(cmd, false) + "\r\n"
			r2, _ := newTestReader(enc, lim)
			again, err := r2.ReadCommand()
			if err != nil {
				t.Fatalf("re-encoded %q from %q: %v", enc, in, err)
			}
			again.Line = cmd.Line
			if d := cmp.Diff(cmd, again); d != "" {
				t.Fatalf("round trip of %q via %q: -first +second\n%s", in, enc, d)
			}
		}
	})
}

// transcriptSeeds returns the client lines of the captured transcripts,
// one command per seed (literal data lines are joined to their command).
func transcriptSeeds(tb testing.TB) []string {
	files, _ := filepath.Glob("../../fixtures/transcripts/*/*")
	if len(files) == 0 {
		tb.Fatal("no fixtures/transcripts")
	}
	var seeds []string
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if c, ok := strings.CutPrefix(strings.TrimRight(line, "\r"), "C: "); ok {
				seeds = append(seeds, c+"\r\n")
			}
		}
	}
	return seeds
}
