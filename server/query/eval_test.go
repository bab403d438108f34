package query

import (
	"testing"
	"time"
)

func TestEval(t *testing.T) {
	m := &Msg{
		UID: 30, Seq: 3,
		InternalDay: time.Date(2026, 11, 1, 0, 0, 0, 0, time.FixedZone("", -8*3600)),
		Size:        1000,
		Subject:     "Re: Ärger with Go generics",
		From:        "Gopher <gopher@golang.org>",
		To:          "golang-nuts@googlegroups.com",
		HeaderText:  "Subject: Re: Ärger with Go generics\nList-Id: <golang-nuts.googlegroups.com>\nX-Empty: \nX-Percent: 100%_\\\n",
		BodyText:    "Hello,\nplease see attached.",
		Seen:        true, Flagged: true,
		Keywords: []string{"$Junk", "Work"},
	}
	tests := []struct {
		in   string
		want bool
	}{
		{"ALL", true},
		{"SEEN", true}, {"UNSEEN", false}, {"FLAGGED", true}, {"UNANSWERED", true}, {"DELETED", false}, {"DRAFT", false},
		{"KEYWORD $junk", true}, {"KEYWORD work", true}, {"KEYWORD other", false}, {"UNKEYWORD $JUNK", false},
		{`KEYWORD \SEEN`, true}, {`KEYWORD \Answered`, false}, {`UNKEYWORD \Flagged`, false}, {`KEYWORD \Recent`, false},
		{"SUBJECT GENERICS", true}, {"SUBJECT \"\"", true}, {"SUBJECT ärger", true}, {"SUBJECT ÄRGER", true}, {"SUBJECT Ärger", true},
		{"SUBJECT arger", false}, {"FROM GOPHER@GOLANG.ORG", true}, {"BODY PLEASE", true},
		{"FROM GOPHER@", true}, {"TO nuts", true}, {"CC x", false}, {"CC \"\"", true}, {"BCC \"\"", true},
		{"BODY ATTACHED", true}, {"BODY list-id", false},
		{"TEXT list-id", true}, {"TEXT hello", true}, {"TEXT absent", false},
		{"HEADER list-id GOLANG-NUTS", true}, {"HEADER List-Id \"\"", true}, {"HEADER X-Empty \"\"", true},
		{"HEADER X-Missing \"\"", false}, {"HEADER Id golang", false}, {"HEADER List-Id attached", false},
		{"HEADER Subject \"Re: Ä\"", true}, {"HEADER X-Percent \"%_\\\\\"", true}, {"HEADER X-Percent \"_%\"", false},
		{"HEADER subject \"generics\nlist\"", false}, // the value is looked for in the field's own line
		{"HEADER SUBJECT \"re: ä\"", true}, {"TEXT ÄRGER", true},
		{"ON 1-Nov-2026", true}, {"SINCE 1-Nov-2026", true}, {"BEFORE 1-Nov-2026", false}, {"BEFORE 2-Nov-2026", true},
		{"SINCE 2-Nov-2026", false},
		{"SENTON 1-Nov-2026", false}, {"NOT SENTON 1-Nov-2026", true}, {"SENTBEFORE 1-Jan-9999", false}, {"SENTSINCE 1-Jan-0001", false},
		{"LARGER 999", true}, {"LARGER 1000", false}, {"SMALLER 1000", false}, {"SMALLER 1001", true},
		{"3", true}, {"1:2,4:*", false}, {"*", false}, {"2:*", true}, {"*:3", true},
		{"UID 30", true}, {"UID 1:29,31:*", false}, {"UID 31:40", false}, {"UID *", false},
		{"RECENT", false}, {"OLD", true}, {"NEW", false},
		{"OR DELETED FLAGGED", true}, {"OR DELETED DRAFT", false}, {"NOT (SEEN DELETED)", true}, {"(SEEN FLAGGED) TO golang", true},
	}
	for _, tt := range tests {
		n, err := ParseDefinition(tt.in)
		if err != nil {
			t.Fatalf("%q: %v", tt.in, err)
		}
		if got := Eval(n, m, 50, 5); got != tt.want {
			t.Errorf("Eval(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}

	// "*" is the largest UID/seq; n:* with n beyond it still includes it (RFC 3501 §6.4.8).
	last := &Msg{UID: 50, Seq: 5, Recent: true, SentDay: time.Date(2026, 10, 31, 0, 0, 0, 0, time.UTC)}
	for _, tt := range []struct {
		in   string
		want bool
	}{
		{"UID *", true}, {"UID 70:*", true}, {"UID 49", false}, {"*", true}, {"9:*", true},
		{"RECENT", true}, {"NEW", true}, {"OLD", false}, {"SENTON 31-Oct-2026", true}, {"SENTBEFORE 1-Nov-2026", true},
		{"ON 1-Jan-0001", true}, // zero InternalDay is the date 0001-01-01: internal_day is NOT NULL, no NULL case
	} {
		n, err := ParseDefinition(tt.in)
		if err != nil {
			t.Fatal(err)
		}
		if got := Eval(n, last, 50, 5); got != tt.want {
			t.Errorf("last: Eval(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestHeaderMatch(t *testing.T) {
	hdr := "From: a\nX-A: one\nx-a: two\nX-AB: three\n"
	for _, tt := range []struct {
		name, value string
		want        bool
	}{
		{"X-A", "two", true}, {"X-A", "three", false}, {"X-AB", "three", true}, {"From", "a", true},
		{"rom", "a", false}, {"X-A", "one\nx-a", false}, {"X-A", "", true}, {"X-Z", "", false}, {"", "", false},
	} {
		if got := headerMatchLow(asciiLower(hdr), tt.name, tt.value); got != tt.want {
			t.Errorf("headerMatchLow(%q, %q) = %v", tt.name, tt.value, got)
		}
	}
}

// TestEvalFoldsOncePerText: Msg keeps its folded texts between Evals, and a
// changed text is folded again.
func TestEvalFoldsOncePerText(t *testing.T) {
	m := &Msg{HeaderText: "Subject: Hello\n", BodyText: "Big NEWS"}
	body := func(v string) bool { return Eval(Text{Key: "BODY", Value: v}, m, 0, 0) }
	if !body("news") || !Eval(Text{Key: "HEADER", Field: "subject", Value: "HELLO"}, m, 0, 0) {
		t.Fatal("folded match failed")
	}
	m.BodyText = "small print"
	if body("news") || !body("PRINT") {
		t.Fatal("Eval used the folded text of the old BodyText")
	}
}

func TestEvalFolders(t *testing.T) {
	inTrash := &Msg{Folders: []string{"Trash"}}
	trashJunk := &Msg{Folders: []string{"Junk", "Trash"}}
	twice := &Msg{Folders: []string{"INBOX", "Lists/golang"}}
	for _, tt := range []struct {
		in   string
		m    *Msg
		want bool
	}{
		{"FOLDER Trash", inTrash, true}, {"FOLDER trash", inTrash, false}, {"FOLDER inbox", twice, true},
		{"FOLDER Lists", twice, false}, {`FOLDER "Lists/golang"`, twice, true},
		{"ONLYFOLDER Trash", inTrash, true}, {"ONLYFOLDER Trash", trashJunk, false},
		{"ONLYFOLDER (Junk Trash)", trashJunk, true}, {"ONLYFOLDER INBOX", twice, false},
		{"NOT ONLYFOLDER (Trash Junk)", twice, true}, {"NOT ONLYFOLDER (Trash Junk)", trashJunk, false},
	} {
		n, err := ParseDefinition(tt.in)
		if err != nil {
			t.Fatalf("%q: %v", tt.in, err)
		}
		if got := Eval(n, tt.m, 0, 0); got != tt.want {
			t.Errorf("Eval(%q, %v) = %v, want %v", tt.in, tt.m.Folders, got, tt.want)
		}
	}
}

// TestViewNode pins the default rule: a definition without folder terms
// leaves out messages only Trash and Junk hold; one with a folder term
// says for itself.
func TestViewNode(t *testing.T) {
	for _, tt := range []struct {
		def  string
		m    *Msg
		want bool
	}{
		{"ALL", &Msg{Folders: []string{"Trash"}}, false},
		{"ALL", &Msg{Folders: []string{"Junk", "Trash"}}, false},
		{"ALL", &Msg{Folders: []string{"Trash", "INBOX"}}, true},
		{"UNSEEN", &Msg{Folders: []string{"Archive"}}, true},
		{"FOLDER Trash", &Msg{Folders: []string{"Trash"}}, true},
		{"OR ALL FOLDER Nowhere", &Msg{Folders: []string{"Junk"}}, true},
	} {
		n, err := ParseDefinition(tt.def)
		if err != nil {
			t.Fatal(err)
		}
		if got := Eval(ViewNode(n), tt.m, 0, 0); got != tt.want {
			t.Errorf("view %q, folders %v: %v, want %v", tt.def, tt.m.Folders, got, tt.want)
		}
	}
}
