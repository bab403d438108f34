package imapd

import (
	"bytes"
	"strings"
	"testing"
)

// countWriter counts Write calls (syscalls on a real socket).
type countWriter struct {
	bytes.Buffer
	writes int
}

func (w *countWriter) Write(p []byte) (int, error) { w.writes++; return w.Buffer.Write(p) }

func TestWriterStrings(t *testing.T) {
	tests := []struct {
		write func(w *Writer)
		want  string
	}{
		{func(w *Writer) { w.String("INBOX") }, `"INBOX"`},
		{func(w *Writer) { w.String(`a"b\c`) }, `"a\"b\\c"`},
		{func(w *Writer) { w.String("") }, `""`},
		{func(w *Writer) { w.String("a\r\nb") }, "{4}\r\na\r\nb"},
		{func(w *Writer) { w.String("grüß") }, "{6}\r\ngrüß"},
		{func(w *Writer) { w.String(strings.Repeat("x", 2000)) }, "{2000}\r\n" + strings.Repeat("x", 2000)},
		{func(w *Writer) { w.AString("INBOX") }, "INBOX"},
		{func(w *Writer) { w.AString("a]b") }, "a]b"},
		{func(w *Writer) { w.AString("nil") }, `"nil"`},
		{func(w *Writer) { w.AString("a b") }, `"a b"`},
		{func(w *Writer) { w.AString("a*") }, `"a*"`},
		{func(w *Writer) { w.AString("") }, `""`},
		{func(w *Writer) { w.NString("x", false) }, "NIL"},
		{func(w *Writer) { w.NString("x", true) }, `"x"`},
		{func(w *Writer) { w.Flags([]string{`\Seen`, "$Junk"}) }, `(\Seen $Junk)`},
		{func(w *Writer) { w.Flags(nil) }, `()`},
		{func(w *Writer) { w.Literal([]byte("abc")) }, "{3}\r\nabc"},
		{func(w *Writer) { w.LiteralFrom(3, strings.NewReader("abcdef")) }, "{3}\r\nabc"},
		{func(w *Writer) { w.Line("%d EXISTS", 5) }, "* 5 EXISTS\r\n"},
		{func(w *Writer) { w.Line("OK [UNSEEN 3] 100%") }, "* OK [UNSEEN 3] 100%\r\n"},
		{func(w *Writer) { w.Tagged("a1", No(CodeTryCreate, "no such mailbox")) }, "a1 NO [TRYCREATE] no such mailbox\r\n"},
		{func(w *Writer) { w.Tagged("a1", &Status{Kind: "OK"}) }, "a1 OK done\r\n"},
		{func(w *Writer) { w.Bye(No("", "x")) }, "* BYE x\r\n"},
		{func(w *Writer) { w.Continue("Ready") }, "+ Ready\r\n"},
	}
	for i, tt := range tests {
		var out bytes.Buffer
		w := newWriter(&out, nil)
		tt.write(w)
		w.Flush()
		if got := out.String(); got != tt.want {
			t.Errorf("%d: got %q, want %q", i, got, tt.want)
		}
	}
}

func TestWriterLiteralFromShort(t *testing.T) {
	w := newWriter(new(bytes.Buffer), nil)
	if err := w.LiteralFrom(10, strings.NewReader("abc")); err == nil {
		t.Fatal("short literal source not reported")
	}
}

// A big response batch is written in few syscalls: bufio flushes only when
// its buffer is full, and the core flushes once per command.
func TestWriterBatches(t *testing.T) {
	cw := new(countWriter)
	w := newWriter(cw, nil)
	for i := range 10000 {
		w.Line("%d FETCH (UID %d FLAGS (\\Seen))", i+1, i+1)
	}
	w.Flush()
	if n := strings.Count(cw.String(), "\r\n"); n != 10000 {
		t.Fatalf("%d lines", n)
	}
	if max := cw.Len()/writeBufSize + 2; cw.writes > max {
		t.Errorf("%d writes for %d bytes, want <= %d", cw.writes, cw.Len(), max)
	}
}

func TestWriterLog(t *testing.T) {
	var lines []string
	w := newWriter(new(bytes.Buffer), func(l string) { lines = append(lines, l) })
	w.Untagged()
	w.Raw("1 FETCH (BODY[] ")
	w.Literal([]byte("secret body"))
	w.Raw(")")
	w.CRLF()
	if len(lines) != 1 || lines[0] != "* 1 FETCH (BODY[] {11}<literal>)" {
		t.Fatalf("log %q", lines)
	}
}
