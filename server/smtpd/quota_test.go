package smtpd_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"

	"decimail/server/smtpd"
	"decimail/server/store"
)

// A local recipient over quota: RCPT is refused with 552 5.2.2 when there
// is no room for the declared SIZE (or any message at all); a message
// that does not fit once its real size is known fails at DATA, 552 5.2.2,
// and nothing is stored.
func TestQuotaRcpt(t *testing.T) {
	e := newEnv(t, smtpd.Config{})
	ctx := context.Background()
	must(t, e.st.SetUserSetting(ctx, "u", store.QuotaStorageKey, "1"))
	msg := "From: a@example.org\r\nTo: u@example.test\r\nSubject: q\r\n\r\n" + strings.Repeat("x", 600) + "\r\n"

	c := dial(t, e.mx)
	must(t, send(c, "a@example.org", []string{"u@example.test"}, msg)) // about 660 octets of 1024
	err := send(c, "a@example.org", []string{"u@example.test"}, msg)   // does not fit: refused at DATA
	wantEnhanced(t, err, 552, smtp.EnhancedCode{5, 2, 2})
	must(t, c.Reset())
	if err := c.Mail("a@example.org", &smtp.MailOptions{Size: 500}); err != nil {
		t.Fatal(err)
	}
	wantEnhanced(t, c.Rcpt("u@example.test", nil), 552, smtp.EnhancedCode{5, 2, 2}) // declared SIZE does not fit
	must(t, c.Reset())
	q, err := e.st.Quota(ctx, e.u.ID)
	must(t, err)
	if q.Messages != 1 {
		t.Fatalf("stored %d messages, want 1", q.Messages)
	}
}

func wantEnhanced(t testing.TB, err error, code int, enh smtp.EnhancedCode) {
	t.Helper()
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != code || se.EnhancedCode != enh {
		t.Fatalf("got %v, want %d %v", err, code, enh)
	}
}
