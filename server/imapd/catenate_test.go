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

const catMultipart = "From: a@example.com\r\nSubject: parts\r\nMIME-Version: 1.0\r\n" +
	"Content-Type: multipart/mixed; boundary=b\r\n\r\n" +
	"--b\r\nContent-Type: text/plain\r\n\r\nfirst part\r\n" +
	"--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\nAAECAw==\r\n" +
	"--b--\r\n"

// fetchBody returns BODY.PEEK[] of uid in a mailbox of the env's user.
func (e *testEnv) fetchBody(mailbox string, uid uint32) string {
	e.t.Helper()
	mb, err := e.st.Mailbox(context.Background(), e.user.ID, mailbox)
	if err != nil {
		e.t.Fatal(err)
	}
	var got string
	err = e.st.Fetch(context.Background(), mb.Box(), []uint32{uid}, store.FetchCols{Header: true, Body: true}, func(r *store.FetchRow) error {
		got = string(r.Header) + string(r.Body)
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return got
}

// CATENATE (RFC 4469): a message made of literals and parts of the user's
// own messages named by relative IMAP URLs: the server "copies octets,
// unchanged" (rfc4469.txt:192-202); with MULTIAPPEND; \Seen of the source untouched.
func TestCatenate(t *testing.T) {
	e := newEnv(t)
	d := e.deliver("INBOX", catMultipart, store.Flags{})
	c := e.dial()
	if caps := c.OK("CAPABILITY")[0].String(); !strings.Contains(caps, " CATENATE") {
		t.Fatalf("capabilities: %s", caps)
	}
	c.OK("CREATE Drafts/Old")
	head := "Subject: forward\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n"
	u1 := fmt.Sprintf("/INBOX;UIDVALIDITY=%d/;UID=%d/;SECTION=1.MIME", d.UIDValidity, d.UID)
	_, done := c.Do(`APPEND Drafts (\Draft) CATENATE (TEXT ` + litArg(head) + ` URL "` + u1 + `" URL "/inbox/;uid=1/;section=1" TEXT ` +
		litArg("\r\n--x--\r\n") + `) CATENATE (URL "/INBOX/;UID=1/;SECTION=HEADER.FIELDS%20(Subject)" TEXT {5+}` + "\r\nbody\n" +
		`) CATENATE (URL "/INBOX/;UID=1/;PARTIAL=2.3")`)
	drafts, _ := e.st.Mailbox(t.Context(), e.user.ID, "Drafts")
	imaptest.ExpectDone(t, done, fmt.Sprintf("OK [APPENDUID %d 1:3] APPEND completed", drafts.UIDValidity))
	want := head + "Content-Type: text/plain\r\n\r\n" + "first part" + "\r\n--x--\r\n"
	if got := e.fetchBody("Drafts", 1); got != want {
		t.Errorf("catenated message:\n%q\nwant\n%q", got, want)
	}
	if got := e.fetchBody("Drafts", 2); got != "Subject: parts\r\n\r\nbody\n" {
		t.Errorf("second message: %q", got)
	}
	if got := e.fetchBody("Drafts", 3); got != "om:" {
		t.Errorf("partial: %q", got)
	}
	c.OK("SELECT INBOX")
	imaptest.Expect(t, c.OK("FETCH 1 FLAGS"), `* 1 FETCH (FLAGS (\Recent))`) // "If a message URL is specified": "does not cause the \Seen flag to be set" (rfc4469.txt:147-158)
}

// A URL that names nothing of this user's is NO [BADURL url] and stores
// nothing: a missing UID, a wrong UIDVALIDITY, a missing part, a mailbox
// only another user has, another user's message at a UID this user's
// mailbox does not have, an absolute URL, bad syntax (rfc4469.txt:215-222).
func TestCatenateBadURL(t *testing.T) {
	e := newEnv(t)
	d := e.deliver("INBOX", catMultipart, store.Flags{})
	ctx := context.Background()
	v, err := e.st.CreateUser(ctx, "v", "pw")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.CreateMailbox(ctx, v.ID, "Secret", "", ""); err != nil {
		t.Fatal(err)
	}
	secret := "Subject: secret\r\n\r\nv's secret\r\n"
	var vd store.Delivered
	for i := range 3 {
		if vd, err = e.st.Deliver(ctx, v.ID, []byte(secret), store.DeliverOptions{Mailbox: []string{"Secret", "INBOX", "INBOX"}[i]}); err != nil {
			t.Fatal(err)
		}
	}
	c := e.dial()
	for _, url := range []string{
		"/INBOX/;UID=2",
		fmt.Sprintf("/INBOX;UIDVALIDITY=%d/;UID=1", d.UIDValidity+1),
		"/INBOX/;UID=1/;SECTION=3",
		"/INBOX/;UID=1/;SECTION=2.HEADER",
		"/Secret/;UID=1",
		fmt.Sprintf("/INBOX;UIDVALIDITY=%d/;UID=%d", vd.UIDValidity, vd.UID), // v's INBOX UID 2; u has only UID 1
		"imap://v@localhost/Secret/;UID=1",
		"//localhost/INBOX/;UID=1",
		"INBOX/;UID=1",
		"/INBOX",
		"/INBOX/;UID=0",
		"/INBOX/;SECTION=1/;UID=1",
		"/INBOX/;UID=1/;SECTION=1/;SECTION=1",
		"/INBOX/;UID=1/;PARTIAL=x",
		"/INBOX/;UID=1/;FROBS=1",
		"/%ZZ/;UID=1",
	} {
		_, done := c.Do(`APPEND INBOX CATENATE (TEXT {4+}` + "\r\nhi\r\n" + ` URL "` + url + `")`)
		imaptest.ExpectDone(t, done, "NO [BADURL "+url+"] bad URL")
	}
	imaptest.Expect(t, c.OK("STATUS INBOX (MESSAGES UIDNEXT)"), `* STATUS "INBOX" (MESSAGES 1 UIDNEXT 2)`)
	for _, cmd := range []string{
		`APPEND INBOX CATENATE ()`,
		`APPEND INBOX CATENATE (TEXT)`,
		`APPEND INBOX CATENATE (TEXT "quoted")`,
		`APPEND INBOX CATENATE (URL (x))`,
		`APPEND INBOX CATENATE (FROBS "/INBOX/;UID=1")`,
		`APPEND INBOX CATENATE`,
	} {
		if _, done := c.Do(cmd); done.Status != "BAD" {
			t.Errorf("%s: %s, want BAD", cmd, done)
		}
	}
	// The zero-length result is refused like an empty literal.
	if _, done := c.Do(`APPEND INBOX CATENATE (TEXT {0+}` + "\r\n)"); done.Status != "NO" {
		t.Errorf("empty catenation: %s", done)
	}
}

// The catenated message is bounded by the APPEND limit: NO [TOOBIG]
// (rfc4469.txt:231-240), and all messages of one APPEND together by the
// command's literal limit (MaxAppendLiteral + MaxLiteral), which small URLs
// would escape. Switched off, CATENATE is not advertised and BAD.
func TestCatenateLimitAndDisabled(t *testing.T) {
	e := newEnv(t)
	body := strings.Repeat("x", 3000)
	e.deliver("INBOX", "Subject: big\r\n\r\n"+body, store.Flags{})
	_, addr := e.serve(Config{MaxAppendLiteral: 4096, MaxLiteral: 1024, AuthFailDelay: time.Millisecond})
	c := e.dialAddr(addr)
	c.OK("LOGIN u pw")
	_, done := c.Do(`APPEND INBOX CATENATE (URL "/INBOX/;UID=1" URL "/INBOX/;UID=1/;SECTION=TEXT")`)
	if done.Status != "NO" || done.CodeName() != "TOOBIG" {
		t.Fatalf("catenation over the limit: %s", done)
	}
	_, done = c.Do(`APPEND INBOX CATENATE (URL "/INBOX/;UID=1") CATENATE (URL "/INBOX/;UID=1")`)
	if done.Status != "NO" || done.CodeName() != "TOOBIG" {
		t.Fatalf("MULTIAPPEND of catenations over the command's limit: %s", done)
	}
	imaptest.Expect(t, c.OK("STATUS INBOX (MESSAGES)"), `* STATUS "INBOX" (MESSAGES 1)`)
	c.OK(`APPEND INBOX CATENATE (URL "/INBOX/;UID=1" TEXT {2+}` + "\r\n\r\n)")
	imaptest.Expect(t, c.OK("STATUS INBOX (MESSAGES)"), `* STATUS "INBOX" (MESSAGES 2)`)

	_, addr = e.serve(Config{Disabled: map[string]bool{"CATENATE": true}, AuthFailDelay: time.Millisecond})
	d := e.dialAddr(addr)
	d.OK("LOGIN u pw")
	if caps := d.OK("CAPABILITY")[0].String(); strings.Contains(caps, "CATENATE") {
		t.Fatalf("CATENATE advertised though switched off: %s", caps)
	}
	if _, done := d.Do(`APPEND INBOX CATENATE (URL "/INBOX/;UID=1")`); done.Status != "BAD" {
		t.Fatalf("CATENATE switched off: %s", done)
	}
}
