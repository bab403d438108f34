package imapd

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"

	"decimail/internal/imaptest"
	"decimail/server/store"
)

// PREVIEW (RFC 8970): made at delivery from the first text part, decoded
// (base64, charset) and HTML reduced to text; "" when there is no text ("zero-length string", not
// NIL: rfc8970.txt:172-188). A message stored before previews were kept
// gets one made on FETCH PREVIEW; PREVIEW (LAZY) answers NIL for it.
func TestPreview(t *testing.T) {
	e := newEnv(t)
	html := `<html><head><style>p{}</style></head><body><p>Caf&eacute; <b>ouvert</b></p></body></html>`
	e.deliver("INBOX", "Subject: h\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"+
		base64.StdEncoding.EncodeToString([]byte(html))+"\r\n", store.Flags{})
	e.deliver("INBOX", "Subject: img\r\nContent-Type: image/gif\r\n\r\nGIF89a\r\n", store.Flags{})
	e.deliver("INBOX", testMsg("old one"), store.Flags{})
	// As if stored before schema 0021: no preview kept.
	if _, err := e.st.Pool().Exec(context.Background(), `UPDATE messages SET preview = NULL WHERE subject = 'old one'`); err != nil {
		t.Fatal(err)
	}
	c := e.dial()
	if caps := c.OK("CAPABILITY")[0].String(); !strings.Contains(caps, " PREVIEW") {
		t.Fatalf("capabilities: %s", caps)
	}
	c.OK("SELECT INBOX")
	imaptest.Expect(t, c.OK("FETCH 1:3 (UID PREVIEW (LAZY))"),
		`* 1 FETCH (UID 1 PREVIEW "Café ouvert")`, `* 2 FETCH (UID 2 PREVIEW "")`, `* 3 FETCH (UID 3 PREVIEW NIL)`)
	imaptest.Expect(t, c.OK("FETCH 3 PREVIEW"), `* 3 FETCH (PREVIEW "Hello old one")`)
	imaptest.Expect(t, c.OK("FETCH 3 PREVIEW (LAZY)"), `* 3 FETCH (PREVIEW NIL)`)
	imaptest.Expect(t, c.OK("FETCH 3 (PREVIEW (LAZY) PREVIEW)"), `* 3 FETCH (PREVIEW "Hello old one" PREVIEW "Hello old one")`)
	c.OK("COPY 1 INBOX") // a real copy keeps the preview
	imaptest.Expect(t, c.OK("FETCH 4 (PREVIEW (LAZY))"), `* 4 FETCH (PREVIEW "Café ouvert")`)
	for _, cmd := range []string{"FETCH 1 (PREVIEW (EAGER))", "FETCH 1 (PREVIEW ())"} {
		if _, done := c.Do(cmd); done.Status != "BAD" {
			t.Errorf("%s: %s", cmd, done)
		}
	}

	_, addr := e.serve(Config{Disabled: map[string]bool{"PREVIEW": true}})
	d := e.dialAddr(addr)
	d.OK("LOGIN u pw")
	if caps := d.OK("CAPABILITY")[0].String(); strings.Contains(caps, "PREVIEW") {
		t.Fatalf("PREVIEW advertised though switched off: %s", caps)
	}
	d.OK("SELECT INBOX")
	if _, done := d.Do("FETCH 1 (PREVIEW)"); done.Status != "BAD" {
		t.Fatalf("FETCH PREVIEW switched off: %s", done)
	}
}
