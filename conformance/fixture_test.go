package conformance

import "testing"

func TestSplitDefine(t *testing.T) {
	for _, c := range []struct{ in, name, def string }{
		{`Flagged FLAGGED`, "Flagged", "FLAGGED"},
		{`"All Mail" ALL`, "All Mail", "ALL"},
		{`Go OR FROM golang SUBJECT go`, "Go", "OR FROM golang SUBJECT go"},
	} {
		name, def, ok := splitDefine(c.in)
		if !ok || name != c.name || def != c.def {
			t.Errorf("splitDefine(%q) = %q, %q, %v; want %q, %q", c.in, name, def, ok, c.name, c.def)
		}
	}
	for _, bad := range []string{``, `Flagged`, `"Unclosed ALL`, `"" ALL`} {
		if _, _, ok := splitDefine(bad); ok {
			t.Errorf("splitDefine(%q) accepted", bad)
		}
	}
}
