package imapd

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"decimail/internal/imaptest"
	"decimail/server/store"
)

// mixedHeader and mixedBody make a multipart/mixed message: a text part, an
// encapsulated message/rfc822 (itself multipart/alternative) and a base64
// attachment.
var (
	mixedHeader = fcrlf(`From: Alice <alice@example.com>
To: Bob <bob@example.com>
Subject: Nested
Date: Mon, 2 Nov 2026 10:00:00 +0100
Message-ID: <nested@example.com>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="outer"

`)
	innerHeader = fcrlf(`From: Carol <carol@example.com>
Subject: Inner
Content-Type: multipart/alternative; boundary="inner"

`)
	innerBody = fcrlf(`--inner
Content-Type: text/plain

inner text
--inner
Content-Type: text/html

<p>inner</p>
--inner--`)
	mixedBody = fcrlf(`preamble
--outer
Content-Type: text/plain; charset=us-ascii

Hello Bob.
--outer
Content-Type: message/rfc822

`) + innerHeader + innerBody + fcrlf(`
--outer
Content-Type: application/octet-stream; name="a.bin"
Content-Transfer-Encoding: base64
Content-Disposition: attachment; filename="a.bin"

AAEC
--outer--
`)
	mixedMsg = mixedHeader + mixedBody
)

const (
	mixedEnvelope = `("Mon, 2 Nov 2026 10:00:00 +0100" "Nested" (("Alice" NIL "alice" "example.com")) (("Alice" NIL "alice" "example.com")) (("Alice" NIL "alice" "example.com")) (("Bob" NIL "bob" "example.com")) NIL NIL NIL "<nested@example.com>")`
	innerEnvelope = `(NIL "Inner" (("Carol" NIL "carol" "example.com")) (("Carol" NIL "carol" "example.com")) (("Carol" NIL "carol" "example.com")) NIL NIL NIL NIL NIL)`
	// rfc3501.txt:4634, 4637: body-type-mpart, body-type-msg (envelope, body, lines).
	mixedBodyStructure = `(("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 10 1 NIL NIL NIL NIL)` +
		`("MESSAGE" "RFC822" NIL NIL NIL "7BIT" 214 ` + innerEnvelope +
		` (("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 10 1 NIL NIL NIL NIL)("TEXT" "HTML" ("CHARSET" "us-ascii") NIL NIL "7BIT" 12 1 NIL NIL NIL NIL) "ALTERNATIVE" ("BOUNDARY" "inner") NIL NIL NIL)` +
		` 13 NIL NIL NIL NIL)` +
		`("APPLICATION" "OCTET-STREAM" ("NAME" "a.bin") NIL NIL "BASE64" 4 NIL ("ATTACHMENT" ("FILENAME" "a.bin")) NIL NIL)` +
		` "MIXED" ("BOUNDARY" "outer") NIL NIL NIL)`
	mixedBodySimple = `(("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 10 1)` +
		`("MESSAGE" "RFC822" NIL NIL NIL "7BIT" 214 ` + innerEnvelope +
		` (("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 10 1)("TEXT" "HTML" ("CHARSET" "us-ascii") NIL NIL "7BIT" 12 1) "ALTERNATIVE") 13)` +
		`("APPLICATION" "OCTET-STREAM" ("NAME" "a.bin") NIL NIL "BASE64" 4) "MIXED")`
	internalDate = `"02-Nov-2026 10:00:00 +0000"`
)

func fcrlf(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }

// flit is a literal as a wanted response spells it (imaptest.ParseLine).
func flit(s string) string { return fmt.Sprintf("{%d}\r\n%s", len(s), s) }

// fetchEnv delivers mixedMsg (UID 1) and two plain messages (UIDs 2, 3) to
// INBOX and selects it.
func fetchEnv(t *testing.T) (*testEnv, *imaptest.TestClient) {
	e := newEnv(t)
	e.deliver("INBOX", mixedMsg, store.Flags{})
	e.deliver("INBOX", testMsg("two"), store.Flags{Flagged: true})
	e.deliver("INBOX", testMsg("three"), store.Flags{Seen: true, Keywords: []string{"$Forwarded"}})
	c := e.dial()
	c.OK("SELECT INBOX")
	return e, c
}

func TestFetchAttributes(t *testing.T) {
	e, c := fetchEnv(t)
	imaptest.Expect(t, c.OK("FETCH 1:3 (FLAGS UID RFC822.SIZE INTERNALDATE)"),
		fmt.Sprintf(`* 1 FETCH (FLAGS (\Recent) UID 1 RFC822.SIZE %d INTERNALDATE %s)`, len(mixedMsg), internalDate),
		fmt.Sprintf(`* 2 FETCH (FLAGS (\Flagged \Recent) UID 2 RFC822.SIZE %d INTERNALDATE %s)`, len(testMsg("two")), internalDate),
		fmt.Sprintf(`* 3 FETCH (FLAGS (\Seen $Forwarded \Recent) UID 3 RFC822.SIZE %d INTERNALDATE %s)`, len(testMsg("three")), internalDate))
	imaptest.Expect(t, c.OK("FETCH 1 (ENVELOPE BODY BODYSTRUCTURE)"),
		"* 1 FETCH (ENVELOPE "+mixedEnvelope+" BODY "+mixedBodySimple+" BODYSTRUCTURE "+mixedBodyStructure+")")
	// Item names are case-insensitive; order is the client's.
	imaptest.ExpectExact(t, c.OK("fetch 1 (rfc822.size uid)"), fmt.Sprintf("* 1 FETCH (RFC822.SIZE %d UID 1)", len(mixedMsg)))
	// INTERNALDATE keeps the zone it was stored with (date-time, rfc3501.txt:4713).
	_, err := e.st.Deliver(context.Background(), e.user.ID, []byte(testMsg("zoned")), store.DeliverOptions{Mailbox: "INBOX",
		InternalDate: time.Date(2026, 1, 5, 8, 4, 5, 0, time.FixedZone("", -(7*3600+30*60)))})
	if err != nil {
		t.Fatal(err)
	}
	imaptest.Expect(t, c.OK("NOOP"), "* 4 EXISTS", "* 4 RECENT")
	imaptest.Expect(t, c.OK("FETCH 4 INTERNALDATE"), `* 4 FETCH (INTERNALDATE "05-Jan-2026 08:04:05 -0730")`)
}

func TestFetchMacros(t *testing.T) {
	_, c := fetchEnv(t)
	size := len(mixedMsg)
	imaptest.Expect(t, c.OK("FETCH 1 FAST"), fmt.Sprintf(`* 1 FETCH (FLAGS (\Recent) INTERNALDATE %s RFC822.SIZE %d)`, internalDate, size))
	imaptest.Expect(t, c.OK("FETCH 1 all"), fmt.Sprintf(`* 1 FETCH (FLAGS (\Recent) INTERNALDATE %s RFC822.SIZE %d ENVELOPE %s)`, internalDate, size, mixedEnvelope))
	imaptest.Expect(t, c.OK("FETCH 1 FULL"), fmt.Sprintf(`* 1 FETCH (FLAGS (\Recent) INTERNALDATE %s RFC822.SIZE %d ENVELOPE %s BODY %s)`,
		internalDate, size, mixedEnvelope, mixedBodySimple))
}

// Every section form on the nested message (BODY[<section>], rfc3501.txt:3046-3125). All
// PEEK, so nothing changes \Seen.
func TestFetchSections(t *testing.T) {
	_, c := fetchEnv(t)
	textPart := "Hello Bob."
	for _, tc := range []struct{ item, want string }{
		{"BODY.PEEK[]", "BODY[] " + flit(mixedMsg)},
		{"BODY.PEEK[HEADER]", "BODY[HEADER] " + flit(mixedHeader)},
		{"BODY.PEEK[TEXT]", "BODY[TEXT] " + flit(mixedBody)},
		{"BODY.PEEK[1]", "BODY[1] " + flit(textPart)},
		{"BODY.PEEK[1.MIME]", "BODY[1.MIME] " + flit("Content-Type: text/plain; charset=us-ascii\r\n\r\n")},
		{"BODY.PEEK[2]", "BODY[2] " + flit(innerHeader+innerBody)},
		{"BODY.PEEK[2.MIME]", "BODY[2.MIME] " + flit("Content-Type: message/rfc822\r\n\r\n")},
		{"BODY.PEEK[2.HEADER]", "BODY[2.HEADER] " + flit(innerHeader)},
		{"BODY.PEEK[2.TEXT]", "BODY[2.TEXT] " + flit(innerBody)},
		{"BODY.PEEK[2.1]", "BODY[2.1] " + flit("inner text")},
		{"BODY.PEEK[2.2]", "BODY[2.2] " + flit("<p>inner</p>")},
		{"BODY.PEEK[2.2.MIME]", "BODY[2.2.MIME] " + flit("Content-Type: text/html\r\n\r\n")},
		{"BODY.PEEK[2.HEADER.FIELDS (Subject)]", "BODY[2.HEADER.FIELDS (Subject)] " + flit("Subject: Inner\r\n\r\n")},
		{"BODY.PEEK[2.HEADER.FIELDS.NOT (Subject Content-Type)]", "BODY[2.HEADER.FIELDS.NOT (Subject Content-Type)] " + flit("From: Carol <carol@example.com>\r\n\r\n")},
		{"BODY.PEEK[3]", "BODY[3] " + flit("AAEC")},
		{"BODY.PEEK[3.MIME]", "BODY[3.MIME] " + flit("Content-Type: application/octet-stream; name=\"a.bin\"\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"a.bin\"\r\n\r\n")},
		// Field names keep the client's spelling; matching is case-insensitive.
		{"BODY.PEEK[HEADER.FIELDS (subject TO)]", "BODY[HEADER.FIELDS (subject TO)] " + flit("To: Bob <bob@example.com>\r\nSubject: Nested\r\n\r\n")},
		{`body.peek[header.fields ("Subject" X-Missing)]`, "BODY[HEADER.FIELDS (Subject X-Missing)] " + flit("Subject: Nested\r\n\r\n")},
		{"BODY.PEEK[HEADER.FIELDS (X-Missing)]", "BODY[HEADER.FIELDS (X-Missing)] " + flit("\r\n")},
		{"BODY.PEEK[HEADER.FIELDS.NOT (From To Date Message-ID MIME-Version Content-Type)]",
			"BODY[HEADER.FIELDS.NOT (From To Date Message-ID MIME-Version Content-Type)] " + flit("Subject: Nested\r\n\r\n")},
		// Parts that do not exist, HEADER of a part that is not a message.
		{"BODY.PEEK[4]", "BODY[4] NIL"},
		{"BODY.PEEK[2.3]", "BODY[2.3] NIL"},
		{"BODY.PEEK[1.HEADER]", "BODY[1.HEADER] NIL"},
		// RFC822.* (rfc3501.txt:3179-3201).
		{"RFC822.HEADER", "RFC822.HEADER " + flit(mixedHeader)},
	} {
		// Exact: the section names keep the client's spelling.
		imaptest.ExpectExact(t, c.OK("FETCH 1 "+tc.item), "* 1 FETCH ("+tc.want+")")
	}
	// Several sections in one command, one response, in the client's order.
	imaptest.ExpectExact(t, c.OK("FETCH 1 (BODY.PEEK[1] UID BODY.PEEK[2.1])"), "* 1 FETCH (BODY[1] "+flit(textPart)+" UID 1 BODY[2.1] "+flit("inner text")+")")
	// Part 1 of a non-multipart message is its body (rfc3501.txt:3057).
	imaptest.Expect(t, c.OK("FETCH 2 BODY.PEEK[1]"), "* 2 FETCH (BODY[1] "+flit("Hello two\r\n")+")")
	imaptest.Expect(t, c.OK("FETCH 1:3 FLAGS"), `* 1 FETCH (FLAGS (\Recent))`, `* 2 FETCH (FLAGS (\Flagged \Recent))`, `* 3 FETCH (FLAGS (\Seen $Forwarded \Recent))`)
}

// Partial fetches name only the origin in the response (rfc3501.txt:3148-3150:
// "BODY[]<0.2048> of a 1500-octet message will return BODY[]<0>").
func TestFetchPartial(t *testing.T) {
	_, c := fetchEnv(t)
	h := len(mixedHeader)
	for _, tc := range []struct{ item, want string }{
		{"BODY.PEEK[]<0.10>", "BODY[]<0> " + flit(mixedMsg[:10])},
		// Across the header/body boundary.
		{fmt.Sprintf("BODY.PEEK[]<%d.12>", h-4), fmt.Sprintf("BODY[]<%d> ", h-4) + flit(mixedMsg[h-4:h+8])},
		// Starting in the body.
		{fmt.Sprintf("BODY.PEEK[]<%d.8>", h+2), fmt.Sprintf("BODY[]<%d> ", h+2) + flit(mixedMsg[h+2:h+10])},
		// Truncated at the end.
		{fmt.Sprintf("BODY.PEEK[]<%d.100>", len(mixedMsg)-5), fmt.Sprintf("BODY[]<%d> ", len(mixedMsg)-5) + flit(mixedMsg[len(mixedMsg)-5:])},
		// Beyond the end: empty string.
		{"BODY.PEEK[]<100000.10>", `BODY[]<100000> ""`},
		{fmt.Sprintf("BODY.PEEK[]<%d.1>", len(mixedMsg)), fmt.Sprintf(`BODY[]<%d> ""`, len(mixedMsg))},
		{"BODY.PEEK[TEXT]<0.8>", "BODY[TEXT]<0> " + flit("preamble")},
		{"BODY.PEEK[1]<6.100>", "BODY[1]<6> " + flit("Bob.")},
		{"BODY.PEEK[HEADER.FIELDS (Subject)]<2.5>", "BODY[HEADER.FIELDS (Subject)]<2> " + flit("bject")},
		{"BODY.PEEK[2.1]<4294967295.1>", `BODY[2.1]<4294967295> ""`},
		{"BODY.PEEK[9]<0.5>", "BODY[9]<0> NIL"},
	} {
		imaptest.Expect(t, c.OK("FETCH 1 "+tc.item), "* 1 FETCH ("+tc.want+")")
	}
}

// The wire form of FETCH data: a literal with its exact octet count for a
// body, "" for a partial beyond the end, NIL for a part that does not exist.
// Expect compares literals and quoted strings alike, so this reads the
// responses raw.
func TestFetchLiteralFraming(t *testing.T) {
	_, c := fetchEnv(t)
	for cmd, want := range map[string]string{
		"FETCH 1 BODY.PEEK[1]":           "* 1 FETCH (BODY[1] {10}\r\nHello Bob.)\r\n",
		"FETCH 2 BODY.PEEK[TEXT]<6.100>": "* 2 FETCH (BODY[TEXT]<6> {5}\r\ntwo\r\n)\r\n",
		"FETCH 1 BODY.PEEK[]<100000.10>": "* 1 FETCH (BODY[]<100000> \"\")\r\n",
		"FETCH 1 BODY.PEEK[4]":           "* 1 FETCH (BODY[4] NIL)\r\n",
	} {
		var got []string
		if err := c.Stream(cmd, func(r *imaptest.Raw) { got = append(got, string(r.Bytes)) }); err != nil {
			t.Fatalf("%s: %v", cmd, err)
		}
		if len(got) != 1 || got[0] != want {
			t.Errorf("%s: %q, want %q", cmd, got, want)
		}
	}
}

// BODY[...], RFC822 and RFC822.TEXT set \Seen and report the new flags
// (rfc3501.txt:3156-3157); PEEK and RFC822.HEADER do not; EXAMINE never does.
func TestFetchImplicitSeen(t *testing.T) {
	e, c := fetchEnv(t)
	e.deliver("INBOX", testMsg("four"), store.Flags{})
	e.deliver("INBOX", testMsg("five"), store.Flags{})
	c.OK("NOOP")
	text := "Hello two\r\n"
	// Another session looks read-only first: nothing changes.
	c2 := e.dial()
	c2.OK("EXAMINE INBOX")
	imaptest.Expect(t, c2.OK("FETCH 2 BODY[TEXT]"), "* 2 FETCH (BODY[TEXT] "+flit(text)+")")
	imaptest.Expect(t, c2.OK("FETCH 2 (RFC822.TEXT FLAGS)"), "* 2 FETCH (RFC822.TEXT "+flit(text)+` FLAGS (\Flagged))`)

	imaptest.Expect(t, c.OK("FETCH 2 BODY.PEEK[TEXT]"), "* 2 FETCH (BODY[TEXT] "+flit(text)+")")
	imaptest.Expect(t, c.OK("FETCH 2 RFC822.HEADER"), "* 2 FETCH (RFC822.HEADER "+flit(testMsg("two")[:len(testMsg("two"))-len(text)])+")")
	imaptest.Expect(t, c.OK("FETCH 2 FLAGS"), `* 2 FETCH (FLAGS (\Flagged \Recent))`)
	// Newly \Seen: FLAGS comes along; the poll does not repeat it.
	imaptest.Expect(t, c.OK("FETCH 2 BODY[TEXT]"), "* 2 FETCH (BODY[TEXT] "+flit(text)+` FLAGS (\Flagged \Seen \Recent))`)
	imaptest.Expect(t, c.OK("FETCH 2 BODY[TEXT]"), "* 2 FETCH (BODY[TEXT] "+flit(text)+")")
	imaptest.Expect(t, c.OK("NOOP"))
	// FLAGS requested: it is current, and not repeated.
	imaptest.Expect(t, c.OK("FETCH 4 (FLAGS RFC822)"), `* 4 FETCH (FLAGS (\Seen \Recent) RFC822 `+flit(testMsg("four"))+")")
	imaptest.Expect(t, c.OK("UID FETCH 5 RFC822.TEXT"), "* 5 FETCH (UID 5 RFC822.TEXT "+flit("Hello five\r\n")+` FLAGS (\Seen \Recent))`)
	// Already \Seen: no FLAGS.
	imaptest.Expect(t, c.OK("FETCH 3 BODY[1]"), "* 3 FETCH (BODY[1] "+flit("Hello three\r\n")+")")
	imaptest.Expect(t, c.OK("NOOP"))
	// The other session learns the changes at its next poll.
	imaptest.Expect(t, c2.OK("NOOP"), `* 2 FETCH (FLAGS (\Flagged \Seen))`, `* 4 FETCH (FLAGS (\Seen))`, `* 5 FETCH (FLAGS (\Seen))`)
	// One command over several messages sets all of them at once.
	c.OK("STORE 1:5 -FLAGS.SILENT (\\Seen)")
	imaptest.Expect(t, c.OK("FETCH 1:3 BODY[HEADER.FIELDS (Subject)]"),
		"* 1 FETCH (BODY[HEADER.FIELDS (Subject)] "+flit("Subject: Nested\r\n\r\n")+` FLAGS (\Seen \Recent))`,
		"* 2 FETCH (BODY[HEADER.FIELDS (Subject)] "+flit("Subject: two\r\n\r\n")+` FLAGS (\Flagged \Seen \Recent))`,
		"* 3 FETCH (BODY[HEADER.FIELDS (Subject)] "+flit("Subject: three\r\n\r\n")+` FLAGS (\Seen $Forwarded \Recent))`)
	imaptest.Expect(t, c.OK("NOOP"))
}

// In the "Unread" view (UNSEEN) reading a message makes it leave the view:
// the body still comes, with its new flags, and the message stays in this
// session until a sync point (CHECK; not NOOP: README "Own changes in a view").
func TestFetchSeenInUnreadView(t *testing.T) {
	e := newEnv(t)
	e.deliver("INBOX", testMsg("one"), store.Flags{})
	c := e.dial()
	c.OK("SELECT Unread")
	imaptest.Expect(t, c.OK("FETCH 1 BODY[TEXT]"), "* 1 FETCH (BODY[TEXT] "+flit("Hello one\r\n")+` FLAGS (\Seen \Recent))`)
	imaptest.Expect(t, c.OK("NOOP"))
	imaptest.Expect(t, c.OK("CHECK"), "* 1 EXPUNGE")
}

// UID FETCH always reports UID (rfc3501.txt:3397); n:* includes the last
// message even when n is above it (rfc3501.txt:5020-5022: "includes the UID of
// the last message"); missing UIDs are ignored.
func TestFetchUID(t *testing.T) {
	_, c := fetchEnv(t)
	imaptest.Expect(t, c.OK("UID FETCH 2 FLAGS"), `* 2 FETCH (UID 2 FLAGS (\Flagged \Recent))`)
	imaptest.Expect(t, c.OK("UID FETCH 2 (FLAGS UID)"), `* 2 FETCH (FLAGS (\Flagged \Recent) UID 2)`)
	imaptest.Expect(t, c.OK("UID FETCH 10:* UID"), `* 3 FETCH (UID 3)`)
	imaptest.Expect(t, c.OK("UID FETCH 2:* RFC822.SIZE"), fmt.Sprintf(`* 2 FETCH (UID 2 RFC822.SIZE %d)`, len(testMsg("two"))),
		fmt.Sprintf(`* 3 FETCH (UID 3 RFC822.SIZE %d)`, len(testMsg("three"))))
	imaptest.Expect(t, c.OK("UID FETCH 7,9 UID"))
	imaptest.Expect(t, c.OK("FETCH 3:* UID"), `* 3 FETCH (UID 3)`)
	if _, done := c.Do("FETCH 4 UID"); done.Status != "BAD" {
		t.Fatalf("FETCH beyond the view: %s", done)
	}
}

// EMAILID is the message's global id: the same through INBOX and the
// "All Mail" view (rfc8474.txt:289ff).
func TestFetchObjectID(t *testing.T) {
	e, c := fetchEnv(t)
	d := e.deliver("Archive", testMsg("archived"), store.Flags{})
	_ = d
	in := c.OK("FETCH 1:3 (EMAILID THREADID)")
	c.OK("EXAMINE \"All Mail\"")
	all := c.OK("FETCH 1:3 (EMAILID THREADID)")
	if d := imaptest.DiffResps(all, in); d != "" {
		t.Fatalf("All Mail and INBOX differ:\n%s", d)
	}
	ids := map[string]bool{}
	// objectID is the one id in a FETCH item's list: "EMAILID (E12)".
	objectID := func(r *imaptest.Resp, item, prefix string) string {
		v := r.Attrs()[item]
		if v.Kind != imaptest.List || len(v.L) != 1 || v.L[0].Kind != imaptest.Atom || !strings.HasPrefix(v.L[0].S, prefix) {
			t.Fatalf("bad %s in %s", item, r)
		}
		return v.L[0].S
	}
	for _, r := range in {
		objectID(r, "THREADID", "T")
		ids[objectID(r, "EMAILID", "E")] = true
	}
	if len(ids) != 3 {
		t.Fatalf("EMAILIDs not distinct: %q", in)
	}
	if u := c.OK("FETCH 4 EMAILID"); len(u) != 1 || ids[objectID(u[0], "EMAILID", "E")] {
		t.Fatalf("archived message: %q", u)
	}
}

// A message another session deleted (expunged from its only folder) before
// this one was told: the others are served, the sequence numbers stay
// valid, FETCH sends no EXPUNGE (rfc3501.txt:4053) and answers NO
// [EXPUNGEISSUED] (RFC 2180 §4.1.2), not a silent OK that leaves it out
// (issue 14).
func TestFetchExpungedIsNo(t *testing.T) {
	e, c := fetchEnv(t)
	c2 := e.dial()
	c2.OK("SELECT INBOX")
	c2.OK("STORE 1 +FLAGS.SILENT (\\Deleted)")
	c2.OK("EXPUNGE")
	u, done := c.Do("FETCH 1:2 UID")
	if done.Status != "NO" || done.CodeName() != "EXPUNGEISSUED" {
		t.Fatalf("FETCH of an expunged message: %s %s", done, u)
	}
	imaptest.Expect(t, u, `* 2 FETCH (UID 2)`)
	u, done = c.Do("FETCH 1 BODY[]")
	if done.Status != "NO" {
		t.Fatalf("FETCH BODY[] of an expunged message: %s", done)
	}
	imaptest.Expect(t, u)
	imaptest.Expect(t, c.OK("NOOP"), "* 1 EXPUNGE")
	imaptest.Expect(t, c.OK("FETCH 1 UID"), `* 1 FETCH (UID 2)`)
}

func TestFetchBad(t *testing.T) {
	_, c := fetchEnv(t)
	for _, cmd := range []string{
		"FETCH 1 FROBS",
		"FETCH 1 BODY[FROBS]",
		"FETCH 1 BODY[]<5.0>",
		"FETCH 1 BODY[]<5>",
		"FETCH 1 BODY[]<x.1>",
		"FETCH 1 BODY[]<0.9223372036854775808>", // past number64 (IMAP4rev2 widened it from 32 bits)
		"FETCH 1 BODY[1.]",
		"FETCH 1 BODY[0]",
		"FETCH 1 BODY[01]",
		"FETCH 1 BODY[1..2]",
		"FETCH 1 BODY[MIME]",
		"FETCH 1 BODY[1.FROBS]",
		"FETCH 1 BODY[HEADER.FIELDS]",
		"FETCH 1 BODY[HEADER.FIELDS ()]",
		"FETCH 1 BODY[HEADER.FIELDS (From  To)]",
		"FETCH 1 BODY[HEADER.FIELDS From]",
		"FETCH 1 BODY[TEXT]x",
		"FETCH 1 BODYX[]",
		"FETCH 1 BINARY[1.MIME]",
		"FETCH 1 BINARY[TEXT]",
		"FETCH 1 BINARY.SIZE[1]<0.5>",
		"FETCH 1 BINARY.FROBS[1]",
		"FETCH 1 RFC822.FROBS",
		"FETCH 1 (ALL)",
		"FETCH 1 (FLAGS FROBS)",
		"FETCH 1 ()",
		"FETCH 1 \"FLAGS\"",
		"FETCH 1",
		"FETCH 1 FLAGS UID",
		"FETCH x FLAGS",
		"FETCH 9 FLAGS",
		"UID FETCH x FLAGS",
	} {
		if u, done := c.Do(cmd); done.Status != "BAD" || len(u) != 0 {
			t.Errorf("%s: %q %q, want BAD", cmd, u, done)
		}
	}
	c.OK("CLOSE")
	if _, done := c.Do("FETCH 1 FLAGS"); done.Status != "BAD" {
		t.Fatalf("FETCH unselected: %s", done)
	}
}

// BenchmarkFetchHeaders: what a client does when it opens a mailbox
// (compare Dovecot: ~190 ms for 10k messages).
func BenchmarkFetchHeaders(b *testing.B) {
	e := newEnv(b)
	ctx := context.Background()
	for i := range 1000 {
		raw := mixedMsg
		if i%2 == 0 {
			raw = testMsg(fmt.Sprint("message ", i))
		}
		if _, err := e.st.Deliver(ctx, e.user.ID, []byte(raw), store.DeliverOptions{Mailbox: "INBOX"}); err != nil {
			b.Fatal(err)
		}
	}
	c := e.dial()
	c.OK("EXAMINE INBOX")
	b.ResetTimer()
	for b.Loop() {
		if n := drain(b, c, "UID FETCH 1:* (UID RFC822.SIZE FLAGS INTERNALDATE ENVELOPE BODYSTRUCTURE)"); n != 1000 {
			b.Fatalf("%d responses", n)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000, "µs/msg")
}

// drain runs a command that must succeed and counts its untagged responses
// on the client's raw path, without parsing them (the server's cost, not
// the test client's, is measured).
func drain(b *testing.B, c *imaptest.TestClient, cmd string) int {
	b.Helper()
	n := 0
	if err := c.Stream(cmd, func(r *imaptest.Raw) {
		if r.Bytes[0] == '*' {
			n++
		}
	}); err != nil {
		b.Fatalf("%s: %v", cmd, err)
	}
	return n
}

// BenchmarkFetchFlagsAll: UID FETCH 1:* (UID FLAGS) of 2,000 messages, a
// client's resync, answered from the view (fetcher.fromView); the
// responses are read as lines, not parsed.
func BenchmarkFetchFlagsAll(b *testing.B) {
	e := newEnv(b)
	benchFill(e, 2000)
	c := e.dial()
	c.OK("SELECT INBOX")
	b.ReportAllocs()
	for b.Loop() {
		n := 0
		if err := c.Stream("UID FETCH 1:* (UID FLAGS)", func(*imaptest.Raw) { n++ }); err != nil || n != 2000 {
			b.Fatalf("%d responses, %v", n, err)
		}
	}
}
