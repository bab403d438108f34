package query

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"pgregory.net/rapid"
)

// Issue 13: `UID SEARCH HEADER X a HEADER X a …` compiled every copy, and
// Postgres' planner spent time quadratic in their number (5,000 copies: more
// than 13 minutes, 17.9 GB). N copies of a condition now compile to the SQL
// of one.
func TestCompileRepeatedTermsCostOne(t *testing.T) {
	for _, term := range []string{
		"HEADER X a", "TEXT a", "BODY a", "SUBJECT a", "KEYWORD k", "UID 1:5", "2:4",
		"OR FROM a SEEN", "NOT TEXT a", "(BODY a UNSEEN)", "NOT NOT HEADER Subject x",
	} {
		one, oneArgs := compileProgram(t, term)
		many, manyArgs := compileProgram(t, strings.TrimSpace(strings.Repeat(term+" ", 5000)))
		if many != one {
			t.Errorf("%q × 5000: %d bytes of SQL, one copy %d:\n%.300s", term, len(many), len(one), many)
		}
		if d := cmp.Diff(oneArgs, manyArgs); d != "" {
			t.Errorf("%q × 5000: args differ from one copy's (-one +many):\n%.500s", term, d)
		}
	}
}

// Only the first splitTexts text conditions are written for the indexes
// (compiler.text); the others are plain, so a program of many distinct
// text keys plans in linear time.
func TestCompileSplitsFewTextConditions(t *testing.T) {
	for _, key := range []string{"TEXT a%d", "BODY a%d", "HEADER X a%d", "OR TEXT a%d SEEN", "NOT BODY a%d"} {
		var b strings.Builder
		for i := range 1000 {
			fmt.Fprintf(&b, key+" ", i)
		}
		sql, _ := compileProgram(t, b.String())
		if got := strings.Count(sql, "NOT mt.indexed"); got != splitTexts {
			t.Errorf("%q × 1000: %d text conditions split for the index, want %d", key, got, splitTexts)
		}
	}
}

func compileProgram(t *testing.T, prog string) (string, []any) {
	t.Helper()
	n, err := ParseDefinition(prog)
	if err != nil {
		t.Fatalf("%.80q: %v", prog, err)
	}
	env := sessionEnv()
	sql, err := Compile(n, env)
	if err != nil {
		t.Fatalf("%.80q: %v", prog, err)
	}
	return sql, env.Args
}

func TestNormalize(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"SEEN SEEN", "SEEN"},
		{"SEEN (FLAGGED (SEEN DRAFT)) FLAGGED", "SEEN FLAGGED DRAFT"},
		{"ALL SEEN ALL", "SEEN"},
		{"ALL ALL", "ALL"},
		{"OR SEEN OR FLAGGED SEEN", "OR SEEN FLAGGED"},
		{"OR OR SEEN FLAGGED OR DRAFT SEEN", "OR SEEN OR FLAGGED DRAFT"},
		{"OR SEEN SEEN", "SEEN"},
		{"OR SEEN ALL", "ALL"},
		{"NOT NOT SEEN", "SEEN"},
		{"NOT NOT NOT SEEN", "NOT SEEN"},
		{"NOT (NOT SEEN NOT SEEN)", "SEEN"},
		{"OR (SEEN FLAGGED) (FLAGGED SEEN)", "OR (SEEN FLAGGED) (FLAGGED SEEN)"}, // no reordering
		{"OR (SEEN SEEN) (OR FLAGGED FLAGGED)", "OR SEEN FLAGGED"},
		{"HEADER X a HEADER x a HEADER X A", "HEADER X a HEADER x a HEADER X A"}, // strings compare exactly
		{"UID 1:3 UID 1:3 UID 3:1", "UID 1:3 UID 3:1"},
		{"SINCE 1-Nov-2026 SINCE 01-nov-2026", "SINCE 1-Nov-2026"},
	} {
		n, err := ParseDefinition(tt.in)
		if err != nil {
			t.Fatalf("%q: %v", tt.in, err)
		}
		if got := String(Normalize(n)); got != tt.want {
			t.Errorf("Normalize(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// Normalize keeps the meaning of every program (Eval) and is idempotent;
// programs are drawn with copies of their parts to have something to remove.
func TestNormalizeProperty(t *testing.T) {
	msgs := []*Msg{
		{UID: 3, Seq: 1, Seen: true, Keywords: []string{"k"}, Subject: "hello", HeaderText: "Subject: hello\nX-A: b\n", BodyText: "some body",
			InternalDay: day(2026, 11, 1), SentDay: day(2026, 10, 31), Size: 100},
		{UID: 7, Seq: 2, Flagged: true, Recent: true, From: "a@b", HeaderText: "From: a@b\n", BodyText: "", InternalDay: day(2020, 1, 1), Size: 5000},
		{UID: 9, Seq: 3, Deleted: true, Draft: true, Answered: true},
	}
	rapid.Check(t, func(t *rapid.T) {
		a, b := genNode(t, 1), genNode(t, 1)
		var n Node
		switch rapid.IntRange(0, 4).Draw(t, "shape") {
		case 0:
			n = And{a, b, a}
		case 1:
			n = Or{A: a, B: Or{A: b, B: a}}
		case 2:
			n = And{Not{X: Not{X: a}}, Or{A: b, B: b}}
		case 3:
			n = Or{A: And{a, All{}}, B: Not{X: b}}
		default:
			n = a
		}
		norm := Normalize(n)
		for i, m := range msgs {
			if got, want := Eval(norm, m, 10, 3), Eval(n, m, 10, 3); got != want {
				t.Fatalf("message %d: Eval(Normalize(%q) = %q) = %v, Eval of the program %v", i, String(n), String(norm), got, want)
			}
		}
		if again := String(Normalize(norm)); again != String(norm) {
			t.Fatalf("not idempotent: %q → %q → %q", String(n), String(norm), again)
		}
		if Terms(norm) > Terms(n) {
			t.Fatalf("Normalize(%q) = %q has more terms", String(n), String(norm))
		}
	})
}

// A deep program is normalised in time linear in its size: NOT NOT … around
// a long AND does not normalise the AND once per level.
func TestNormalizeDeepIsLinear(t *testing.T) {
	var body strings.Builder
	for i := range 20000 {
		fmt.Fprintf(&body, "SUBJECT s%d ", i)
	}
	prog := strings.Repeat("NOT (", 49) + body.String() + strings.Repeat(")", 49)
	n, err := ParseDefinition(prog)
	if err != nil {
		t.Fatal(err)
	}
	h := &hashCons{ids: map[string]int{}}
	got := h.norm(n).n
	// Each of the 20,000 leaves, the AND and the 49 NOTs is visited once.
	if h.visits != 20000+1+49 {
		t.Fatalf("%d nodes visited, want %d", h.visits, 20050)
	}
	if _, ok := got.(Not); !ok || Terms(got) != 20000 {
		t.Fatalf("NOT × 49 (AND of 20,000) normalised to a %T of %d terms", got, Terms(got))
	}
}

func TestLimitsPrepare(t *testing.T) {
	distinct := func(n int, key string) string {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, key+" ", i)
		}
		return b.String()
	}
	long := strings.Repeat("x", DefaultMaxValue+1)
	for _, tt := range []struct {
		name string
		l    Limits
		prog string
		what string // "" = accepted
	}{
		{"5000 copies are one term", Limits{}, strings.Repeat("HEADER X a ", 5000), ""},
		{"1000 distinct", Limits{}, distinct(DefaultMaxTerms, "BODY a%d"), ""},
		{"1001 distinct", Limits{}, distinct(DefaultMaxTerms+1, "BODY a%d"), "search keys"},
		{"keys inside OR and NOT count", Limits{MaxTerms: 3}, "OR SEEN NOT FLAGGED (DRAFT DELETED)", "search keys"},
		{"custom limit", Limits{MaxTerms: 4}, "OR SEEN NOT FLAGGED (DRAFT DELETED)", ""},
		{"no limit", Limits{MaxTerms: -1}, distinct(5000, "TO a%d"), ""},
		{"value at the limit", Limits{}, "BODY " + long[1:], ""},
		{"long value", Limits{}, "BODY " + long, "bytes in a search string"},
		{"long HEADER value", Limits{}, "HEADER Subject " + long, "bytes in a search string"},
		{"long field name", Limits{}, "HEADER " + long + " x", "bytes in a search string"},
		{"long keyword", Limits{}, "KEYWORD " + long, "bytes in a search string"},
		{"long value in a copy", Limits{}, "OR SEEN NOT (SUBJECT " + long + ")", "bytes in a search string"},
		{"value limit off", Limits{MaxValue: -1}, "TEXT " + strings.Repeat("y", 60000), ""},
	} {
		n, err := ParseDefinition(tt.prog)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		got, err := tt.l.Prepare(n)
		var le *LimitError
		switch {
		case tt.what == "" && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case tt.what == "" && Terms(got) > Terms(n):
			t.Errorf("%s: more terms after Prepare", tt.name)
		case tt.what != "" && !errors.As(err, &le):
			t.Errorf("%s: err = %v, want a LimitError", tt.name, err)
		case tt.what != "" && le.What != tt.what:
			t.Errorf("%s: %v, want one about %s", tt.name, err, tt.what)
		}
	}
}

func TestLimitErrorText(t *testing.T) {
	err := error(&LimitError{What: "search keys", Got: 1200, Max: 1000})
	if got := err.Error(); got != "search: 1200 search keys, at most 1000 allowed" {
		t.Fatalf("%q", got)
	}
}
