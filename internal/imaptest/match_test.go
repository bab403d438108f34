package imaptest

import (
	"bufio"
	"strings"
	"testing"
)

func exp(t *testing.T, s string) *Resp {
	t.Helper()
	r, err := ParseResp([]Frag{{Text: s}}, true, func(string) ([]byte, error) { return []byte("file\r\n"), nil })
	if err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return r
}

func wire(t *testing.T, s string) *Resp {
	t.Helper()
	r, err := ReadResp(bufio.NewReader(strings.NewReader(s)))
	if err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return r
}

func TestMatchResp(t *testing.T) {
	for _, tc := range []struct {
		exp, got string
		ok       bool
	}{
		{`* 5 EXISTS`, "* 5 EXISTS\r\n", true},
		{`* 5 EXISTS`, "* 4 EXISTS\r\n", false},
		{`* 5 exists`, "* 5 EXISTS\r\n", true},
		{`a1 OK *`, "a1 OK [READ-WRITE] done\r\n", true},
		{`a1 OK [READ-WRITE] *`, "a1 OK [READ-ONLY] done\r\n", false},
		{`a1 OK [READ-WRITE] *`, "a1 OK done\r\n", false},
		{`a1 OK *`, "a2 OK done\r\n", false},
		{`a1 NO *`, "a1 OK done\r\n", false},
		{`a1 OK [UIDVALIDITY ?] U*`, "a1 OK [UIDVALIDITY 9] UIDs\r\n", true},
		{`+ *`, "+ idling\r\n", true},
		{`* FLAGS (\Seen \Answered)`, "* FLAGS (\\Answered \\Seen)\r\n", true},
		{`* FLAGS (\Seen)`, "* FLAGS (\\Answered \\Seen)\r\n", false},
		{`* FLAGS (\Seen *)`, "* FLAGS (\\Answered \\Seen)\r\n", true},
		{`* OK [PERMANENTFLAGS (\Seen \*)] *`, "* OK [PERMANENTFLAGS (\\* \\Seen)] x\r\n", true},
		{`* LIST (\Noselect *) "/" Lists`, "* LIST (\\HasChildren \\Noselect) \"/\" \"Lists\"\r\n", true},
		{`* LIST () "/" ?`, "* LIST (\\HasNoChildren) \"/\" INBOX\r\n", false},
		{`* 1 FETCH (UID 7 FLAGS (\Seen))`, "* 1 FETCH (FLAGS (\\Seen) UID 7)\r\n", true},
		{`* 1 FETCH (UID 7)`, "* 1 FETCH (FLAGS (\\Seen) UID 7)\r\n", false},
		{`* 1 FETCH (UID 7 *)`, "* 1 FETCH (FLAGS (\\Seen) UID 7)\r\n", true},
		{`* 1 FETCH (BODY[HEADER.FIELDS (Subject)] "x")`, "* 1 FETCH (BODY[HEADER.FIELDS (SUBJECT)] {1}\r\nx)\r\n", true},
		{`* 1 FETCH (BODY[] "a\r\nb")`, "* 1 FETCH (BODY[] {4}\r\na\r\nb)\r\n", false}, // quoted: no escapes for CRLF
		{`* 1 FETCH (BODY[] {@f})`, "* 1 FETCH (BODY[] {6}\r\nfile\r\n)\r\n", true},
		{`* 1 FETCH (BODY[] ?)`, "* 1 FETCH (BODY[] NIL)\r\n", true},
		{`* 1 FETCH (ENVELOPE (? "Hi" *))`, "* 1 FETCH (ENVELOPE (\"d\" \"Hi\" NIL NIL))\r\n", true},
		{`* 1 FETCH (ENVELOPE (? NIL *))`, "* 1 FETCH (ENVELOPE (\"d\" \"NIL\" NIL))\r\n", false},
		{`* 1 FETCH (BODYSTRUCTURE (i"TEXT" i"PLAIN" *))`, "* 1 FETCH (BODYSTRUCTURE (\"text\" \"plain\" NIL))\r\n", true},
		{`* 1 FETCH (BODYSTRUCTURE ("TEXT" *))`, "* 1 FETCH (BODYSTRUCTURE (\"text\" NIL))\r\n", false},
		{`* STATUS INBOX (UIDNEXT 6 MESSAGES 5)`, "* STATUS \"INBOX\" (MESSAGES 5 UIDNEXT 6)\r\n", true},
		{`* SEARCH 1 2 3`, "* SEARCH 1 2 3\r\n", true},
		{`* SEARCH 1 2 3`, "* SEARCH 1 3 2\r\n", true},
		{`* SEARCH 1 2`, "* SEARCH 1 3 2\r\n", false},
		{`* SEARCH 1 *`, "* SEARCH 1 3 2\r\n", true},
		{`* SEARCH`, "* SEARCH\r\n", true},
		{`* 1 FETCH (FLAGS ($$Forwarded))`, "* 1 FETCH (FLAGS ($Forwarded))\r\n", true},
		{`* 1 FETCH (FLAGS ($$Forwarded))`, "* 1 FETCH (FLAGS ($Junk))\r\n", false},
	} {
		_, ok := MatchResp(exp(t, tc.exp), wire(t, tc.got), Bindings{})
		if ok != tc.ok {
			t.Errorf("match(%q, %q) = %v, want %v", tc.exp, tc.got, ok, tc.ok)
		}
	}
}

func TestGlob(t *testing.T) {
	for _, tc := range []struct {
		pat, s string
		ok     bool
	}{{"*", "", true}, {"a*c", "abc", true}, {"a*c", "abd", false}, {"*ok*", "is ok here", true}, {"x", "y", false}} {
		if glob(tc.pat, tc.s) != tc.ok {
			t.Errorf("glob(%q, %q) != %v", tc.pat, tc.s, tc.ok)
		}
	}
}

func TestMatchStatus(t *testing.T) {
	for _, tc := range []struct {
		got, pat string
		ok       bool
	}{
		{"t1 NO [TRYCREATE] no such mailbox\r\n", "NO [TRYCREATE] *", true},
		{"t1 NO [TRYCREATE] no such mailbox\r\n", "NO [CANNOT] *", false},
		{"t1 NO [TRYCREATE] no such mailbox\r\n", "NO *", true},
		{"t1 NO no such mailbox\r\n", "NO [TRYCREATE] *", false},
		{"t1 BAD syntax\r\n", "NO *", false},
		{"t1 OK [MAILBOXID (M12)] CREATE completed\r\n", "OK [MAILBOXID (?)] CREATE completed", true},
		{"t1 OK [MAILBOXID (M12)] CREATE completed\r\n", "OK [MAILBOXID (?)] CREATE done", false},
		{"* OK [UNSEEN 2] first unseen\r\n", "OK [UNSEEN 2] *", true},
		{"* 2 EXISTS\r\n", "OK *", false},
	} {
		if got := MatchStatus(wire(t, tc.got), tc.pat); got != tc.ok {
			t.Errorf("MatchStatus(%q, %q) = %v", tc.got, tc.pat, got)
		}
	}
}

func TestMatch(t *testing.T) {
	r := wire(t, "* STATUS \"INBOX\" (SIZE 1234)\r\n")
	if !Match(r, `* STATUS "INBOX" (SIZE ?)`) || Match(r, `* STATUS "INBOX" (MESSAGES ?)`) || Match(nil, "* ?") {
		t.Error("Match")
	}
}
