package query

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/google/go-cmp/cmp"
	"pgregory.net/rapid"
)

func day(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }

func TestParseKeys(t *testing.T) {
	tests := []struct {
		in   string
		want Node
	}{
		{"ALL", All{}},
		{"all", All{}},
		{"ANSWERED", Flag{Key: "ANSWERED", Set: true}},
		{"DELETED", Flag{Key: "DELETED", Set: true}},
		{"DRAFT", Flag{Key: "DRAFT", Set: true}},
		{"FLAGGED", Flag{Key: "FLAGGED", Set: true}},
		{"Seen", Flag{Key: "SEEN", Set: true}},
		{"UNANSWERED", Flag{Key: "ANSWERED"}},
		{"UNDELETED", Flag{Key: "DELETED"}},
		{"UNDRAFT", Flag{Key: "DRAFT"}},
		{"UNFLAGGED", Flag{Key: "FLAGGED"}},
		{"unseen", Flag{Key: "SEEN"}},
		{"RECENT", Recent{Key: "RECENT"}},
		{"NEW", Recent{Key: "NEW"}},
		{"OLD", Recent{Key: "OLD"}},
		{"KEYWORD $Junk", Keyword{Flag: "$Junk", Set: true}},
		{`KEYWORD \Seen`, Keyword{Flag: `\Seen`, Set: true}},
		{`UNKEYWORD "$Forwarded"`, Keyword{Flag: "$Forwarded"}},
		{"BCC bob", Text{Key: "BCC", Value: "bob"}},
		{"BODY \"hello world\"", Text{Key: "BODY", Value: "hello world"}},
		{"CC x", Text{Key: "CC", Value: "x"}},
		{"FROM golang-nuts", Text{Key: "FROM", Value: "golang-nuts"}},
		{"SUBJECT \"\"", Text{Key: "SUBJECT", Value: ""}},
		{"TEXT \"a \\\"q\\\" \\\\ b\"", Text{Key: "TEXT", Value: `a "q" \ b`}},
		{"TO x@y", Text{Key: "TO", Value: "x@y"}},
		{"HEADER List-Id golang", Text{Key: "HEADER", Field: "List-Id", Value: "golang"}},
		{"HEADER X-Spam \"\"", Text{Key: "HEADER", Field: "X-Spam"}},
		{"BEFORE 1-Feb-1994", Date{Key: "BEFORE", Day: day(1994, 2, 1)}},
		{"ON \"01-feb-1994\"", Date{Key: "ON", Day: day(1994, 2, 1)}},
		{"SINCE 29-Feb-2024", Date{Key: "SINCE", Day: day(2024, 2, 29)}},
		{"SENTBEFORE 31-Dec-2026", Date{Key: "SENTBEFORE", Day: day(2026, 12, 31)}},
		{"SENTON 9-Jan-2000", Date{Key: "SENTON", Day: day(2000, 1, 9)}},
		{"SENTSINCE 10-Oct-2010", Date{Key: "SENTSINCE", Day: day(2010, 10, 10)}},
		{"savedbefore 1-Jan-2020", Date{Key: "SAVEDBEFORE", Day: day(2020, 1, 1)}},
		{"SAVEDON 1-Jan-2020", Date{Key: "SAVEDON", Day: day(2020, 1, 1)}},
		{"SAVEDSINCE 1-Jan-2020", Date{Key: "SAVEDSINCE", Day: day(2020, 1, 1)}},
		{"SAVEDATESUPPORTED", SaveDateSupported{}},
		{"LARGER 0", Size{Larger: true, N: 0}},
		{"SMALLER 4294967295", Size{N: 4294967295}},
		{"1:3,5,7:*", Seq{Set: imap.SeqSet{sr(1, 3), sr(5, 5), sr(7, 0)}}},
		{"*", Seq{Set: imap.SeqSet{sr(0, 0)}}},
		{"UID 4:2,*", UID{Set: imap.UIDSet{ur(4, 2), ur(0, 0)}}},
		{"NOT SEEN", Not{X: Flag{Key: "SEEN", Set: true}}},
		{"NOT NOT ALL", Not{X: Not{X: All{}}}},
		{"OR SEEN FLAGGED", Or{A: Flag{Key: "SEEN", Set: true}, B: Flag{Key: "FLAGGED", Set: true}}},
		{"OR FROM golang-nuts HEADER List-Id golang", Or{A: Text{Key: "FROM", Value: "golang-nuts"}, B: Text{Key: "HEADER", Field: "List-Id", Value: "golang"}}},
		{"UNSEEN SINCE 1-Nov-2026", And{Flag{Key: "SEEN"}, Date{Key: "SINCE", Day: day(2026, 11, 1)}}},
		{"(SEEN)", Flag{Key: "SEEN", Set: true}},
		{"((SEEN DELETED))", And{Flag{Key: "SEEN", Set: true}, Flag{Key: "DELETED", Set: true}}},
		{"OR (SEEN DELETED) NOT (1 2)", Or{A: And{Flag{Key: "SEEN", Set: true}, Flag{Key: "DELETED", Set: true}},
			B: Not{X: And{Seq{Set: imap.SeqSet{sr(1, 1)}}, Seq{Set: imap.SeqSet{sr(2, 2)}}}}}},
		{"FLAGGED SINCE 1-Feb-1994 NOT FROM \"Smith\"", And{Flag{Key: "FLAGGED", Set: true},
			Date{Key: "SINCE", Day: day(1994, 2, 1)}, Not{X: Text{Key: "FROM", Value: "Smith"}}}},
		{"TEXT word UNDELETED", And{Text{Key: "TEXT", Value: "word"}, Flag{Key: "DELETED"}}},
		{`FOLDER "Lists/golang"`, Folder{Name: "Lists/golang"}},
		{`folder inbox`, Folder{Name: "INBOX"}},
		{`FOLDER "inbox/Sub"`, Folder{Name: "INBOX/Sub"}},
		{`ONLYFOLDER Trash`, OnlyFolder{Names: []string{"Trash"}}},
		{`NOT ONLYFOLDER (Trash "Junk" Trash)`, Not{X: OnlyFolder{Names: []string{"Trash", "Junk"}}}},
		{`UNSEEN NOT FOLDER "Spam folder"`, And{Flag{Key: "SEEN"}, Not{X: Folder{Name: "Spam folder"}}}},
	}
	for _, tt := range tests {
		got, err := ParseDefinition(tt.in)
		if err != nil {
			t.Errorf("ParseDefinition(%q): %v", tt.in, err)
			continue
		}
		if d := cmp.Diff(tt.want, got); d != "" {
			t.Errorf("ParseDefinition(%q) (-want +got):\n%s", tt.in, d)
		}
		// Canonical text round-trips.
		s := String(got)
		again, err := ParseDefinition(s)
		if err != nil {
			t.Errorf("reparse %q: %v", s, err)
		} else if d := cmp.Diff(got, again); d != "" {
			t.Errorf("round trip %q → %q (-want +got):\n%s", tt.in, s, d)
		}
	}
}

func TestParseArgs(t *testing.T) {
	// As the IMAP reader delivers them: a literal is a Str, lists nest.
	args := []Arg{
		{Kind: Atom, S: "or"},
		{Kind: List, List: []Arg{{Kind: Atom, S: "subject"}, {Kind: Str, S: "ü (x) \"y\""}}},
		{Kind: Atom, S: "keyword"}, {Kind: Atom, S: `\Flagged`},
		{Kind: Atom, S: "SINCE"}, {Kind: Str, S: "1-Nov-2026"},
	}
	got, err := Parse(args)
	if err != nil {
		t.Fatal(err)
	}
	want := And{Or{A: Text{Key: "SUBJECT", Value: "ü (x) \"y\""}, B: Keyword{Flag: `\Flagged`, Set: true}},
		Date{Key: "SINCE", Day: day(2026, 11, 1)}}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("(-want +got):\n%s", d)
	}
	if s, w := String(got), `OR SUBJECT "ü (x) \"y\"" KEYWORD \Flagged SINCE 1-Nov-2026`; s != w {
		t.Errorf("String = %s, want %s", s, w)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct{ in, tok string }{
		{"", ""},
		{"FOO", "FOO"},
		{"SUBJECT", "SUBJECT"},
		{"HEADER X", "HEADER"},
		{"BEFORE 32-Jan-2020", "32-Jan-2020"},
		{"BEFORE 29-Feb-2023", "29-Feb-2023"},
		{"ON 1-Foo-2020", "1-Foo-2020"},
		{"ON 1-Jan-20", "1-Jan-20"},
		{"ON 001-Jan-2020", "001-Jan-2020"},
		{"ON 1-Jan-0000", "1-Jan-0000"},
		{"SINCE 2020-01-01", "2020-01-01"},
		{"LARGER x", "x"},
		{"LARGER -1", "-1"},
		{"LARGER 9223372036854775808", "9223372036854775808"},
		{`LARGER "5"`, `"5"`},
		{"SMALLER", "SMALLER"},
		{"UID", "UID"},
		{"UID 0", "0"},
		{"UID 1:", "1:"},
		{"UID 1,,2", "1,,2"},
		{"UID (1)", "("},
		{"1:0", "1:0"},
		{"01", "01"},
		{"1-2", "1-2"},
		{"NOT", "NOT"},
		{"OR SEEN", "OR"},
		{"()", "()"},
		{"(SEEN", "("},
		{"SEEN)", ")"},
		{`"SEEN"`, `"SEEN"`},
		{`SUBJECT "abc`, `"abc`},
		{`SUBJECT "a\b"`, `"a\`},
		{"SUBJECT (x)", "("},
		{"KEYWORD \"\"", "KEYWORD"},
		{"CHARSET UTF-8 ALL", "CHARSET"},
		{"ſeen", "ſeen"},
		{"FOLDER", "FOLDER"},
		{`FOLDER ""`, "FOLDER"},
		{"FOLDER (INBOX)", "("},
		{"ONLYFOLDER ()", "()"},
		{"ONLYFOLDER (Trash (Junk))", "("},
		{`ONLYFOLDER (Trash "")`, "ONLYFOLDER"},
	}
	for _, tt := range tests {
		_, err := ParseDefinition(tt.in)
		var se *SyntaxError
		if !errors.As(err, &se) {
			t.Errorf("ParseDefinition(%q) err = %v, want *SyntaxError", tt.in, err)
			continue
		}
		if se.Token != tt.tok {
			t.Errorf("ParseDefinition(%q) token = %q, want %q (%v)", tt.in, se.Token, tt.tok, err)
		}
	}
	// Folder terms are for definitions: SEARCH has no such key.
	for _, k := range []string{"FOLDER", "ONLYFOLDER"} {
		_, err := Parse([]Arg{{Kind: Atom, S: k}, {Kind: Atom, S: "INBOX"}})
		var se *SyntaxError
		if !errors.As(err, &se) || se.Token != k {
			t.Errorf("Parse(%s INBOX) err = %v, want unknown search key", k, err)
		}
	}
	// NUL and invalid UTF-8 only arrive via literals.
	for _, s := range []string{"a\x00b", "\xff"} {
		if _, err := Parse([]Arg{{Kind: Atom, S: "BODY"}, {Kind: Str, S: s}}); err == nil {
			t.Errorf("BODY %q: no error", s)
		}
	}
	if _, err := Parse(nil); err == nil {
		t.Error("Parse(nil): no error")
	}
}

func TestParseDepth(t *testing.T) {
	ok := strings.Repeat("NOT ", MaxDepth-1) + "ALL"
	if _, err := ParseDefinition(ok); err != nil {
		t.Errorf("depth %d: %v", MaxDepth-1, err)
	}
	for _, s := range []string{
		strings.Repeat("NOT ", MaxDepth) + "ALL",
		strings.Repeat("(", MaxDepth+1) + "ALL" + strings.Repeat(")", MaxDepth+1),
		strings.Repeat("OR ALL ", MaxDepth) + "ALL",
		strings.Repeat("(", 100000),
	} {
		var se *SyntaxError
		if _, err := ParseDefinition(s); !errors.As(err, &se) {
			t.Errorf("deep program %.20q: err = %v", s, err)
		}
	}
	// Deep nesting straight from the IMAP reader.
	a := Arg{Kind: Atom, S: "ALL"}
	for range 1000 {
		a = Arg{Kind: List, List: []Arg{a}}
	}
	if _, err := Parse([]Arg{a}); err == nil {
		t.Error("deep Arg lists: no error")
	}
}

func TestStringCanonical(t *testing.T) {
	tests := []struct{ in, want string }{
		{"unseen since 01-nov-2026", "UNSEEN SINCE 1-Nov-2026"},
		{"(seen (deleted flagged))", "SEEN (DELETED FLAGGED)"},
		{"not (seen deleted)", "NOT (SEEN DELETED)"},
		{`subject "plain"`, "SUBJECT plain"},
		{`subject "two words"`, `SUBJECT "two words"`},
		{`subject "a*b%c{1}"`, `SUBJECT "a*b%c{1}"`},
		{`header "List-Id" ""`, `HEADER List-Id ""`},
		{`keyword "\\Seen"`, `KEYWORD \Seen`},
		{`keyword "\\"`, `KEYWORD "\\"`},
		{"uid 5:5,*:3", "UID 5,*:3"},
		{"(ALL)", "ALL"},
	}
	for _, tt := range tests {
		n, err := ParseDefinition(tt.in)
		if err != nil {
			t.Fatalf("%q: %v", tt.in, err)
		}
		if got := String(n); got != tt.want {
			t.Errorf("String(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

var genString = rapid.OneOf(
	rapid.StringOf(rapid.Rune().Filter(func(r rune) bool { return r != 0 })),
	rapid.SampledFrom([]string{"", "a", "x y", `\`, `"`, "%", "_", "(", ")", "*", "ü", "\n", "NIL", `\Seen`, "1-Jan-2000"}),
)

// genFolder draws folder names as ParseDefinition leaves them (INBOX upper case).
var genFolder = rapid.SampledFrom([]string{"INBOX", "INBOX/x", "Trash", "Junk", "Lists/golang", "a b", `q"\\`})

var genSeqNum = rapid.OneOf(rapid.Just(uint32(0)), rapid.Uint32Range(1, 20), rapid.Uint32Range(1, 1<<32-1))

// genNode draws an AST in Parse's normal form (every And has >= 2 elements).
func genNode(t *rapid.T, depth int) Node {
	max := 13
	if depth >= 4 {
		max = 10 // leaves only
	}
	switch rapid.IntRange(0, max).Draw(t, "kind") {
	case 0:
		return All{}
	case 1:
		return Flag{Key: rapid.SampledFrom([]string{"ANSWERED", "DELETED", "DRAFT", "FLAGGED", "SEEN"}).Draw(t, "flag"), Set: rapid.Bool().Draw(t, "set")}
	case 2:
		return Keyword{Flag: genString.Filter(func(s string) bool { return s != "" }).Draw(t, "kw"), Set: rapid.Bool().Draw(t, "set")}
	case 3:
		return Recent{Key: rapid.SampledFrom([]string{"RECENT", "NEW", "OLD"}).Draw(t, "recent")}
	case 4:
		n := Text{Key: rapid.SampledFrom([]string{"BCC", "BODY", "CC", "FROM", "HEADER", "SUBJECT", "TEXT", "TO"}).Draw(t, "text"), Value: genString.Draw(t, "value")}
		if n.Key == "HEADER" {
			n.Field = genString.Draw(t, "field")
		}
		return n
	case 5:
		d := day(1, 1, 1).AddDate(0, 0, rapid.IntRange(0, 3652058).Draw(t, "day"))
		return Date{Key: rapid.SampledFrom([]string{"BEFORE", "ON", "SINCE", "SENTBEFORE", "SENTON", "SENTSINCE"}).Draw(t, "date"), Day: d}
	case 6:
		return Size{Larger: rapid.Bool().Draw(t, "larger"), N: rapid.Uint64Range(0, 1<<63-1).Draw(t, "n")}
	case 7:
		var set imap.SeqSet
		for range rapid.IntRange(1, 4).Draw(t, "ranges") {
			set = append(set, imap.SeqRange{Start: genSeqNum.Draw(t, "start"), Stop: genSeqNum.Draw(t, "stop")})
		}
		return Seq{Set: set}
	case 8:
		var set imap.UIDSet
		for range rapid.IntRange(1, 4).Draw(t, "ranges") {
			set = append(set, imap.UIDRange{Start: imap.UID(genSeqNum.Draw(t, "start")), Stop: imap.UID(genSeqNum.Draw(t, "stop"))})
		}
		return UID{Set: set}
	case 9:
		return Folder{Name: genFolder.Draw(t, "folder")}
	case 10:
		names := rapid.SliceOfNDistinct(genFolder, 1, 3, rapid.ID[string]).Draw(t, "folders")
		return OnlyFolder{Names: names}
	case 11:
		return Not{X: genNode(t, depth+1)}
	case 12:
		return Or{A: genNode(t, depth+1), B: genNode(t, depth+1)}
	default:
		var a And
		for range rapid.IntRange(2, 4).Draw(t, "and") {
			a = append(a, genNode(t, depth+1))
		}
		return a
	}
}

func TestRoundTripProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := genNode(t, 0)
		s := String(n)
		got, err := ParseDefinition(s)
		if err != nil {
			t.Fatalf("ParseDefinition(%q): %v", s, err)
		}
		if d := cmp.Diff(n, got); d != "" {
			t.Fatalf("round trip of %q (-want +got):\n%s", s, d)
		}
		if s2 := String(got); s2 != s {
			t.Fatalf("String not stable: %q vs %q", s, s2)
		}
	})
}

func FuzzParseDefinition(f *testing.F) {
	for _, s := range []string{"ALL", "OR FROM golang-nuts HEADER List-Id golang", "UNSEEN SINCE 1-Nov-2026",
		`NOT (SUBJECT "a\"b" 1:3,5,7:*) UID 4:*`, "((((", `KEYWORD \Seen LARGER 10`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseDefinition(s)
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("non-syntax error %T: %v", err, err)
			}
			return
		}
		// Whatever parses must round-trip, compile and evaluate without panicking.
		c := String(n)
		n2, err := ParseDefinition(c)
		if err != nil {
			t.Fatalf("canonical %q of %q does not parse: %v", c, s, err)
		}
		if d := cmp.Diff(n, n2); d != "" {
			t.Fatalf("round trip %q → %q:\n%s", s, c, d)
		}
		env := &Env{Msg: "m", Member: "mm", Texts: "mt", MaxUID: 10, Recent: []uint32{3},
			SeqToUID: func(s imap.SeqSet) (imap.UIDSet, error) { return imap.UIDSet{ur(1, 2)}, nil }}
		if _, err := Compile(n, env); err != nil {
			t.Fatalf("Compile(%q): %v", c, err)
		}
		Eval(n, &Msg{UID: 1, Seq: 1, HeaderText: "Subject: x\n"}, 10, 10)
	})
}

func FuzzParseArgs(f *testing.F) {
	f.Add("SUBJECT", "x", "y")
	f.Fuzz(func(t *testing.T, a, b, c string) {
		args := []Arg{{Kind: Atom, S: a}, {Kind: Str, S: b}, {Kind: List, List: []Arg{{Kind: Atom, S: c}, {Kind: Str, S: a}}}, {Kind: Atom, S: c}}
		for i := 1; i <= len(args); i++ {
			_, _ = Parse(args[:i])
			_, _ = Parse(args[len(args)-i:])
		}
	})
}

func sr(a, b uint32) imap.SeqRange { return imap.SeqRange{Start: a, Stop: b} }
func ur(a, b uint32) imap.UIDRange { return imap.UIDRange{Start: imap.UID(a), Stop: imap.UID(b)} }

// "$" (SEARCHRES) is the saved node as a sequence-set key and as the set of
// UID, also nested; without ParseSaved it is no key, and as a text operand
// ("SUBJECT $", "KEYWORD $x") it stays text.
func TestParseSaved(t *testing.T) {
	saved := UID{Set: imap.UIDSet{{Start: 3, Stop: 4}}}
	a := func(s string) Arg { return Arg{Kind: Atom, S: s} }
	for _, tt := range []struct {
		args []Arg
		want Node
	}{
		{[]Arg{a("$")}, saved},
		{[]Arg{a("UID"), a("$")}, saved},
		{[]Arg{a("OR"), a("$"), a("1"), a("SUBJECT"), a("$")},
			And{Or{A: saved, B: Seq{Set: imap.SeqSet{{Start: 1, Stop: 1}}}}, Text{Key: "SUBJECT", Value: "$"}}},
		{[]Arg{{Kind: List, List: []Arg{a("NOT"), a("$")}}}, Not{X: saved}},
	} {
		got, err := ParseSaved(tt.args, saved)
		if err != nil {
			t.Fatalf("%v: %v", tt.args, err)
		}
		if d := cmp.Diff(tt.want, got); d != "" {
			t.Errorf("%v (-want +got):\n%s", tt.args, d)
		}
	}
	for _, args := range [][]Arg{{a("$")}, {a("UID"), a("$")}} {
		if _, err := Parse(args); err == nil {
			t.Errorf("Parse(%v) without a saved result: no error", args)
		}
	}
	if _, err := ParseSaved([]Arg{a("$,1")}, saved); err == nil {
		t.Error(`"$,1" parsed: "$" is a whole sequence-set (rfc9051.txt:7047)`)
	}
}
