package smtpd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/emersion/go-smtp"

	"decimail/server/store"
)

// bounce delivers a delivery status notification (RFC 3464, multipart/report
// RFC 6522) for the failed recipients into the sender's INBOX. Only local
// senders get bounces (never mail to a remote address: no backscatter); a
// message without a local sender is dropped with a log line.
func (r *Relay) bounce(ctx context.Context, m *store.OutboundMessage, fails []failure) error {
	user := m.UserID
	if user == 0 {
		u, err := r.st.LookupAddress(ctx, m.MailFrom)
		if errors.Is(err, store.ErrNoUser) {
			r.log.Warn("relay: no local sender to bounce to; dropped", "queue", m.ID, "from", m.MailFrom)
			return nil
		} else if err != nil {
			return err
		}
		user = u.ID
	}
	_, err := r.st.Deliver(ctx, user, r.dsn(m, fails), store.DeliverOptions{Mailbox: "INBOX"})
	return err
}

// localError is a failure this server decides, not a reply of the smart
// host: an RFC 3463 status and a text, no SMTP reply code.
type localError struct{ status, text string }

func (e *localError) Error() string { return e.text }

// errNoRelay: with no smart host configured and direct delivery switched
// off, mail to a remote recipient has no next hop (RFC 3463 §3.5, X.4.4
// "Unable to route"). The text names both settings: the sender (or the
// operator reading the bounce) learns what would let the mail out.
var errNoRelay = &localError{"5.4.4", "no relay host is configured (smtp_relay_host) and direct delivery (smtp_relay_direct) is off"}

func (r *Relay) dsn(m *store.OutboundMessage, fails []failure) []byte {
	now := r.cfg.Now()
	boundary := "dsn-" + token(16)
	h := readHeader(m.Data)
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: Mail Delivery System <MAILER-DAEMON@%s>\r\n", r.cfg.Hostname)
	fmt.Fprintf(&b, "To: <%s>\r\n", m.MailFrom)
	b.WriteString("Subject: Undelivered Mail Returned to Sender\r\n")
	fmt.Fprintf(&b, "Date: %s\r\n", now.Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Message-ID: <dsn.%d.%s@%s>\r\n", m.ID, token(8), r.cfg.Hostname)
	if id := firstMsgID(m.Data); id != "" {
		fmt.Fprintf(&b, "In-Reply-To: %s\r\nReferences: %s\r\n", id, id)
	}
	b.WriteString("Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n") // RFC 3834
	fmt.Fprintf(&b, "Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"%s\"\r\n\r\n", boundary)

	fmt.Fprintf(&b, "--%s\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n", boundary)
	fmt.Fprintf(&b, "Your message from %s could not be delivered to:\r\n\r\n", h.From)
	for _, f := range fails {
		fmt.Fprintf(&b, "  <%s>: %s\r\n", f.rcpt, oneLine(f.err.Error()))
	}
	fmt.Fprintf(&b, "\r\nIt was queued at %s; %d attempt(s).\r\n", m.CreatedAt.Format(time.RFC1123Z), m.Attempts+1)

	fmt.Fprintf(&b, "--%s\r\nContent-Type: message/delivery-status\r\n\r\n", boundary)
	fmt.Fprintf(&b, "Reporting-MTA: dns; %s\r\nArrival-Date: %s\r\n", r.cfg.Hostname, m.CreatedAt.Format(time.RFC1123Z))
	host, _, _ := strings.Cut(r.cfg.Host, ":")
	for _, f := range fails {
		status, diag := "5.0.0", ""
		var se *smtp.SMTPError
		var le *localError
		if errors.As(f.err, &le) {
			status = le.status
		} else if errors.As(f.err, &se) {
			if se.EnhancedCode != smtp.NoEnhancedCode && se.EnhancedCode != (smtp.EnhancedCode{}) {
				status = fmt.Sprintf("5.%d.%d", se.EnhancedCode[1], se.EnhancedCode[2])
			}
			diag = fmt.Sprintf("smtp; %d %s", se.Code, oneLine(se.Message))
		} else {
			status = "5.4.7" // delivery time expired (RFC 3463 §3.5): network errors are only final at give-up
		}
		fmt.Fprintf(&b, "\r\nFinal-Recipient: rfc822; %s\r\nAction: failed\r\nStatus: %s\r\n", f.rcpt, status)
		if host != "" {
			fmt.Fprintf(&b, "Remote-MTA: dns; %s\r\n", host)
		}
		if diag != "" {
			fmt.Fprintf(&b, "Diagnostic-Code: %s\r\n", diag)
		}
		fmt.Fprintf(&b, "Last-Attempt-Date: %s\r\n", now.Format(time.RFC1123Z))
	}
	fmt.Fprintf(&b, "\r\n--%s\r\nContent-Type: text/rfc822-headers\r\n\r\n", boundary)
	b.Write(headerSection(m.Data))
	fmt.Fprintf(&b, "\r\n--%s--\r\n", boundary)
	return b.Bytes()
}

func oneLine(s string) string {
	s = strings.NewReplacer("\r", " ", "\n", " ").Replace(s)
	if len(s) > 500 {
		s = s[:500]
	}
	return s
}

func firstMsgID(raw []byte) string {
	id := ""
	headerFields(raw, func(name string, v []byte, _, _ int) bool {
		if strings.EqualFold(name, "message-id") {
			if ids := msgIDs(unfold(v)); len(ids) > 0 {
				id = ids[0]
			}
			return false
		}
		return true
	})
	return id
}

// headerSection returns raw's header (without the blank line).
func headerSection(raw []byte) []byte {
	end := 0
	headerFields(raw, func(_ string, _ []byte, _, e int) bool { end = e; return true })
	return raw[:end]
}
