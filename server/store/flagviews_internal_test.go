package store

import (
	"testing"

	"decimail/server/query"
)

// evalFlags decides only what flags decide; anything else is "unknown", so
// the view's SQL predicate gets the message.
func TestEvalFlagsThreeValued(t *testing.T) {
	seen := Flags{Seen: true}
	for _, tc := range []struct {
		def      string
		f        Flags
		v, known bool
	}{
		{"UNSEEN", seen, false, true},
		{"UNSEEN", Flags{}, true, true},
		{"UNSEEN HEADER List-Id x", seen, false, true},     // a false conjunct decides
		{"UNSEEN HEADER List-Id x", Flags{}, false, false}, // the header must be checked
		{"OR SEEN FROM bob", seen, true, true},             // a true disjunct decides
		{"OR SEEN FROM bob", Flags{}, false, false},
		{"NOT FROM bob", seen, false, false},
		{"KEYWORD work", Flags{Keywords: []string{"Work"}}, true, true},
		{"ALL", Flags{}, true, true},
		{"LARGER 10", seen, false, false},
	} {
		n, err := query.ParseDefinition(tc.def)
		if err != nil {
			t.Fatal(err)
		}
		if v, known := evalFlags(n, tc.f); known != tc.known || (known && v != tc.v) {
			t.Errorf("%s with %+v: (%v, %v), want (%v, %v)", tc.def, tc.f, v, known, tc.v, tc.known)
		}
	}
}
