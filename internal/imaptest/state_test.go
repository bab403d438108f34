package imaptest

import (
	"bufio"
	"maps"
	"slices"
	"strings"
	"testing"
)

// stateRun feeds a State a conversation: "> CMD" begins a command, "< OK"
// (NO, BAD) ends it, any other line is an untagged response, read through
// ObserveRaw as the stress line does.
func stateRun(t *testing.T, lines ...string) *State {
	t.Helper()
	s := &State{MaxSamples: 20}
	for _, l := range lines {
		switch {
		case strings.HasPrefix(l, "> "):
			s.Begin(l[2:])
		case strings.HasPrefix(l, "< "):
			s.End(l[2:])
		default:
			var raw Raw
			if err := raw.read(bufio.NewReader(strings.NewReader(l + "\r\n"))); err != nil {
				t.Fatalf("%q: %v", l, err)
			}
			s.ObserveRaw(&raw)
		}
	}
	return s
}

// selectLines is a SELECT of a mailbox of n messages with keyword $Old.
func selectLines(n string) []string {
	return []string{"> SELECT Stress",
		`* FLAGS (\Answered \Flagged \Deleted \Seen \Draft $Old)`,
		"* " + n + " EXISTS", "* 0 RECENT",
		`* OK [PERMANENTFLAGS (\Answered \Flagged \Deleted \Seen \Draft $Old \*)] ok`,
		"* OK [UIDVALIDITY 7] ok", "* OK [UIDNEXT 10] ok",
		"< OK"}
}

func TestStateChecker(t *testing.T) {
	for _, tt := range []struct {
		name  string
		lines []string
		want  map[string]int // error classes; nil: none
	}{
		{"a consistent session", append(selectLines("3"),
			"> UID FETCH 1:* (UID FLAGS)",
			`* 1 FETCH (UID 4 FLAGS (\Seen $Old))`, `* 3 FETCH (UID 9 FLAGS ())`, `* 2 FETCH (UID 5 FLAGS (\Recent))`,
			"< OK",
			"> UID STORE 9 +FLAGS ($New)",
			`* FLAGS (\Answered \Flagged \Deleted \Seen \Draft $Old $New)`,
			`* OK [PERMANENTFLAGS (\Answered \Flagged \Deleted \Seen \Draft $Old $New \*)] ok`,
			`* 3 FETCH (UID 9 FLAGS ($new))`, "< OK",
			"> NOOP", "* 2 EXPUNGE", "* 3 EXISTS", `* 3 FETCH (FLAGS ($New))`, "< OK",
			"> FETCH 1:3 UID", "* 1 FETCH (UID 4)", "* 2 FETCH (UID 9)", "* 3 FETCH (UID 12)", "< OK",
			"> UID FETCH 1:* (FLAGS)", "* 1 EXPUNGE", "* 1 EXPUNGE", "< OK",
			// Reselected: the same UIDVALIDITY, numbering starts again.
			"> SELECT Stress", `* FLAGS (\Seen)`, "* 1 EXISTS", "* OK [UIDVALIDITY 7] ok", "< OK",
			"> FETCH 1 (UID)", "* 1 FETCH (UID 12)", "< OK",
		), nil},
		{"a keyword no FLAGS announced", append(selectLines("2"),
			"> UID STORE 1 +FLAGS ($Foo)", `* 1 FETCH (UID 1 FLAGS ($Foo \Seen))`, "< OK",
			// Announced after the FETCH that used it: still an error for that FETCH.
			"> NOOP", `* FLAGS (\Seen $Foo $Old)`, `* OK [PERMANENTFLAGS ($Foo $Old \*)] ok`, `* 2 FETCH (FLAGS ($Foo))`, "< OK",
		), map[string]int{"flags": 1}},
		{"FLAGS grows, PERMANENTFLAGS does not follow", append(selectLines("1"),
			"> NOOP", `* FLAGS (\Seen $Old $Foo)`, "< OK", "> NOOP", "< OK",
		), map[string]int{"permanentflags": 1}},
		{"read-only: PERMANENTFLAGS ()", []string{"> EXAMINE Stress", `* FLAGS (\Seen $Old)`, "* 1 EXISTS",
			"* OK [PERMANENTFLAGS ()] ro", "* OK [UIDVALIDITY 7] ok", "< OK",
			"> NOOP", `* FLAGS (\Seen $Old $Foo)`, "* OK [PERMANENTFLAGS ()] ro", `* 1 FETCH (FLAGS ($Foo))`, "< OK"}, nil},
		{"PERMANENTFLAGS names an unknown keyword", append(selectLines("1"),
			"> NOOP", `* OK [PERMANENTFLAGS ($Old $Other \*)] ok`, "< OK",
		), map[string]int{"permanentflags": 1}},
		{"EXISTS decreases", append(selectLines("3"), "> NOOP", "* 2 EXISTS", "< OK"), map[string]int{"exists": 1}},
		{"EXPUNGE beyond the count, count would go negative", append(selectLines("1"),
			"> NOOP", "* 1 EXPUNGE", "* 1 EXPUNGE", "* 0 EXPUNGE", "< OK"), map[string]int{"expunge": 2}},
		{"EXPUNGE during FETCH, STORE, SEARCH; allowed during their UID forms", append(selectLines("5"),
			"> FETCH 1 FLAGS", "* 5 EXPUNGE", "< OK", "> STORE 1 +FLAGS (\\Seen)", "* 4 EXPUNGE", "< OK",
			"> SEARCH ALL", "* 3 EXPUNGE", "< OK",
			"> UID FETCH 1 FLAGS", "* 2 EXPUNGE", "< OK", "> UID SEARCH ALL", "* 1 EXPUNGE", "< OK"),
			map[string]int{"expunge-forbidden": 3}},
		{"EXPUNGE outside a command", append(selectLines("2"), "* 1 EXPUNGE"), map[string]int{"expunge-forbidden": 1}},
		{"FETCH beyond the count", append(selectLines("2"), "> UID FETCH 1:* FLAGS", "* 3 FETCH (UID 7 FLAGS ())", "< OK"),
			map[string]int{"fetch-seq": 1}},
		{"UIDs not ascending", append(selectLines("3"), "> FETCH 1:3 UID",
			"* 1 FETCH (UID 5)", "* 3 FETCH (UID 4)", "* 3 FETCH (UID 7)", "* 2 FETCH (UID 8)", "< OK"), map[string]int{"uid": 2}},
		{"a UID changes at its sequence number", append(selectLines("2"), "> FETCH 1 UID",
			"* 1 FETCH (UID 5)", "* 1 FETCH (UID 6)", "< OK"), map[string]int{"uid": 1}},
		{"an expunged UID comes back", append(selectLines("2"), "> FETCH 1:2 UID",
			"* 1 FETCH (UID 5)", "* 2 FETCH (UID 6)", "< OK", "> NOOP", "* 1 EXPUNGE", "* 2 EXISTS", "< OK",
			"> UID FETCH 1:* UID", "* 2 FETCH (UID 5)", "< OK"), map[string]int{"uid": 1}},
		{"the EXPUNGE shifts the numbers: the old number is stale", append(selectLines("3"), "> FETCH 1:3 UID",
			"* 1 FETCH (UID 5)", "* 2 FETCH (UID 6)", "* 3 FETCH (UID 7)", "< OK",
			"> NOOP", "* 2 EXPUNGE", "< OK", "> FETCH 2 UID", "* 2 FETCH (UID 7)", "* 3 FETCH (UID 7)", "< OK"),
			map[string]int{"fetch-seq": 1}},
		{"UIDVALIDITY changes", append(selectLines("1"), "> SELECT Stress", `* FLAGS (\Seen)`, "* 1 EXISTS",
			"* OK [UIDVALIDITY 8] ok", "< OK"), map[string]int{"uidvalidity": 1}},
		{"SELECT without FLAGS, EXISTS, UIDVALIDITY", []string{"> SELECT Stress", "* OK [UIDNEXT 3] ok", "< OK"},
			map[string]int{"flags": 1, "exists": 1, "uidvalidity": 1}},
		{"a failed SELECT checks nothing", []string{"> SELECT Nope", "< NO"}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := stateRun(t, tt.lines...)
			if !maps.Equal(s.Errors, tt.want) && !(len(s.Errors) == 0 && len(tt.want) == 0) {
				t.Errorf("errors %v, want %v; samples:\n  %s", s.Errors, tt.want, strings.Join(s.Samples, "\n  "))
			}
			if n := s.Count(); n != sum(tt.want) {
				t.Errorf("Count %d", n)
			}
		})
	}
}

func sum(m map[string]int) int {
	n := 0
	for _, k := range slices.Sorted(maps.Keys(m)) {
		n += m[k]
	}
	return n
}
