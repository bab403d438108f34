package smtpd

import (
	"bytes"
	"context"
	"crypto"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-smtp"

	"decimail/server/store"
)

// Resolver is the DNS the relay asks for mail exchangers (net.Resolver;
// tests put in their own).
type Resolver interface {
	LookupMX(ctx context.Context, name string) ([]*net.MX, error)
}

// errNullMX: the domain publishes "MX 0 ." (RFC 7505): it accepts no mail.
var errNullMX = &localError{"5.1.10", "the recipient's domain accepts no mail (null MX, RFC 7505)"}

// sendDirect delivers to each recipient domain's mail exchangers (RFC 5321
// §5.1): the MX records in preference order, else the domain itself (the
// implicit MX); STARTTLS when offered, without checking the certificate
// (opportunistic, as MTAs do: RFC 7435 — a failed handshake is retried
// without TLS); one connection per domain for all of its recipients. A
// domain whose every exchanger fails temporarily is retried later; a 5xx
// from an exchanger fails its recipients for good.
func (r *Relay) sendDirect(ctx context.Context, m *store.OutboundMessage, data []byte) []failure {
	byDomain := map[string][]string{}
	var domains []string
	for _, rc := range m.RcptTo {
		d := strings.ToLower(rc[strings.LastIndexByte(rc, '@')+1:])
		if byDomain[d] == nil {
			domains = append(domains, d)
		}
		byDomain[d] = append(byDomain[d], rc)
	}
	var fails []failure
	for _, d := range domains {
		fails = append(fails, r.sendDomain(ctx, d, byDomain[d], m.MailFrom, data)...)
	}
	return fails
}

func (r *Relay) sendDomain(ctx context.Context, domain string, rcpts []string, from string, data []byte) []failure {
	all := func(err error) []failure {
		fs := make([]failure, len(rcpts))
		for i, rc := range rcpts {
			fs[i] = classify(rc, err)
		}
		return fs
	}
	hosts, err := r.exchangers(ctx, domain)
	if err != nil {
		return all(err)
	}
	var last error
	for _, h := range hosts {
		dest := "mx " + h
		c := r.conns.take(dest)
		if c == nil {
			if c, err = r.dialDirect(ctx, h); err != nil {
				last = fmt.Errorf("%s: %w", h, err)
				continue
			}
		}
		c.begin(r.cfg.Lease)
		fails, connErr := r.transact(c, rcpts, from, data)
		if connErr != nil {
			c.Close()
		} else {
			r.conns.put(dest, c)
		}
		if connErr != nil && !permanent(connErr) {
			last = fmt.Errorf("%s: %w", h, connErr)
			continue // the next exchanger (RFC 5321 §5.1)
		}
		return fails
	}
	return all(last)
}

// permanent reports a 5xx reply.
func permanent(err error) bool {
	var se *smtp.SMTPError
	return errors.As(err, &se) && se.Code >= 500
}

// exchangers returns the hosts to try for domain, in preference order.
func (r *Relay) exchangers(ctx context.Context, domain string) ([]string, error) {
	mxs, err := r.cfg.Resolver.LookupMX(ctx, domain)
	var de *net.DNSError
	if errors.As(err, &de) && de.IsNotFound {
		if len(mxs) == 0 {
			return []string{domain}, nil // no MX: the implicit MX (RFC 5321 §5.1)
		}
	} else if err != nil {
		return nil, fmt.Errorf("MX lookup of %s: %w", domain, err)
	}
	if len(mxs) == 0 {
		return []string{domain}, nil
	}
	if len(mxs) == 1 && (mxs[0].Host == "." || mxs[0].Host == "") {
		return nil, errNullMX
	}
	sort.SliceStable(mxs, func(i, j int) bool { return mxs[i].Pref < mxs[j].Pref })
	var hosts []string
	for _, mx := range mxs {
		hosts = append(hosts, strings.TrimSuffix(mx.Host, "."))
	}
	return hosts, nil
}

// dialDirect connects to an exchanger on DirectPort: STARTTLS when offered
// (unverified); if the handshake fails, once more without TLS.
func (r *Relay) dialDirect(ctx context.Context, host string) (*relayConn, error) {
	addr := net.JoinHostPort(host, strconv.Itoa(r.cfg.DirectPort))
	open := func(useTLS bool) (*relayConn, bool, error) {
		d := net.Dialer{Timeout: 30 * time.Second}
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, false, err
		}
		ec := &endConn{Conn: conn, end: time.Now().Add(r.cfg.Lease / 2)}
		ec.SetDeadline(time.Time{})
		var c *smtp.Client
		if useTLS {
			c, err = smtp.NewClientStartTLS(ec, &tls.Config{ServerName: host, InsecureSkipVerify: true}) // opportunistic: RFC 7435
			if err != nil {
				conn.Close()
				return nil, false, err
			}
		} else {
			c = smtp.NewClient(ec)
		}
		c.CommandTimeout, c.SubmissionTimeout = r.cfg.Timeout, 2*r.cfg.Timeout
		if err := c.Hello(r.cfg.Hostname); err != nil {
			c.Close()
			return nil, false, err
		}
		ok, _ := c.Extension("STARTTLS")
		return &relayConn{Client: c, ec: ec}, ok, nil
	}
	c, offers, err := open(false)
	if err != nil || !offers {
		return c, err
	}
	c.Quit()
	if tc, _, err := open(true); err == nil {
		return tc, nil
	}
	c, _, err = open(false)
	return c, err
}

// transact sends one message to rcpts over c. connErr is a failure of the
// whole session (MAIL, DATA, the connection); per-recipient refusals are
// in fails. The session stays open (the caller keeps it for the next
// message or closes it).
func (r *Relay) transact(c *relayConn, rcpts []string, from string, data []byte) (fails []failure, connErr error) {
	all := func(err error) []failure {
		fs := make([]failure, len(rcpts))
		for i, rc := range rcpts {
			fs[i] = classify(rc, err)
		}
		return fs
	}
	if err := c.Mail(from, nil); err != nil {
		return all(err), err
	}
	var accepted []string
	for _, rc := range rcpts {
		if err := c.Rcpt(rc, nil); err != nil {
			fails = append(fails, classify(rc, err))
		} else {
			accepted = append(accepted, rc)
		}
	}
	if len(accepted) == 0 {
		return fails, nil
	}
	w, err := c.Data()
	if err == nil {
		if _, err = w.Write(data); err == nil {
			err = w.Close()
		} else {
			w.Close()
		}
	}
	if err != nil {
		for _, rc := range accepted {
			fails = append(fails, classify(rc, err))
		}
		return fails, err
	}
	return fails, nil
}

// sign adds a DKIM-Signature (RFC 6376) when the domain of the message's
// From has a key (`decimail dkim generate`): rsa-sha256, relaxed/relaxed,
// the header fields DMARC and mailing lists care about. Without a key, or
// when the header cannot be read, the data goes out as it is.
func (r *Relay) sign(ctx context.Context, data []byte) ([]byte, error) {
	msg, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		return data, nil
	}
	from, err := mail.ParseAddress(msg.Header.Get("From"))
	if err != nil {
		return data, nil
	}
	domain := strings.ToLower(from.Address[strings.LastIndexByte(from.Address, '@')+1:])
	k, err := r.st.DKIMKey(ctx, domain)
	if errors.Is(err, store.ErrNotFound) {
		return data, nil
	} else if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	err = dkim.Sign(&out, bytes.NewReader(data), &dkim.SignOptions{
		Domain: k.Domain, Selector: k.Selector, Signer: k.Signer, Hash: crypto.SHA256,
		HeaderCanonicalization: dkim.CanonicalizationRelaxed, BodyCanonicalization: dkim.CanonicalizationRelaxed,
		HeaderKeys: []string{"From", "To", "Cc", "Subject", "Date", "Message-ID", "In-Reply-To", "References",
			"MIME-Version", "Content-Type", "Content-Transfer-Encoding", "Reply-To"},
	})
	if err != nil {
		return nil, fmt.Errorf("dkim: %w", err)
	}
	return out.Bytes(), nil
}
