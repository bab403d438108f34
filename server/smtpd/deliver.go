package smtpd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"time"

	"github.com/emersion/go-smtp"

	"decimail/server/store"
)

// receive stores an inbound message once per local user and queues it for
// the accepted remote recipients (trusted clients), in one transaction.
func (x *session) receive(ctx context.Context, in *store.Incoming) error {
	d := store.Delivery{Copies: x.localCopies()}
	if len(x.remote) > 0 {
		d.Queue = &store.Outbound{From: x.from, Rcpts: x.remote, Prefix: x.trace(x.remoteFor(), false)}
	}
	return x.deliver(ctx, in, d)
}

// submit handles an authenticated submission (on either listener): the
// From: check, address rewriting, then in one transaction the local copies,
// the queued copy and the \Seen copy in the sender's Sent folder.
func (x *session) submit(ctx context.Context, in *store.Incoming) error {
	hdr, err := in.Prefix(int(x.headerLen))
	if err != nil {
		x.log.Error("smtpd: read header", "err", err)
		return errTempDB
	}
	h := readHeader(hdr)
	if err := x.checkFrom(ctx, h); err != nil {
		return err
	}
	from := x.from
	if h.From != "" {
		correspondent := h.FirstTo
		if correspondent == "" && len(x.local)+len(x.remote) > 0 {
			correspondent = append(append([]string{}, x.remote...), localAddrs(x.local)...)[0]
		}
		newFrom, err := Rewrite(ctx, x.s.st, x.user.ID, Outgoing{From: h.From, Correspondent: correspondent,
			InReplyTo: h.InReplyTo, References: h.References})
		if err != nil {
			x.log.Error("smtpd: rewrite", "err", err)
			return errTempDB
		}
		if newFrom != h.From {
			x.log.Info("smtpd: rewrote sender", "from", h.From, "to", newFrom, "correspondent", correspondent)
			in.Splice(int64(len(hdr)), replaceFrom(hdr, newFrom))
			if from != "" {
				from = newFrom
			}
		}
	}
	d := store.Delivery{Copies: x.localCopies()}
	d.Copies = append(d.Copies, store.Copy{UserID: x.user.ID,
		// Submitted: the client's own APPEND of this message to Sent is
		// answered with this copy (store/sentdedup.go).
		DeliverOptions: store.DeliverOptions{Mailbox: "Sent", Flags: store.Flags{Seen: true}, Submitted: true}})
	if len(x.remote) > 0 {
		d.Queue = &store.Outbound{UserID: x.user.ID, From: from, Rcpts: x.remote, Prefix: x.trace(x.remoteFor(), false)}
	}
	return x.deliver(ctx, in, d)
}

// checkFrom: an authenticated user's message must come From: addresses of
// theirs (store.MaySendAs: their addresses, auto addresses and the
// addresses Rewrite gives those), in exactly one From: field (RFC 5322
// §3.6, rfc5322.txt:1145: "from", at least 1, at most 1); a null envelope
// sender needs one (it is the only sender the message names). RFC 6409
// §6.3, rfc6409.txt:543: the MSA may refuse a message that "seems
// inconsistent with permissions given to" the user.
func (x *session) checkFrom(ctx context.Context, h header) error {
	refuse := func(why string) error {
		x.log.Warn("smtpd: From: refused", "user", x.user.Name, "why", why)
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: why}
	}
	switch {
	case h.fromFields > 1:
		return refuse("More than one From: header field")
	case h.fromBad:
		return refuse("The From: header field is not a valid address list")
	case h.fromFields == 0 && x.from == "":
		return refuse("A message with a null sender <> needs a From: header field")
	}
	for _, a := range h.froms {
		ok, err := x.s.st.MaySendAs(ctx, x.user.ID, a)
		if err != nil {
			x.log.Error("smtpd: sender check", "err", err)
			return errTempDB
		}
		if !ok {
			return refuse(fmt.Sprintf("From: address <%s> is not one of the addresses of user %s", a, x.user.Name))
		}
	}
	return nil
}

func (x *session) localCopies() []store.Copy {
	var cs []store.Copy
	for _, r := range x.local {
		cs = append(cs, store.Copy{UserID: r.user.ID, Prefix: x.trace(r.addr, true),
			DeliverOptions: store.DeliverOptions{Mailbox: "INBOX", DeliveredTo: r.addr}})
	}
	return cs
}

// remoteFor is the "for" of the queued copy's Received: field, when there is one recipient.
func (x *session) remoteFor() string {
	if len(x.remote) == 1 {
		return x.remote[0]
	}
	return ""
}

// deliver commits d and answers: 250 only after the commit; a failure
// stored nothing, so the client's retry cannot duplicate anything.
func (x *session) deliver(ctx context.Context, in *store.Incoming, d store.Delivery) error {
	res, err := x.s.st.DeliverIncoming(ctx, in, d)
	if m := x.s.metrics; m != nil {
		result := "ok"
		if err != nil {
			result = "error"
		}
		m.Delivery(x.kind.String(), result)
	}
	if err != nil {
		x.log.Error("smtpd: deliver", "from", x.from, "err", err)
		if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
			return errNoStorage
		}
		if errors.Is(err, store.ErrOverQuota) {
			return errOverQuota
		}
		return errTempDB
	}
	for i, c := range res.Copies {
		x.log.Info("smtpd: delivered", "from", x.from, "rcpt", d.Copies[i].DeliveredTo, "user", d.Copies[i].UserID,
			"mailbox", d.Copies[i].Mailbox, "message", c.MessageID, "size", in.Size()+int64(len(d.Copies[i].Prefix)))
	}
	if d.Queue != nil {
		x.log.Info("smtpd: queued", "from", d.Queue.From, "rcpts", d.Queue.Rcpts, "queue", res.QueueID, "size", in.Size())
		if x.s.cfg.RelayHost == "" && !x.s.cfg.RelayDirect {
			x.log.Warn("smtpd: no relay host (smtp_relay_host) is configured and direct delivery (smtp_relay_direct) is off: the message to remote recipients will bounce",
				"from", d.Queue.From, "rcpts", d.Queue.Rcpts, "queue", res.QueueID)
		}
	}
	return nil
}

func localAddrs(l []localRcpt) []string {
	out := make([]string, len(l))
	for i, r := range l {
		out[i] = r.addr
	}
	return out
}

// trace returns the header fields prepended to a copy: Delivered-To (when
// delivering) and Received: (RFC 5321 §4.4, "with" values from RFC 3848).
func (x *session) trace(rcpt string, delivered bool) []byte {
	with := "ESMTP"
	if _, ok := x.conn.TLSConnectionState(); ok {
		with += "S"
	}
	if x.user != nil {
		with += "A"
	}
	var b bytes.Buffer
	if delivered && rcpt != "" {
		fmt.Fprintf(&b, "Delivered-To: %s\r\n", rcpt)
	}
	fmt.Fprintf(&b, "Received: from %s ([%s])\r\n\tby %s (Decimail) with %s id %d.%d",
		sanitize(x.conn.Hostname()), x.ip, sanitize(x.s.cfg.Hostname), with, x.id, x.msgs)
	if rcpt != "" {
		fmt.Fprintf(&b, "\r\n\tfor <%s>", sanitize(rcpt))
	}
	fmt.Fprintf(&b, ";\r\n\t%s\r\n", time.Now().Format(time.RFC1123Z))
	return b.Bytes()
}

// sanitize keeps client-supplied text from breaking a header field.
func sanitize(s string) string {
	if len(s) > 255 {
		s = s[:255]
	}
	return strings.Map(func(r rune) rune {
		if r <= ' ' || r >= 0x7f || r == '(' || r == ')' || r == ';' || r == '<' || r == '>' {
			return '_'
		}
		return r
	}, s)
}
