package query

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/google/go-cmp/cmp"
)

func sessionEnv() *Env {
	return &Env{
		Msg: "m", Member: "mm", Texts: "mt", MaxUID: 50, Recent: []uint32{7, 9},
		SeqToUID: func(s imap.SeqSet) (imap.UIDSet, error) {
			// Session view: seq i ↔ uid 10*i, 5 messages.
			var out imap.UIDSet
			for _, r := range s {
				lo, hi := resolveRange(r.Start, r.Stop, 5)
				out = append(out, ur(10*lo, 10*hi))
			}
			return out, nil
		},
	}
}

func TestCompileGolden(t *testing.T) {
	// txt is a condition on message_texts, indexed or not (compiler.text).
	txt := func(conds ...string) string {
		s := "("
		for _, c := range conds {
			s += "(mt.indexed AND " + c + ") OR "
		}
		return s + "(NOT mt.indexed AND (" + strings.Join(conds, " OR ") + ")))"
	}
	// hdr is HEADER's condition with its two parameters $a, $b (compiler.headerCond).
	hdr := func(a, b int) string {
		return fmt.Sprintf("(mt.header_text LIKE $%d AND EXISTS (SELECT 1 FROM unnest(string_to_array(mt.header_text, chr(10))) AS hl(l) WHERE hl.l LIKE $%d))", a, b)
	}
	tests := []struct {
		in   string
		sql  string
		args []any
	}{
		{"ALL", "TRUE", nil},
		{"SEEN", "m.seen", nil},
		{"UNDELETED", "NOT m.deleted", nil},
		{"ANSWERED DRAFT UNFLAGGED", "(m.answered AND m.draft AND NOT m.flagged)", nil},
		{"SUBJECT \"50% off_now\\\\\"", "m.subject LIKE $1", []any{`%50\% off\_now\\%`}},
		// Values are folded (Fold), as the stored columns are.
		{"SUBJECT MÜNCHEN FROM Straße", "(m.subject LIKE $1 AND m.from_addr LIKE $2)", []any{"%mu\u0308nchen%", "%strasse%"}},
		{"FROM a BCC b CC c TO d BODY e", "(m.from_addr LIKE $1 AND m.bcc_addr LIKE $2 AND m.cc_addr LIKE $3 AND m.to_addr LIKE $4 AND " + txt("mt.body_text LIKE $5") + ")",
			[]any{"%a%", "%b%", "%c%", "%d%", "%e%"}},
		{"TEXT word UNDELETED", "(" + txt("mt.header_text LIKE $1", "mt.body_text LIKE $1") + " AND NOT m.deleted)", []any{"%word%"}},
		{"HEADER List-Id golang.org", txt(hdr(1, 2)), []any{"%list-id:%golang.org%", "list-id:%golang.org%"}},
		{`HEADER X-Spam ""`, txt(hdr(1, 2)), []any{"%x-spam:%%", "x-spam:%%"}},
		{`HEADER Subject "ü (a|b)*"`, txt(hdr(1, 2)), []any{"%subject:%u\u0308 (a|b)*%", "subject:%u\u0308 (a|b)*%"}},
		{`HEADER X_% "50%"`, txt(hdr(1, 2)), []any{`%x\_\%:%50\%%`, `x\_\%:%50\%%`}},
		{"SINCE 1-Nov-2026", "m.internal_day >= $1::date", []any{day(2026, 11, 1)}},
		{"BEFORE 1-Nov-2026", "m.internal_day < $1::date", []any{day(2026, 11, 1)}},
		{"ON 1-Nov-2026", "m.internal_day = $1::date", []any{day(2026, 11, 1)}},
		{"SENTSINCE 1-Nov-2026", "(m.sent_day IS NOT NULL AND m.sent_day >= $1::date)", []any{day(2026, 11, 1)}},
		{"SENTBEFORE 1-Nov-2026", "(m.sent_day IS NOT NULL AND m.sent_day < $1::date)", []any{day(2026, 11, 1)}},
		{"SAVEDBEFORE 1-Nov-2026", "coalesce((mm.saved_at AT TIME ZONE 'UTC')::date, m.internal_day) < $1::date", []any{day(2026, 11, 1)}},
		{"SAVEDATESUPPORTED SAVEDON 1-Nov-2026", "(TRUE AND coalesce((mm.saved_at AT TIME ZONE 'UTC')::date, m.internal_day) = $1::date)", []any{day(2026, 11, 1)}},
		{"NOT SENTON 1-Nov-2026", "NOT ((m.sent_day IS NOT NULL AND m.sent_day = $1::date))", []any{day(2026, 11, 1)}},
		{"LARGER 100 SMALLER 4294967295", "(m.size > $1::bigint AND m.size < $2::bigint)", []any{int64(100), int64(4294967295)}},
		{"KEYWORD $Junk", "EXISTS (SELECT 1 FROM unnest(m.keywords) AS kw(k) WHERE lower(kw.k) = lower($1::text))", []any{"$Junk"}},
		{"UNKEYWORD $Junk", "NOT EXISTS (SELECT 1 FROM unnest(m.keywords) AS kw(k) WHERE lower(kw.k) = lower($1::text))", []any{"$Junk"}},
		{`KEYWORD \seen UNKEYWORD \Flagged KEYWORD \Recent`, "(m.seen AND NOT m.flagged AND EXISTS (SELECT 1 FROM unnest(m.keywords) AS kw(k) WHERE lower(kw.k) = lower($1::text)))", []any{`\Recent`}},
		{"RECENT", "mm.uid = ANY($1::bigint[])", []any{[]int64{7, 9}}},
		{"NEW", "(mm.uid = ANY($1::bigint[]) AND NOT m.seen)", []any{[]int64{7, 9}}},
		{"OLD", "NOT (mm.uid = ANY($1::bigint[]))", []any{[]int64{7, 9}}},
		{"UID 5", "mm.uid = $1", []any{int64(5)}},
		{"UID 1:3,5,8,*", "(mm.uid = ANY($1::bigint[]) OR mm.uid BETWEEN $2 AND $3)", []any{[]int64{5, 8, 50}, int64(1), int64(3)}},
		{"UID 60:*", "mm.uid BETWEEN $1 AND $2", []any{int64(50), int64(60)}},
		{"UID 1:2,3:4,5:6,7:8,9:10", "EXISTS (SELECT 1 FROM unnest($1::bigint[], $2::bigint[]) AS r(lo, hi) WHERE mm.uid BETWEEN r.lo AND r.hi)",
			[]any{[]int64{1, 3, 5, 7, 9}, []int64{2, 4, 6, 8, 10}}},
		{"2:*", "mm.uid BETWEEN $1 AND $2", []any{int64(20), int64(50)}},
		{"OR FROM golang-nuts HEADER List-Id golang", "(m.from_addr LIKE $1 OR " + txt(hdr(2, 3)) + ")", []any{"%golang-nuts%", "%list-id:%golang%", "list-id:%golang%"}},
		{"NOT (SEEN OR FLAGGED DRAFT)", "NOT ((m.seen AND (m.flagged OR m.draft)))", nil},
	}
	for _, tt := range tests {
		n, err := ParseDefinition(tt.in)
		if err != nil {
			t.Fatalf("%q: %v", tt.in, err)
		}
		env := sessionEnv()
		sql, err := Compile(n, env)
		if err != nil {
			t.Errorf("Compile(%q): %v", tt.in, err)
			continue
		}
		if sql != tt.sql {
			t.Errorf("Compile(%q)\n got %s\nwant %s", tt.in, sql, tt.sql)
		}
		if d := cmp.Diff(tt.args, env.Args); d != "" {
			t.Errorf("Compile(%q) args (-want +got):\n%s", tt.in, d)
		}
	}
}

func TestCompileAppendsArgs(t *testing.T) {
	env := &Env{Msg: "msg", Args: []any{int64(42), "user"}}
	n, _ := ParseDefinition("SUBJECT x")
	sql, err := Compile(n, env)
	if err != nil || sql != "msg.subject LIKE $3" || len(env.Args) != 3 {
		t.Fatalf("got %q %v %v", sql, env.Args, err)
	}
	// No alias: bare columns.
	sql, _ = Compile(n, &Env{})
	if sql != "subject LIKE $1" {
		t.Errorf("no alias: %q", sql)
	}
	// Empty Recent compiles to FALSE without a parameter.
	env = &Env{Msg: "m", Member: "mm"}
	sql, _ = Compile(Recent{Key: "NEW"}, env)
	if sql != "(FALSE AND NOT m.seen)" || len(env.Args) != 0 {
		t.Errorf("empty Recent: %q %v", sql, env.Args)
	}
}

func TestCompileNotAllowed(t *testing.T) {
	for _, s := range []string{"UID 1", "1:*", "RECENT", "NEW", "OLD", "SEEN OR SUBJECT x NOT UID 4", "SAVEDSINCE 1-Jan-2020"} {
		n, err := ParseDefinition(s)
		if err != nil {
			t.Fatal(err)
		}
		if !UsesSession(n) {
			t.Errorf("UsesSession(%q) = false", s)
		}
		env := &Env{Msg: "m", Args: []any{"keep"}}
		_, err = Compile(n, env)
		var na *NotAllowedError
		if !errors.As(err, &na) {
			t.Errorf("Compile(%q) in definition: err = %v", s, err)
		}
		if len(env.Args) != 1 {
			t.Errorf("Compile(%q) error left args %v", s, env.Args)
		}
	}
	// Member set but no SeqToUID: sequence sets still not allowed.
	n, _ := ParseDefinition("1")
	if _, err := Compile(n, &Env{Msg: "m", Member: "mm"}); err == nil {
		t.Error("sequence set without SeqToUID: no error")
	}
	// SeqToUID errors propagate.
	boom := errors.New("boom")
	env := &Env{Msg: "m", Member: "mm", SeqToUID: func(imap.SeqSet) (imap.UIDSet, error) { return nil, boom }}
	if _, err := Compile(n, env); !errors.Is(err, boom) {
		t.Errorf("SeqToUID error: %v", err)
	}
	if _, err := Compile(All{}, &Env{Msg: "m; DROP"}); err == nil {
		t.Error("bad alias accepted")
	}
	// A text key without the message_texts alias.
	n, _ = ParseDefinition("OR SEEN BODY x")
	if _, err := Compile(n, &Env{Msg: "m"}); err == nil {
		t.Error("BODY without Env.Texts: no error")
	}
}

func TestUses(t *testing.T) {
	tests := []struct {
		in                   string
		flags, session, text bool
	}{
		{"ALL", false, false, false},
		{"SUBJECT x SINCE 1-Jan-2020 LARGER 5", false, false, false},
		{"UNSEEN", true, false, false},
		{"NOT OR FROM x KEYWORD $Junk", true, false, false},
		{"OR ALL (ALL UNKEYWORD a)", true, false, false},
		{"NEW", true, true, false},
		{"OLD", false, true, false},
		{"UID 1", false, true, false},
		{"NOT (1:2 SEEN)", true, true, false},
		{"NOT (SEEN OR FROM x BODY y)", true, false, true},
		{"TEXT x", false, false, true},
		{"OR HEADER List-Id x TO y", false, false, true},
	}
	for _, tt := range tests {
		n, err := ParseDefinition(tt.in)
		if err != nil {
			t.Fatal(err)
		}
		if got := UsesFlags(n); got != tt.flags {
			t.Errorf("UsesFlags(%q) = %v", tt.in, got)
		}
		if got := UsesSession(n); got != tt.session {
			t.Errorf("UsesSession(%q) = %v", tt.in, got)
		}
		if got := UsesText(n); got != tt.text {
			t.Errorf("UsesText(%q) = %v", tt.in, got)
		}
	}
}

// TestCompileFolders pins the folder terms' SQL: one probe of the message's
// memberships, folders only, the names as parameters.
func TestCompileFolders(t *testing.T) {
	n, err := ParseDefinition(`FOLDER "Lists/golang" NOT ONLYFOLDER (Trash Junk)`)
	if err != nil {
		t.Fatal(err)
	}
	if !UsesFolders(n) {
		t.Error("UsesFolders = false")
	}
	env := &Env{Msg: "m"}
	sql, err := Compile(n, env)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"EXISTS (SELECT 1 FROM mailbox_messages fm JOIN mailboxes fb ON fb.id = fm.mailbox_id",
		"fm.message_id = m.id AND fb.definition IS NULL AND fb.name = $1::text)",
		"NOT (NOT EXISTS (", "fb.name <> ALL($2::text[]))"} {
		if !strings.Contains(sql, want) {
			t.Errorf("SQL lacks %q:\n%s", want, sql)
		}
	}
	if d := cmp.Diff([]any{"Lists/golang", []string{"Trash", "Junk"}}, env.Args); d != "" {
		t.Errorf("args (-want +got):\n%s", d)
	}
	for _, s := range []string{"ALL", "UNSEEN", "NOT OR FROM x KEYWORD y"} {
		n, _ := ParseDefinition(s)
		if UsesFolders(n) {
			t.Errorf("UsesFolders(%q) = true", s)
		}
	}
}
