package message

import "testing"

// The "base subject" extraction of rfc5256.txt:92-132, rule by rule, and the
// "reply or forward" marker of rfc5256.txt:438-441.
func TestBaseSubject(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		reply    bool
	}{
		{"", "", false},
		{"Hello", "Hello", false},
		// (1) tabs and runs of spaces become one space.
		{"a\t \tb  c", "a b c", false},
		// (2) trailers: WSP and "(fwd)", repeated, any case.
		{"Hello   ", "Hello", false},
		{"Hello (fwd)", "Hello", true},
		{"Hello (FWD) (fwd)  ", "Hello", true},
		{"Hello(fwd)", "Hello", true},
		// (3) leaders: subj-refwd with optional blobs, or WSP.
		{"Re: Hello", "Hello", true},
		{"RE:Hello", "Hello", true},
		{"re : Hello", "Hello", true},
		{"Fw: Hello", "Hello", true},
		{"FWD: Hello", "Hello", true},
		{"Re[2]: Hello", "Hello", true},
		{"Re [2] : Hello", "Hello", true},
		{"Re: Re: fwd: Hello", "Hello", true},
		{"[list] Re: Hello", "Hello", true},
		{"[a][b] Re: Hello", "Hello", true},
		{"Ref: Hello", "Ref: Hello", false},
		{"Reply: Hello", "Reply: Hello", false},
		{"Fwdd: Hello", "Fwdd: Hello", false},
		{"Re Hello", "Re Hello", false},
		// (4) a blob goes only if a subject is left behind it.
		{"[list] Hello", "Hello", false},
		{"[list]", "[list]", false},
		{"[a] [b]", "[b]", false},
		{"[list] Re: [other]", "[other]", true},
		{"[unclosed Hello", "[unclosed Hello", false},
		{"[a[b] Hello", "[a[b] Hello", false},
		// (5) leaders and blobs in turn.
		{"[list] Re: [list] Fwd: Hello", "Hello", true},
		// (6) [fwd: ...] and repeat from (2).
		{"[fwd: Hello]", "Hello", true},
		{"[FWD: Re: Hello (fwd)]", "Hello", true},
		{"[fwd: [fwd: Hello]]", "Hello", true},
		{"[fwd: Hello] x", "x", false}, // not a subj-fwd (it does not end in "]"): a blob
		// Non-ASCII passes through; case is kept (compared folded).
		{"Re: Grüße", "Grüße", true},
		{"  Re:   Été  ", "Été", true},
	} {
		got, reply := BaseSubject(tc.in)
		if got != tc.want || reply != tc.reply {
			t.Errorf("BaseSubject(%q) = %q, %v; want %q, %v", tc.in, got, reply, tc.want, tc.reply)
		}
	}
}

// The first address's mailbox, for SORT FROM/TO/CC (rfc5256.txt:256-263).
func TestFirstMailbox(t *testing.T) {
	for in, want := range map[string]string{
		"":                                 "",
		"Alice <alice@example.com>, bob@x": "alice",
		`"Smith, J" <JS@x>`:                "JS",
		"=?UTF-8?Q?J=C3=BCrgen?= <j@x>":    "j",
		"team: carol@x, dan@x;, eve@x":     "carol",
		"empty-group:;, frank@x":           "frank",
		"undisclosed-recipients:;":         "",
		"localonly":                        "localonly",
	} {
		if got := FirstMailbox(in); got != want {
			t.Errorf("FirstMailbox(%q) = %q, want %q", in, got, want)
		}
	}
}

// The first address's display-name, else its addr-spec, for SORT=DISPLAY
// (RFC 5957's DISPLAYFROM and DISPLAYTO).
func TestFirstDisplay(t *testing.T) {
	for in, want := range map[string]string{
		"":                                 "",
		"Alice <alice@example.com>, bob@x": "Alice",
		`"Smith, J" <JS@x>`:                "Smith, J",
		"=?UTF-8?Q?J=C3=BCrgen?= <j@x>":    "Jürgen",
		`"" <empty@x>`:                     "empty@x",
		"bob@Example.COM (Bob)":            "Bob", // a comment stands for the name, as in ENVELOPE
		"team: carol@x, dan@x;, eve@x":     "carol@x",
		"undisclosed-recipients:;":         "",
		"localonly":                        "localonly",
	} {
		if got := FirstDisplay(in); got != want {
			t.Errorf("FirstDisplay(%q) = %q, want %q", in, got, want)
		}
	}
}
