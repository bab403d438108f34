package query

import (
	"strings"
	"testing"
)

// MODSEQ [entry-name entry-type-req] mod-sequence-valzer (rfc7162.txt:2499-2502):
// the entry is parsed and ignored, the number is 63 bits, and the key
// needs a selected mailbox (never in a definition).
func TestParseModSeq(t *testing.T) {
	for _, tc := range []struct {
		args []Arg
		want string
	}{
		{[]Arg{{Kind: Atom, S: "MODSEQ"}, {Kind: Atom, S: "5"}}, "MODSEQ 5"},
		{[]Arg{{Kind: Atom, S: "modseq"}, {Kind: Atom, S: "0"}}, "MODSEQ 0"},
		{[]Arg{{Kind: Atom, S: "MODSEQ"}, {Kind: Str, S: `/flags/\Seen`}, {Kind: Atom, S: "ALL"}, {Kind: Atom, S: "7"}, {Kind: Atom, S: "UNSEEN"}},
			`MODSEQ "/flags/\\Seen" all 7 UNSEEN`},
		{[]Arg{{Kind: Atom, S: "MODSEQ"}, {Kind: Atom, S: "9223372036854775807"}}, "MODSEQ 9223372036854775807"},
	} {
		n, err := Parse(tc.args)
		if err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		if got := String(n); got != tc.want {
			t.Errorf("%v: %s, want %s", tc.args, got, tc.want)
		}
		if !UsesModSeq(n) || !UsesSession(n) {
			t.Errorf("%s: UsesModSeq/UsesSession false", tc.want)
		}
		if !Eval(n, &Msg{ModSeq: 9223372036854775807}, 1, 1) || Eval(n, &Msg{ModSeq: -1}, 1, 1) {
			t.Errorf("%s: Eval disagrees with >=", tc.want)
		}
	}
	for _, args := range [][]Arg{
		{{Kind: Atom, S: "MODSEQ"}},
		{{Kind: Atom, S: "MODSEQ"}, {Kind: Atom, S: "x"}},
		{{Kind: Atom, S: "MODSEQ"}, {Kind: Atom, S: "-1"}},
		{{Kind: Atom, S: "MODSEQ"}, {Kind: Atom, S: "9223372036854775808"}},
		{{Kind: Atom, S: "MODSEQ"}, {Kind: Str, S: "/other/x"}, {Kind: Atom, S: "all"}, {Kind: Atom, S: "1"}},
		{{Kind: Atom, S: "MODSEQ"}, {Kind: Str, S: `/flags/\Seen`}, {Kind: Atom, S: "both"}, {Kind: Atom, S: "1"}},
		{{Kind: Atom, S: "MODSEQ"}, {Kind: Str, S: `/flags/\Seen`}, {Kind: Atom, S: "1"}},
	} {
		if n, err := Parse(args); err == nil {
			t.Errorf("%v: parsed as %s, want an error", args, String(n))
		}
	}
	// A definition may parse it, but the store refuses programs that
	// use session state (store.compileDefinition), and it compiles
	// nowhere without a membership relation.
	if n, err := ParseDefinition("MODSEQ 5"); err != nil || !UsesSession(n) {
		t.Errorf("MODSEQ in a definition: %v, UsesSession false", err)
	}
	if _, err := Compile(ModSeq{N: 5}, &Env{Msg: "m"}); err == nil || !strings.Contains(err.Error(), "MODSEQ") {
		t.Errorf("MODSEQ compiled without a membership: %v, want an error naming it", err)
	}
	env := &Env{Msg: "m", Flags: "f", Member: "mm"}
	sql, err := Compile(ModSeq{N: 3}, env)
	if err != nil || sql != "greatest(mm.modseq, f.modseq) >= $1::bigint" || env.Args[0] != int64(3) {
		t.Errorf("Compile: %q %v %v", sql, env.Args, err)
	}
}
