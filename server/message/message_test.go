package message

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

// crlf turns a readable "\n" test message into CRLF wire form.
func crlf(s string) []byte { return []byte(strings.ReplaceAll(s, "\n", "\r\n")) }

var msgPlain = crlf(`From: Fred Foobar <foobar@Blurdybloop.COM>
Date: Mon, 7 Feb 1994 21:52:25 -0800 (PST)
Subject: afternoon meeting
To: mooch@owatagu.siam.edu
Message-Id: <B27397-0100000@Blurdybloop.COM>
MIME-Version: 1.0
Content-Type: TEXT/PLAIN; CHARSET=US-ASCII

Hello Joe, do you think we can meet at 3:30 tomorrow?
`)

var msgAlternative = crlf(`From: "Smith, John" <John.Smith@Example.COM>
To: a@example.test, "B" <b@example.test>
Cc: Team: c@example.test, d@example.test;
Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= aus
 =?utf-8?b?TcO8bmNoZW4=?=
Date: Wed, 04 Jun 2025 13:45:00 +0200
Message-ID: <alt-1@example.test>
In-Reply-To: <parent@example.test> (comment) <other@example.test>
References: <root@example.test>
	<parent@example.test>
Content-Type: multipart/alternative; boundary="XX"

preamble
--XX
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

Gr=C3=BC=C3=9Fe, caf=
=C3=A9
--XX
Content-Type: text/html; charset=iso-8859-1
Content-Transfer-Encoding: quoted-printable

<p>Caf=E9</p>
--XX--
epilogue
`)

var msgMixed = crlf(`From: Billing <billing@shop.example.test>
To: Test User <testuser@example.test>
Subject: =?ISO-8859-1?Q?Caf=E9_cr=E8me?=
Date: Fri, 06 Jun 2025 16:20:00 +0000
Message-ID: <invoice-0042@example.test>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="=_b"

--=_b
Content-Type: text/plain

See attachment.
--=_b
Content-Type: application/pdf; name="a b.pdf"
Content-Transfer-Encoding: base64
Content-Disposition: attachment; filename*0="very long ";
 filename*1="name.pdf"
Content-ID: <pdf1@example.test>
Content-Description: The invoice
Content-Language: en, de
Content-Location: http://example.test/a.pdf
Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==

JVBERi0xLjQK
--=_b--
`)

var msgNested = crlf(`From: Bob <bob@example.test>
Subject: Fwd: inner
Content-Type: multipart/mixed; boundary=outer

--outer
Content-Type: text/plain; charset=us-ascii

See below.
--outer
Content-Type: message/rfc822
Content-Disposition: inline

From: Ops <ops@example.test>
Subject: inner
Content-Type: multipart/alternative; boundary=inner

--inner
Content-Type: text/plain

inner text
--inner
Content-Type: text/html

<b>inner</b>
--inner--
--outer--
`)

var msgNoContentType = crlf(`From: a@example.test
Subject: no type

line one
line two
`)

var msgTruncated = crlf(`From: a@example.test
Subject: cut
Content-Type: multipart/mixed; boundary=zz

--zz
Content-Type: text/plain

first
--zz
Content-Type: text/plain

second, and then the connection died`)

var msgHeaderOnly = crlf(`From: a@example.test
Subject: header only`)

var msgBareLF = []byte("From: Al <al@example.test>\nSubject: bare\n  LF\nContent-Type: multipart/mixed; boundary=b\n\n--b\n\none\n--b\nContent-Type: text/plain; charset=iso-8859-1\n\ntw\xf6\n--b--\n")

var msgDigest = crlf(`From: list@example.test
Subject: digest
Content-Type: multipart/digest; boundary=d

--d

From: x@example.test
Subject: one

body one
--d
Content-Type: text/plain

not a message
--d--
`)

func TestParse(t *testing.T) {
	tests := []struct {
		name           string
		raw            []byte
		env, bs, body  string // exact wire forms ("" = not checked)
		headerLen      int
		lines          int
		broken         bool
		subject        string
		bodyText       string
		from, fromAddr string
	}{
		{
			name: "plain (rfc3501 ENVELOPE example)",
			raw:  msgPlain,
			// rfc3501.txt FETCH response example, with Dovecot's uppercasing.
			env:       `("Mon, 7 Feb 1994 21:52:25 -0800 (PST)" "afternoon meeting" (("Fred Foobar" NIL "foobar" "Blurdybloop.COM")) (("Fred Foobar" NIL "foobar" "Blurdybloop.COM")) (("Fred Foobar" NIL "foobar" "Blurdybloop.COM")) ((NIL NIL "mooch" "owatagu.siam.edu")) NIL NIL NIL "<B27397-0100000@Blurdybloop.COM>")`,
			bs:        `("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 55 1 NIL NIL NIL NIL)`,
			body:      `("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 55 1)`,
			headerLen: len(msgPlain) - 55,
			lines:     1,
			subject:   "afternoon meeting",
			bodyText:  "Hello Joe, do you think we can meet at 3:30 tomorrow?\r\n",
			from:      "Fred Foobar <foobar@Blurdybloop.COM>",
			fromAddr:  "foobar@blurdybloop.com",
		},
		{
			name:     "alternative, qp, rfc2047 utf-8, group",
			raw:      msgAlternative,
			env:      `("Wed, 04 Jun 2025 13:45:00 +0200" "=?utf-8?q?Gr=C3=BC=C3=9Fe?= aus =?utf-8?b?TcO8bmNoZW4=?=" (("Smith, John" NIL "John.Smith" "Example.COM")) (("Smith, John" NIL "John.Smith" "Example.COM")) (("Smith, John" NIL "John.Smith" "Example.COM")) ((NIL NIL "a" "example.test")("B" NIL "b" "example.test")) ((NIL NIL "Team" NIL)(NIL NIL "c" "example.test")(NIL NIL "d" "example.test")(NIL NIL NIL NIL)) NIL "<parent@example.test> (comment) <other@example.test>" "<alt-1@example.test>")`,
			bs:       `(("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "QUOTED-PRINTABLE" 29 2 NIL NIL NIL NIL)("TEXT" "HTML" ("CHARSET" "iso-8859-1") NIL NIL "QUOTED-PRINTABLE" 13 1 NIL NIL NIL NIL) "ALTERNATIVE" ("BOUNDARY" "XX") NIL NIL NIL)`,
			body:     `(("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "QUOTED-PRINTABLE" 29 2)("TEXT" "HTML" ("CHARSET" "iso-8859-1") NIL NIL "QUOTED-PRINTABLE" 13 1) "ALTERNATIVE")`,
			subject:  "Grüße aus München",
			bodyText: "Grüße, café\n<p>Café</p>",
			from:     "Smith, John <John.Smith@Example.COM>",
			fromAddr: "john.smith@example.com",
		},
		{
			name:     "mixed with base64 attachment, rfc2047 iso-8859-1, rfc2231 continuation",
			raw:      msgMixed,
			bs:       `(("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 15 1 NIL NIL NIL NIL)("APPLICATION" "PDF" ("NAME" "a b.pdf") "<pdf1@example.test>" "The invoice" "BASE64" 12 "Q2hlY2sgSW50ZWdyaXR5IQ==" ("ATTACHMENT" ("FILENAME" "very long name.pdf")) ("en" "de") "http://example.test/a.pdf") "MIXED" ("BOUNDARY" "=_b") NIL NIL NIL)`,
			body:     `(("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 15 1)("APPLICATION" "PDF" ("NAME" "a b.pdf") "<pdf1@example.test>" "The invoice" "BASE64" 12) "MIXED")`,
			subject:  "Café crème",
			bodyText: "See attachment.",
		},
		{
			name:     "nested message/rfc822 with multipart inside",
			raw:      msgNested,
			bs:       `(("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 10 1 NIL NIL NIL NIL)("MESSAGE" "RFC822" NIL NIL NIL "7BIT" 209 (NIL "inner" (("Ops" NIL "ops" "example.test")) (("Ops" NIL "ops" "example.test")) (("Ops" NIL "ops" "example.test")) NIL NIL NIL NIL NIL) (("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 10 1 NIL NIL NIL NIL)("TEXT" "HTML" ("CHARSET" "us-ascii") NIL NIL "7BIT" 12 1 NIL NIL NIL NIL) "ALTERNATIVE" ("BOUNDARY" "inner") NIL NIL NIL) 13 NIL ("INLINE" NIL) NIL NIL) "MIXED" ("BOUNDARY" "outer") NIL NIL NIL)`,
			subject:  "Fwd: inner",
			bodyText: "See below.\ninner text\n<b>inner</b>",
		},
		{
			name:      "missing Content-Type",
			raw:       msgNoContentType,
			env:       `(NIL "no type" ((NIL NIL "a" "example.test")) ((NIL NIL "a" "example.test")) ((NIL NIL "a" "example.test")) NIL NIL NIL NIL NIL)`,
			bs:        `("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 20 2 NIL NIL NIL NIL)`,
			headerLen: 42,
			lines:     2,
			bodyText:  "line one\r\nline two\r\n",
			subject:   "no type",
		},
		{
			name:     "truncated multipart keeps the parts found",
			raw:      msgTruncated,
			bs:       `(("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 5 1 NIL NIL NIL NIL)("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 36 1 NIL NIL NIL NIL) "MIXED" ("BOUNDARY" "zz") NIL NIL NIL)`,
			broken:   true,
			subject:  "cut",
			bodyText: "first\nsecond, and then the connection died",
		},
		{
			name:      "header only, no blank line",
			raw:       msgHeaderOnly,
			bs:        `("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 0 0 NIL NIL NIL NIL)`,
			headerLen: len(msgHeaderOnly),
			subject:   "header only",
		},
		{
			name:  "empty message",
			raw:   []byte{},
			env:   `(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)`,
			bs:    `("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 0 0 NIL NIL NIL NIL)`,
			body:  `("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 0 0)`,
			lines: 0,
		},
		{
			name:      "bare LF, folded subject, latin-1 body",
			raw:       msgBareLF,
			bs:        `(("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 3 1 NIL NIL NIL NIL)("TEXT" "PLAIN" ("CHARSET" "iso-8859-1") NIL NIL "7BIT" 3 1 NIL NIL NIL NIL) "MIXED" ("BOUNDARY" "b") NIL NIL NIL)`,
			headerLen: 89,
			lines:     8,
			subject:   "bare  LF",
			bodyText:  "one\ntwö",
			from:      "Al <al@example.test>",
			fromAddr:  "al@example.test",
		},
		{
			name:     "digest children default to message/rfc822",
			raw:      msgDigest,
			bs:       `(("MESSAGE" "RFC822" NIL NIL NIL "7BIT" 46 (NIL "one" ((NIL NIL "x" "example.test")) ((NIL NIL "x" "example.test")) ((NIL NIL "x" "example.test")) NIL NIL NIL NIL NIL) ("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 8 1 NIL NIL NIL NIL) 4 NIL NIL NIL NIL)("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 13 1 NIL NIL NIL NIL) "DIGEST" ("BOUNDARY" "d") NIL NIL NIL)`,
			subject:  "digest",
			bodyText: "body one\nnot a message",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := Parse(tc.raw)
			check := func(what, got, want string) {
				t.Helper()
				if want != "" && got != want {
					t.Errorf("%s mismatch (-want +got):\n%s", what, cmp.Diff(want, got))
				}
			}
			check("ENVELOPE", string(p.Envelope), tc.env)
			check("BODYSTRUCTURE", string(p.BodyStructure), tc.bs)
			check("BODY", string(p.Body), tc.body)
			check("Subject", p.Subject, tc.subject)
			check("BodyText", p.BodyText, tc.bodyText)
			check("From", p.From, tc.from)
			check("FromAddr", p.FromAddr, tc.fromAddr)
			if p.Broken != tc.broken {
				t.Errorf("Broken = %v, want %v", p.Broken, tc.broken)
			}
			if p.Size != len(tc.raw) {
				t.Errorf("Size = %d, want %d", p.Size, len(tc.raw))
			}
			if tc.headerLen != 0 && p.HeaderLen != tc.headerLen {
				t.Errorf("HeaderLen = %d, want %d", p.HeaderLen, tc.headerLen)
			}
			if tc.lines != 0 && p.Lines != tc.lines {
				t.Errorf("Lines = %d, want %d", p.Lines, tc.lines)
			}
		})
	}
}

func TestParseFields(t *testing.T) {
	p := Parse(msgAlternative)
	want := &Parsed{
		SentDate:   time.Date(2025, 6, 4, 13, 45, 0, 0, time.FixedZone("", 2*3600)),
		Subject:    "Grüße aus München",
		From:       "Smith, John <John.Smith@Example.COM>",
		To:         "a@example.test, B <b@example.test>",
		Cc:         "c@example.test, d@example.test",
		ReplyTo:    "",
		FromAddr:   "john.smith@example.com",
		MessageID:  "<alt-1@example.test>",
		InReplyTo:  "<parent@example.test>",
		References: []string{"<root@example.test>", "<parent@example.test>"},
	}
	got := *p
	if !got.SentDate.Equal(want.SentDate) || got.SentDate.Format(time.RFC1123Z) != want.SentDate.Format(time.RFC1123Z) {
		t.Errorf("SentDate = %v, want %v", got.SentDate, want.SentDate)
	}
	got.SentDate = want.SentDate
	opts := cmp.FilterPath(func(p cmp.Path) bool {
		switch p.Last().String() {
		case ".SentDate", ".Subject", ".From", ".To", ".Cc", ".ReplyTo", ".FromAddr", ".MessageID", ".InReplyTo", ".References", ".Bcc":
			return false
		}
		return true
	}, cmp.Ignore())
	if d := cmp.Diff(want, &got, opts); d != "" {
		t.Errorf("fields (-want +got):\n%s", d)
	}
	if got.ThreadKey() != "<root@example.test>" {
		t.Errorf("ThreadKey = %q", got.ThreadKey())
	}
	if !strings.Contains(p.HeaderText, "Subject: Grüße aus München\n") ||
		!strings.Contains(p.HeaderText, "References: <root@example.test>\t<parent@example.test>\n") {
		t.Errorf("HeaderText = %q", p.HeaderText)
	}
	if k := Parse(msgPlain).ThreadKey(); k != "<B27397-0100000@Blurdybloop.COM>" {
		t.Errorf("ThreadKey without references = %q", k)
	}
}

func TestSection(t *testing.T) {
	hdrAlt := string(msgAlternative[:bytes.Index(msgAlternative, []byte("\r\n\r\n"))+4])
	tests := []struct {
		name   string
		raw    []byte
		part   []int
		spec   string
		fields []string
		want   string
	}{
		{"whole", msgPlain, nil, "", nil, string(msgPlain)},
		{"header", msgAlternative, nil, "HEADER", nil, hdrAlt},
		{"text", msgNoContentType, nil, "TEXT", nil, "line one\r\nline two\r\n"},
		{"fields keep folding and order", msgAlternative, nil, "HEADER.FIELDS", []string{"references", "SUBJECT"},
			"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= aus\r\n =?utf-8?b?TcO8bmNoZW4=?=\r\nReferences: <root@example.test>\r\n\t<parent@example.test>\r\n\r\n"},
		{"fields none match", msgPlain, nil, "HEADER.FIELDS", []string{"X-Nothing"}, "\r\n"},
		{"fields.not", msgNoContentType, nil, "header.fields.not", []string{"from"}, "Subject: no type\r\n\r\n"},
		{"fields header-only no blank line", msgHeaderOnly, nil, "HEADER.FIELDS", []string{"subject"}, "Subject: header only\r\n"},
		{"non-multipart part 1 is the body", msgPlain, []int{1}, "", nil, "Hello Joe, do you think we can meet at 3:30 tomorrow?\r\n"},
		{"non-multipart 1.MIME is the header", msgNoContentType, []int{1}, "MIME", nil, "From: a@example.test\r\nSubject: no type\r\n\r\n"},
		{"non-multipart part 2 missing", msgPlain, []int{2}, "", nil, ""},
		{"multipart 1", msgAlternative, []int{1}, "", nil, "Gr=C3=BC=C3=9Fe, caf=\r\n=C3=A9"},
		{"multipart 2.MIME", msgAlternative, []int{2}, "MIME", nil, "Content-Type: text/html; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"},
		{"multipart 3 missing", msgAlternative, []int{3}, "", nil, ""},
		{"multipart 0 missing", msgAlternative, []int{0}, "", nil, ""},
		{"leaf has no 1.1", msgAlternative, []int{1, 1}, "", nil, ""},
		{"HEADER of non-message part", msgAlternative, []int{1}, "HEADER", nil, ""},
		{"rfc822 part body", msgNested, []int{2}, "", nil, "From: Ops <ops@example.test>\r\nSubject: inner\r\nContent-Type: multipart/alternative; boundary=inner\r\n\r\n--inner\r\nContent-Type: text/plain\r\n\r\ninner text\r\n--inner\r\nContent-Type: text/html\r\n\r\n<b>inner</b>\r\n--inner--"},
		{"rfc822 2.HEADER", msgNested, []int{2}, "HEADER", nil, "From: Ops <ops@example.test>\r\nSubject: inner\r\nContent-Type: multipart/alternative; boundary=inner\r\n\r\n"},
		{"rfc822 2.HEADER.FIELDS", msgNested, []int{2}, "HEADER.FIELDS", []string{"Subject"}, "Subject: inner\r\n\r\n"},
		{"rfc822 2.TEXT", msgNested, []int{2}, "TEXT", nil, "--inner\r\nContent-Type: text/plain\r\n\r\ninner text\r\n--inner\r\nContent-Type: text/html\r\n\r\n<b>inner</b>\r\n--inner--"},
		{"rfc822 2.MIME", msgNested, []int{2}, "MIME", nil, "Content-Type: message/rfc822\r\nContent-Disposition: inline\r\n\r\n"},
		{"nested 2.1", msgNested, []int{2, 1}, "", nil, "inner text"},
		{"nested 2.2.MIME", msgNested, []int{2, 2}, "MIME", nil, "Content-Type: text/html\r\n\r\n"},
		{"nested 2.3 missing", msgNested, []int{2, 3}, "", nil, ""},
		{"digest 1.TEXT", msgDigest, []int{1}, "TEXT", nil, "body one"},
		{"digest 1.1", msgDigest, []int{1, 1}, "", nil, "body one"},
		{"digest 1.MIME (empty part header)", msgDigest, []int{1}, "MIME", nil, "\r\n"},
		{"truncated part 2", msgTruncated, []int{2}, "", nil, "second, and then the connection died"},
		{"bare LF part 2", msgBareLF, []int{2}, "", nil, "tw\xf6"},
		{"bare LF part 1.MIME", msgBareLF, []int{1}, "MIME", nil, "\n"},
		{"bare LF fields", msgBareLF, nil, "HEADER.FIELDS", []string{"subject"}, "Subject: bare\n  LF\n\r\n"},
		{"empty message header", []byte{}, nil, "HEADER", nil, ""},
		{"empty message 1", []byte{}, []int{1}, "", nil, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Section(tc.raw, tc.part, tc.spec, tc.fields)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("Section(%v, %q, %q):\n%s", tc.part, tc.spec, tc.fields, cmp.Diff(tc.want, string(got)))
			}
		})
	}
	for _, bad := range []struct {
		part   []int
		spec   string
		fields []string
	}{{nil, "MIME", nil}, {nil, "BODY", nil}, {[]int{1}, "HEADER.FIELDS", nil}, {nil, "TEXT.MIME", nil}} {
		if _, err := Section(msgPlain, bad.part, bad.spec, bad.fields); err == nil {
			t.Errorf("Section(%v, %q, %q): no error", bad.part, bad.spec, bad.fields)
		}
	}
}

func TestAddresses(t *testing.T) {
	tests := []struct{ in, want string }{
		{`undisclosed-recipients:;`, `((NIL NIL "undisclosed-recipients" NIL)(NIL NIL NIL NIL))`},
		{`joe@example.test (Joe Q. Public)`, `(("Joe Q. Public" NIL "joe" "example.test"))`},
		{`Joe Q. Public <joe@example.test>`, `(("Joe Q. Public" NIL "joe" "example.test"))`},
		{`<@relay.test,@r2.test:joe@example.test>`, `((NIL "@relay.test,@r2.test" "joe" "example.test"))`},
		{`"joe \"the\" doe"@example.test`, `((NIL NIL "joe \"the\" doe" "example.test"))`},
		{`postmaster`, `((NIL NIL "postmaster" "MISSING_DOMAIN"))`},
		{`a@[127.0.0.1], , b@x.test`, `((NIL NIL "a" "[127.0.0.1]")(NIL NIL "b" "x.test"))`},
		{`Jörg <j@example.test>`, "(({5}\r\nJörg NIL \"j\" \"example.test\"))"},
		{``, `NIL`},
	}
	for _, tc := range tests {
		got := string(writeAddrs(nil, parseAddressList(tc.in)))
		if got != tc.want {
			t.Errorf("%q:\n got %s\nwant %s", tc.in, got, tc.want)
		}
	}
}

func TestSeedCorpus(t *testing.T) {
	files, _ := filepath.Glob("../../fixtures/transcripts/seed/*.eml")
	local, _ := filepath.Glob("testdata/*.eml")
	if len(files) < 47 || len(local) == 0 {
		t.Fatalf("seed corpus missing: %d fixtures/transcripts/seed, %d testdata", len(files), len(local))
	}
	files = append(files, local...)
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		p := Parse(raw)
		if p.Broken {
			t.Errorf("%s: Broken", f)
		}
		if p.SentDate.IsZero() || p.FromAddr == "" || p.MessageID == "" {
			t.Errorf("%s: date %v, from %q, message-id %q", f, p.SentDate, p.FromAddr, p.MessageID)
		}
		h, err := Section(raw, nil, "HEADER", nil)
		if err != nil || !bytes.Equal(h, raw[:p.HeaderLen]) {
			t.Errorf("%s: HEADER != raw[:HeaderLen]", f)
		}
		if txt, _ := Section(raw, nil, "TEXT", nil); !bytes.Equal(append(h[:len(h):len(h)], txt...), raw) {
			t.Errorf("%s: HEADER+TEXT != raw", f)
		}
	}
}

func TestTestdataForwarded(t *testing.T) {
	raw, err := os.ReadFile("testdata/13-INBOX.eml")
	if err != nil {
		t.Fatal(err)
	}
	p := Parse(raw)
	want := `(("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 33 1 NIL NIL NIL NIL)("MESSAGE" "RFC822" NIL NIL NIL "7BIT" 312 ("Wed, 11 Jun 2025 17:00:00 +0000" "Server maintenance window" (("Ops Team" NIL "ops" "example.test")) (("Ops Team" NIL "ops" "example.test")) (("Ops Team" NIL "ops" "example.test")) ((NIL NIL "all" "example.test")) NIL NIL NIL "<maint-inner@example.test>") ("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 42 1 NIL NIL NIL NIL) 10 NIL ("INLINE" NIL) NIL NIL) "MIXED" ("BOUNDARY" "fwd13") NIL NIL NIL)`
	if d := cmp.Diff(want, string(p.BodyStructure)); d != "" {
		t.Errorf("BODYSTRUCTURE (-want +got):\n%s", d)
	}
	got, _ := Section(raw, []int{2, 1}, "", nil)
	if string(got) != "Maintenance on Saturday 02:00-04:00 UTC.\r\n" {
		t.Errorf("BODY[2.1] = %q", got)
	}
}

func FuzzParse(f *testing.F) {
	for _, m := range [][]byte{msgPlain, msgAlternative, msgMixed, msgNested, msgNoContentType, msgTruncated, msgHeaderOnly, msgBareLF, msgDigest, nil,
		[]byte("\r\n"), []byte(":\r\n \r\n"), []byte("Content-Type: multipart/mixed; boundary=a\n\n--a\n--a\n--a--"),
		[]byte("Content-Type: message/rfc822\n\nContent-Type: message/rfc822\n\nFrom: <@a:b@c>, g:;\n"),
		[]byte("From: \"unterminated <a@b\nTo: (comment (nested\nContent-Type: text/plain; a*0*=x; a*1=y; ="),
	} {
		f.Add(m)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		p := parse(raw) // without Parse's recover
		if p.HeaderLen > p.Size || p.Size != len(raw) {
			t.Fatalf("HeaderLen %d Size %d len %d", p.HeaderLen, p.Size, len(raw))
		}
		whole, err := Section(raw, nil, "", nil)
		if err != nil || !bytes.Equal(whole, raw) {
			t.Fatal("BODY[] != raw")
		}
		if h, _ := Section(raw, nil, "HEADER", nil); !bytes.Equal(h, raw[:p.HeaderLen]) {
			t.Fatal("HEADER != raw[:HeaderLen]")
		}
		for _, part := range [][]int{{1}, {2}, {1, 1}, {2, 1}, {1, 2, 1}} {
			for _, spec := range []string{"", "HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT", "MIME"} {
				if _, err := Section(raw, part, spec, []string{"From", "Content-Type"}); err != nil {
					t.Fatal(err)
				}
			}
		}
		if !bytes.HasPrefix(p.BodyStructure, []byte("(")) || !bytes.HasSuffix(p.Envelope, []byte(")")) {
			t.Fatalf("malformed wire forms %q %q", p.BodyStructure, p.Envelope)
		}
	})
}

func BenchmarkParse(b *testing.B) {
	// About 10 KB: the mixed message with a larger text part.
	raw := append([]byte{}, msgMixed...)
	raw = bytes.Replace(raw, []byte("See attachment.\r\n"), bytes.Repeat([]byte("See attachment, a line of about seventy characters of plain text....\r\n"), 140), 1)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		Parse(raw)
	}
}

func TestParseDate(t *testing.T) {
	for in, want := range map[string]string{
		"Mon, 7 Feb 1994 21:52:25 -0800 (PST)":   "1994-02-07T21:52:25-08:00",
		"4 Jun 2025 13:45 +0200":                 "2025-06-04T13:45:00+02:00",
		"Wed, 4 Jun 2025 13:45:00 EST":           "2025-06-04T13:45:00-05:00",
		"Wed,  4 Jun 2025 13:45:00 GMT":          "2025-06-04T13:45:00Z",
		"Wed, 4 Jun 2025 13:45:00 +0000 (UTC) x": "2025-06-04T13:45:00Z",
		"garbage":                                "0001-01-01T00:00:00Z",
	} {
		if got := parseDate(in).Format(time.RFC3339); got != want {
			t.Errorf("parseDate(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestFormatAddrs(t *testing.T) {
	for in, want := range map[string]string{
		`a@b.test c@d.test`:                          "a@b.test, c@d.test",
		`=?utf-8?q?A?= =?utf-8?q?B?= <ab@x.test>`:    "AB <ab@x.test>",
		`G: a@b.test, "x" <y@z.test>; , last@x.test`: "G: a@b.test, x <y@z.test>;, last@x.test",
		`(only comment)`:                             "(only comment)",
		`=?iso-8859-1?q?Ren=E9e?= <r@x.test>`:        "Renée <r@x.test>",
	} {
		if got := formatAddrs(in); got != want {
			t.Errorf("formatAddrs(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestBodyTextCap(t *testing.T) {
	raw := append([]byte("Content-Type: text/plain; charset=utf-8\r\n\r\n"), bytes.Repeat([]byte("é"), MaxBodyText)...)
	p := Parse(raw)
	if len(p.BodyText) > MaxBodyText || len(p.BodyText) < MaxBodyText-1 || !utf8.ValidString(p.BodyText) {
		t.Errorf("BodyText len %d valid %v", len(p.BodyText), utf8.ValidString(p.BodyText))
	}
}

// TestBodyTextLargePart: the text of a part larger than MaxBodyText is the
// same as before, but only as much of the part as can fill it is decoded
// (a 20 MB part used to cost two or three copies of itself; issue 13).
func TestBodyTextLargePart(t *testing.T) {
	line := strings.Repeat("abcdefghij", 7) + "\r\n"
	body := strings.Repeat(line, (20<<20)/len(line))
	b64 := base64.StdEncoding.EncodeToString([]byte(body))
	var wrapped strings.Builder
	for i := 0; i < len(b64); i += 76 {
		wrapped.WriteString(b64[i:min(i+76, len(b64))] + "\r\n")
	}
	for _, c := range []struct{ name, cte, body string }{
		{"7bit", "7bit", body},
		{"base64", "base64", wrapped.String()},
	} {
		raw := []byte("Subject: big\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: " + c.cte +
			"\r\n\r\n" + c.body)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		p := Parse(raw)
		runtime.ReadMemStats(&after)
		if p.BodyText != body[:MaxBodyText] {
			t.Errorf("%s: body text differs (%d bytes)", c.name, len(p.BodyText))
		}
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 6*MaxBodyText {
			t.Errorf("%s: parsing a %d MB part allocated %d MB", c.name, len(c.body)>>20, alloc>>20)
		}
	}
}

// TestPartBomb: a message of a million empty parts allocated 900 MB to
// parse (10 MB of input); past maxParts the rest is one opaque part.
func TestPartBomb(t *testing.T) {
	raw := []byte("Content-Type: multipart/mixed; boundary=b\r\n\r\n" + strings.Repeat("--b\r\n\r\nx\r\n", 1<<20) + "--b--\r\n")
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	p := Parse(raw)
	runtime.ReadMemStats(&after)
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4*uint64(len(raw)) {
		t.Errorf("parsing %d MB of parts allocated %d MB", len(raw)>>20, alloc>>20)
	}
	bs := string(p.BodyStructure)
	if !p.Broken || !strings.Contains(bs[max(0, len(bs)-200):], `("APPLICATION" "OCTET-STREAM" NIL NIL NIL "7BIT" `) ||
		!strings.HasSuffix(bs, ` NIL NIL NIL NIL) "MIXED" ("BOUNDARY" "b") NIL NIL NIL)`) {
		t.Errorf("broken %v, bodystructure ends %q", p.Broken, p.BodyStructure[max(0, len(p.BodyStructure)-120):])
	}
	if n := strings.Count(string(p.Body), `("TEXT" "PLAIN"`); n != 9999 { // maxParts with the root
		t.Errorf("%d parts before the opaque rest, want 9999", n)
	}
}
