package query

import (
	"strings"
	"testing"

	"pgregory.net/rapid"
)

// dpMatch is the reference: the dynamic program imapd used before issue
// 13 (pattern × name steps), with the same INBOX folding.
func dpMatch(pat, name string) bool {
	fold := name == "INBOX" || strings.HasPrefix(name, "INBOX/")
	ok := make([]bool, len(name)+1)
	next := make([]bool, len(name)+1)
	ok[0] = true
	for k := 0; k < len(pat); k++ {
		p := pat[k]
		switch p {
		case '*':
			seen := false
			for j := range ok {
				seen = seen || ok[j]
				next[j] = seen
			}
		case '%':
			seen := false
			for j := range ok {
				if j > 0 && name[j-1] == '/' {
					seen = false
				}
				seen = seen || ok[j]
				next[j] = seen
			}
		default:
			next[0] = false
			for j := 1; j <= len(name); j++ {
				c := name[j-1]
				eq := c == p
				if !eq && fold && j <= 5 {
					eq = asciiLower(string(c)) == asciiLower(string(p))
				}
				next[j] = ok[j-1] && eq
			}
		}
		ok, next = next, ok
	}
	return ok[len(name)]
}

func TestListPatternExamples(t *testing.T) {
	for _, tt := range []struct {
		pat, name string
		want      bool
	}{
		{"*", "a/b/c", true}, {"%", "a/b", false}, {"%", "abc", true}, {"%", "", true},
		{"a/%", "a/b", true}, {"a/%", "a/b/c", false}, {"a/*", "a/b/c", true}, {"a/*", "a", false},
		{"*a%b", "a/ab", true}, {"%a%b", "a/ab", false}, {"a%b", "aab", true}, {"a%b", "a/b", false},
		{"*/%", "a/b", true}, {"*/%", "a/b/c", true}, {"%/%", "a/b/c", false}, {"*x*", "a/x/b", true},
		{"*a/%/b*", "a/x/b", true}, {"*a/%/b*", "a/x/y/b", false}, {"*a/%/b*", "ya/x/a/y/bz", true},
		{"inbox", "INBOX", true}, {"InBo%", "INBOX", true}, {"inb*", "INBOX/x", true}, {"*box", "INBOX", true},
		{"*X", "INBOX/x", false}, {"*x", "INBOX/x", true}, {"INBOX/%", "INBOX/Sent", true},
		{"inbox", "Inbox", false}, {"%%%%%", "abc", true}, {"*%*%", "a/b", true}, {"", "", true}, {"", "a", false},
	} {
		if got := CompileListPattern(tt.pat, '/').Match(tt.name); got != tt.want {
			t.Errorf("%q matching %q = %v, want %v", tt.pat, tt.name, got, tt.want)
		}
		if ref := dpMatch(tt.pat, tt.name); ref != tt.want {
			t.Errorf("reference: %q matching %q = %v, want %v", tt.pat, tt.name, ref, tt.want)
		}
	}
}

// The compiled matcher agrees with the dynamic program on every pattern
// and name over a small alphabet that makes overlaps likely.
func TestListPatternMatchesReference(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		pat := rapid.StringOfN(rapid.SampledFrom([]rune("ab/*%Inx")), 0, 12, -1).Draw(t, "pattern")
		name := rapid.StringOfN(rapid.SampledFrom([]rune("ab/x")), 0, 14, -1).Draw(t, "name")
		if rapid.Bool().Draw(t, "inbox") {
			name = "INBOX" + name
		}
		if got, want := CompileListPattern(pat, '/').Match(name), dpMatch(pat, name); got != want {
			t.Fatalf("%q matching %q = %v, the dynamic program says %v", pat, name, got, want)
		}
	})
}

// Issue 13: LIST "" <200 KB of %> over one long name took 15.6 s of CPU
// (pattern × name). Matching now takes steps linear in the name, whatever
// the pattern's size: counted, not timed.
func TestListPatternStepsLinear(t *testing.T) {
	name := strings.Repeat("a", 999) + "b"
	deep := strings.Repeat("ab/", 333)
	for _, tt := range []struct {
		what, pat, name string
	}{
		{"200 KB of %", strings.Repeat("%", 200<<10), name},
		{"1 MiB of *%", strings.Repeat("*%", 512<<10), name},
		{"1 MiB of a*", strings.Repeat("a*", 512<<10), name},
		{"almost matching literal after *", "*" + strings.Repeat("a", 500) + "c", name},
		{"many literals between *", strings.Repeat("*aa", 300) + "*b", name},
		{"literals between %", strings.Repeat("a%", 400) + "c", name},
		{"% levels", strings.Repeat("%/", 300) + "%", deep},
		{"* then levels", "*" + strings.Repeat("b/a", 200) + "*", deep},
		{"middle chunks in one level", strings.Repeat("*a%a%b", 50) + "*", name},
		{"INBOX", "in" + strings.Repeat("%", 1000) + "x*a", "INBOX/" + name},
		{"1 MiB literal", strings.Repeat("a", 1<<20), name},
	} {
		p := CompileListPattern(tt.pat, '/')
		got := p.Match(tt.name)
		// The reference takes pattern × name steps: checked where that is
		// cheap (TestListPatternMatchesReference checks the rest).
		if len(tt.pat)*len(tt.name) <= 1e6 {
			if want := dpMatch(tt.pat, tt.name); got != want {
				t.Errorf("%s: Match = %v, the dynamic program says %v", tt.what, got, want)
			}
		}
		if limit := 20 * (len(tt.name) + 1); p.Steps() > limit {
			t.Errorf("%s: %d steps for a %d-byte name (%d-byte pattern), want at most %d",
				tt.what, p.Steps(), len(tt.name), len(tt.pat), limit)
		}
	}
}
