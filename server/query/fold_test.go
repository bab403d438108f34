package query

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestFold(t *testing.T) {
	for _, c := range []struct{ a, b string }{
		{"MÜNCHEN", "München"}, {"MÜNCHEN", "mu\u0308nchen"}, {"ß", "SS"}, {"ẞ", "ss"}, {"Straße", "STRASSE"},
		{"Σ", "σ"}, {"ς", "σ"}, {"ΟΔΥΣΣΕΥΣ", "Οδυσσευς"}, {"İ", "i\u0307"}, {"ﬁ", "FI"}, {"Ａ", "a"}, {"Ǆ", "ǆ"},
		{"K", "\u212a"}, {"café", "CAFÉ"}, {"Ärger", "ärger"},
	} {
		if Fold(c.a) != Fold(c.b) {
			t.Errorf("Fold(%q) = %q, Fold(%q) = %q: want equal", c.a, Fold(c.a), c.b, Fold(c.b))
		}
	}
	for _, c := range []struct{ a, b string }{{"ı", "i"}, {"ı", "I"}, {"é", "e"}} {
		if Fold(c.a) == Fold(c.b) {
			t.Errorf("Fold(%q) = Fold(%q) = %q: want different", c.a, c.b, Fold(c.a))
		}
	}
	if !strings.Contains(Fold("Ihr Flug nach München"), Fold("MÜNCHEN")) {
		t.Error("MÜNCHEN not found in München")
	}
}

// TestFoldEveryRune: for every code point, Fold is idempotent and leaves
// no ASCII capital (the compiler relies on ILIKE changing nothing more),
// and it never produces a newline (HEADER matches line by line).
func TestFoldEveryRune(t *testing.T) {
	for r := rune(0); r <= unicode.MaxRune; r++ {
		if !utf8.ValidRune(r) {
			continue
		}
		s := "x" + string(r) + "Y"
		f := Fold(s)
		if ff := Fold(f); ff != f {
			t.Errorf("U+%04X: Fold %q, Fold of that %q", r, f, ff)
		}
		if strings.IndexFunc(f, func(c rune) bool { return c >= 'A' && c <= 'Z' }) >= 0 {
			t.Errorf("U+%04X: Fold %q has an ASCII capital", r, f)
		}
		if r != '\n' && strings.Contains(f, "\n") {
			t.Errorf("U+%04X: Fold %q has a newline", r, f)
		}
	}
}
