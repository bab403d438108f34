package query

import (
	"reflect"
	"testing"
)

func TestSplitFlags(t *testing.T) {
	for _, tc := range []struct {
		def, flags, rest string
		ok               bool
	}{
		{"UNSEEN HEADER List-Id x", "UNSEEN", "HEADER List-Id x", true},
		{"UNSEEN", "", "", false},
		{"FROM a (OR SEEN FLAGGED) LARGER 10 UNKEYWORD k", "(OR SEEN FLAGGED) UNKEYWORD k", "FROM a LARGER 10", true},
		{"SUBJECT x", "", "", false},
		{"OR SEEN FROM x", "", "", false},
		{"UNSEEN FOLDER INBOX", "", "", false},
		{"NOT (SEEN FROM x)", "", "", false},
	} {
		n, err := ParseDefinition(tc.def)
		if err != nil {
			t.Fatal(err)
		}
		flags, rest, ok := SplitFlags(n)
		if ok != tc.ok {
			t.Errorf("%s: ok %v, want %v", tc.def, ok, tc.ok)
			continue
		}
		if !ok {
			continue
		}
		wf, _ := ParseDefinition(tc.flags)
		wr, _ := ParseDefinition(tc.rest)
		if !reflect.DeepEqual(flags, wf) || !reflect.DeepEqual(rest, wr) {
			t.Errorf("%s: got %#v / %#v, want %#v / %#v", tc.def, flags, rest, wf, wr)
		}
	}
}
