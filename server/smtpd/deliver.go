package smtpd

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"

	"decimail/server/store"
)

// receive stores an inbound message once per local recipient and queues it
// for the accepted remote recipients (trusted or authenticated clients).
func (x *session) receive(ctx context.Context, raw []byte) error {
	var user int64
	if x.user != nil {
		user = x.user.ID
	}
	if err := x.deliverLocal(ctx, raw); err != nil {
		return err
	}
	return x.enqueue(ctx, user, x.from, raw)
}

func (x *session) deliverLocal(ctx context.Context, raw []byte) error {
	for _, r := range x.local {
		msg := x.trace(r.addr, raw, true)
		d, err := x.s.st.Deliver(ctx, r.user.ID, msg, store.DeliverOptions{Mailbox: "INBOX", DeliveredTo: r.addr})
		if err != nil {
			x.log.Error("smtpd: deliver", "rcpt", r.addr, "err", err)
			return errTempDB
		}
		x.log.Info("smtpd: delivered", "from", x.from, "rcpt", r.addr, "user", r.user.Name, "message", d.MessageID, "size", len(msg))
	}
	return nil
}

func (x *session) enqueue(ctx context.Context, user int64, from string, raw []byte) error {
	if len(x.remote) == 0 {
		return nil
	}
	for_ := ""
	if len(x.remote) == 1 {
		for_ = x.remote[0]
	}
	id, err := x.s.st.Enqueue(ctx, user, from, x.remote, x.trace(for_, raw, false))
	if err != nil {
		x.log.Error("smtpd: enqueue", "err", err)
		return errTempDB
	}
	x.log.Info("smtpd: queued", "from", from, "rcpts", x.remote, "queue", id, "size", len(raw))
	return nil
}

// submit handles an authenticated submission: address rewriting, local
// delivery, queueing, and the \Seen copy in the sender's Sent folder.
func (x *session) submit(ctx context.Context, raw []byte) error {
	h := readHeader(raw)
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
			raw = replaceFrom(raw, newFrom)
			from = newFrom
		}
	}
	if err := x.deliverLocal(ctx, raw); err != nil {
		return err
	}
	if err := x.enqueue(ctx, x.user.ID, from, raw); err != nil {
		return err
	}
	if _, err := x.s.st.Deliver(ctx, x.user.ID, raw, store.DeliverOptions{Mailbox: "Sent", Flags: store.Flags{Seen: true}}); err != nil {
		x.log.Error("smtpd: store Sent copy", "err", err)
		return errTempDB
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

// trace prepends Delivered-To (when delivering) and a Received: field
// (RFC 5321 §4.4, "with" values from RFC 3848) to raw.
func (x *session) trace(rcpt string, raw []byte, delivered bool) []byte {
	with := "ESMTP"
	if _, ok := x.conn.TLSConnectionState(); ok {
		with += "S"
	}
	if x.user != nil {
		with += "A"
	}
	var b bytes.Buffer
	b.Grow(len(raw) + 300)
	if delivered && rcpt != "" {
		fmt.Fprintf(&b, "Delivered-To: %s\r\n", rcpt)
	}
	fmt.Fprintf(&b, "Received: from %s ([%s])\r\n\tby %s (Decimail) with %s id %d.%d",
		sanitize(x.conn.Hostname()), x.ip, sanitize(x.s.cfg.Hostname), with, x.id, x.msgs)
	if rcpt != "" {
		fmt.Fprintf(&b, "\r\n\tfor <%s>", sanitize(rcpt))
	}
	fmt.Fprintf(&b, ";\r\n\t%s\r\n", time.Now().Format(time.RFC1123Z))
	b.Write(raw)
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

// toCRLF turns bare LF line ends into CRLF (RFC 5321 §2.3.8: mail must use
// CRLF; clients sending bare LF are common enough to repair rather than refuse).
func toCRLF(raw []byte) []byte {
	bare := 0
	for i, c := range raw {
		if c == '\n' && (i == 0 || raw[i-1] != '\r') {
			bare++
		}
	}
	if bare == 0 {
		return raw
	}
	out := make([]byte, 0, len(raw)+bare)
	for i, c := range raw {
		if c == '\n' && (i == 0 || raw[i-1] != '\r') {
			out = append(out, '\r')
		}
		out = append(out, c)
	}
	return out
}
