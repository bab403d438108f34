package imaptest

import (
	"strings"
	"testing"
)

func lines(t *testing.T, ss ...string) []*Resp {
	t.Helper()
	var out []*Resp
	for _, s := range ss {
		r, err := ParseLine(s)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

func TestDiffRules(t *testing.T) {
	for _, tc := range []struct {
		got, want string
		equal     bool
	}{
		{`* 1 FETCH (FLAGS (\Seen \Recent) UID 1)`, `* 1 FETCH (UID 1 FLAGS (\Recent \Seen))`, true},
		{`* 1 FETCH (FLAGS (\Seen \Recent) UID 1)`, `* 1 FETCH (uid 1 flags (\recent \SEEN))`, true},
		{`* 1 FETCH (FLAGS (\Seen \Recent) UID 1)`, `* 1 FETCH (FLAGS (\Recent) UID 1)`, false},
		{`* 1 FETCH (FLAGS (\Seen) UID 1)`, `* 1 FETCH (FLAGS (\Seen))`, false},
		{`* 1 FETCH (UID 1 UID 1)`, `* 1 FETCH (UID 1)`, false},
		{`* 1 FETCH (BODY[] {5}` + "\r\n" + `hello)`, `* 1 FETCH (BODY[] "hello")`, true},
		{`* 1 FETCH (BODY[HEADER.FIELDS (Subject)] "x")`, `* 1 FETCH (BODY[HEADER.FIELDS (SUBJECT)] "x")`, true},
		{`* 1 FETCH (ENVELOPE ("a" "b"))`, `* 1 FETCH (ENVELOPE ("b" "a"))`, false},
		{`* STATUS "INBOX" (MESSAGES 2 UIDNEXT 3)`, `* STATUS "INBOX" (UIDNEXT 3 MESSAGES 2)`, true},
		{`* STATUS "INBOX" (MESSAGES 2)`, `* STATUS INBOX (MESSAGES 2)`, false}, // quoting is kept
		{`* SEARCH 3 1 2`, `* SEARCH 1 2 3`, true},
		{`* SEARCH 1 2`, `* SEARCH 1 2 3`, false},
		{`* LIST (\HasNoChildren \Sent) "/" "Sent"`, `* LIST (\Sent \HasNoChildren) "/" "Sent"`, true},
		{`* OK [PERMANENTFLAGS (\Seen \*)] ok`, `* OK [PERMANENTFLAGS (\* \Seen)] ok`, true},
		{`* OK [UIDNEXT 3] predicted next UID`, `* OK [UIDNEXT 3] predicted next uid`, false}, // text is exact
		{`t1 OK [COPYUID 9 1:2 3:4] done`, `t1 OK [COPYUID 9 1:2 3:4] done`, true},
		{`t1 OK [COPYUID 9 1:2 3:4] done`, `t2 OK [COPYUID 9 1:2 3:4] done`, false},
		{`* 3 EXISTS`, `* 3 exists`, true},
		{`* 3 EXISTS`, `* 3 RECENT`, false},
	} {
		d := Diff(lines(t, tc.got), tc.want)
		if (d == "") != tc.equal {
			t.Errorf("Diff(%q, %q): equal=%v, want %v\n%s", tc.got, tc.want, d == "", tc.equal, d)
		}
	}
	if d := Diff(lines(t, `* 1 EXISTS`)); d == "" {
		t.Error("an extra response was not reported")
	}
	if d := Diff(nil, `* 1 EXISTS`); d == "" {
		t.Error("a missing response was not reported")
	}
}

// The diff names what differs, deep in a FETCH response.
func TestDiffShowsFlag(t *testing.T) {
	d := Diff(lines(t, `* 1 FETCH (UID 1 FLAGS (\Recent))`), `* 1 FETCH (UID 1 FLAGS (\Seen \Recent))`)
	removed := false // go-cmp varies its whitespace on purpose: look for the line
	for _, l := range strings.Split(d, "\n") {
		removed = removed || strings.HasPrefix(strings.TrimSpace(l), "-") && strings.Contains(l, "imaptest.Word(`\\Seen`)")
	}
	if !removed || !strings.Contains(d, "-want +got") || !strings.Contains(d, `"FLAGS": imaptest.Set{`) {
		t.Errorf("the diff does not show the missing \\Seen in the FLAGS set:\n%s", d)
	}
}

func TestDiffExact(t *testing.T) {
	got := lines(t, `* 1 FETCH (RFC822.SIZE 5 BODY[HEADER.FIELDS (subject)] {3}`+"\r\n"+`x`+"\r\n"+`)`)
	for _, want := range []string{
		"* 1 FETCH (BODY[HEADER.FIELDS (subject)] {3}\r\nx\r\n RFC822.SIZE 5)",                     // order
		`* 1 FETCH (RFC822.SIZE 5 BODY[HEADER.FIELDS (Subject)] {3}` + "\r\n" + `x` + "\r\n" + `)`, // spelling
	} {
		if diff(got, []string{want}, true) == "" {
			t.Errorf("exact comparison accepted %q", want)
		}
		if d := diff(got, []string{want}, false); d != "" {
			t.Error(d)
		}
	}
	if d := diff(got, []string{"* 1 FETCH (RFC822.SIZE 5 BODY[HEADER.FIELDS (subject)] {3}\r\nx\r\n)"}, true); d != "" {
		t.Error(d)
	}
}

func TestDiffDone(t *testing.T) {
	done := lines(t, `t7 NO [TRYCREATE] no such mailbox`)[0]
	if d := DiffDone(done, "NO [TRYCREATE] no such mailbox"); d != "" {
		t.Error(d)
	}
	if d := DiffDone(done, "NO [CANNOT] no such mailbox"); d == "" {
		t.Error("different code accepted")
	}
}
