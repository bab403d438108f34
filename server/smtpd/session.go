package smtpd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"decimail/server/store"
)

// Replies (RFC 5321 §4.2, enhanced codes RFC 3463).
var (
	errTempDB       = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Temporary local problem, try again later"}
	errNoUser       = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such user here"}
	errRelayDenied  = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Relaying denied"}
	errAuthRequired = &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Authentication required"} // RFC 4954 §6
	errNotYours     = &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Sender address not owned by the authenticated user"}
	errBadAddress   = &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 1, 3}, Message: "Bad address syntax"}
	errAuthTemp     = &smtp.SMTPError{Code: 454, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "Temporary authentication failure"}
	errTooManyAuth  = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "Too many authentication failures"}
)

type localRcpt struct {
	addr string
	user store.User
}

// session is one SMTP transaction state; go-smtp calls it from the
// connection's goroutine (Data may run on a BDAT goroutine, during which
// go-smtp does not call Mail/Rcpt).
type session struct {
	s       *Server
	kind    kind
	conn    *smtp.Conn
	log     *slog.Logger
	id      uint64
	ip      netip.Addr
	trusted bool

	user      *store.User
	authFails int
	msgs      int

	from   string
	local  []localRcpt
	remote []string
}

func (x *session) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(x.s.ctx, time.Minute)
}

func (x *session) Reset() {
	x.from, x.local, x.remote = "", nil, nil
}

func (x *session) Logout() error { return nil }

// AuthMechanisms: PLAIN (RFC 4616) and LOGIN (Outlook-era clients).
func (x *session) AuthMechanisms() []string { return []string{sasl.Plain, sasl.Login} }

func (x *session) Auth(mech string) (sasl.Server, error) {
	if x.authFails >= x.s.cfg.MaxAuthFailures {
		return nil, errTooManyAuth
	}
	switch strings.ToUpper(mech) {
	case sasl.Plain:
		return sasl.NewPlainServer(func(identity, username, password string) error {
			if identity != "" && identity != username {
				return x.authFailed(username, "authorization identity differs")
			}
			return x.authenticate(username, password)
		}), nil
	case sasl.Login:
		return &loginServer{auth: x.authenticate}, nil
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

func (x *session) authenticate(username, password string) error {
	ctx, cancel := x.ctx()
	defer cancel()
	u, err := x.s.st.Authenticate(ctx, username, password)
	if errors.Is(err, store.ErrAuthFailed) {
		return x.authFailed(username, "bad credentials")
	} else if err != nil {
		x.log.Error("smtpd: authenticate", "err", err)
		return errAuthTemp
	}
	x.user = &u
	x.log.Info("smtpd: authenticated", "user", u.Name)
	return nil
}

func (x *session) authFailed(username, why string) error {
	x.authFails++
	x.log.Warn("smtpd: authentication failed", "user", username, "why", why)
	return smtp.ErrAuthFailed // 535 5.7.8, RFC 4954 §6
}

func (x *session) Mail(from string, opts *smtp.MailOptions) error {
	x.Reset()
	from = strings.ToLower(strings.TrimSpace(from))
	if x.kind == kindSubmission {
		if x.user == nil {
			return errAuthRequired
		}
		// RFC 6409 §4.1 / §8: the MSA may check the sender is the user's.
		if from == "" {
			return errNotYours
		}
		ctx, cancel := x.ctx()
		defer cancel()
		ok, err := x.s.st.MaySendAs(ctx, x.user.ID, from)
		if err != nil {
			x.log.Error("smtpd: sender check", "err", err)
			return errTempDB
		}
		if !ok {
			x.log.Warn("smtpd: sender refused", "from", from)
			return errNotYours
		}
	}
	x.from = from
	return nil
}

func domainOf(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return addr[i+1:]
	}
	return ""
}

func (x *session) Rcpt(to string, opts *smtp.RcptOptions) error {
	to = strings.ToLower(strings.TrimSpace(to))
	if domainOf(to) == "" || strings.ContainsAny(to, " \t\r\n<>") {
		return errBadAddress
	}
	ctx, cancel := x.ctx()
	defer cancel()
	u, err := x.s.st.LookupAddress(ctx, to)
	if err == nil {
		x.local = append(x.local, localRcpt{to, u})
		return nil
	}
	if !errors.Is(err, store.ErrNoUser) {
		x.log.Error("smtpd: lookup recipient", "err", err)
		return errTempDB
	}
	local, err := x.s.st.IsLocalDomain(ctx, domainOf(to))
	if err != nil {
		x.log.Error("smtpd: lookup domain", "err", err)
		return errTempDB
	}
	if local {
		x.log.Info("smtpd: unknown recipient", "rcpt", to)
		return errNoUser
	}
	// RFC 5321 §3.6.2 / §7.1: never an open relay.
	if x.user == nil && (x.kind == kindSubmission || !x.trusted) {
		x.log.Warn("smtpd: relaying denied", "rcpt", to)
		return errRelayDenied
	}
	x.remote = append(x.remote, to)
	return nil
}

// Data reads the message (go-smtp enforces MaxMessageBytes: 552 5.3.4) and
// stores or queues it; it returns nil (250) only after every commit.
func (x *session) Data(r io.Reader) error {
	x.conn.Conn().SetReadDeadline(time.Now().Add(x.s.cfg.ReadTimeout))
	raw, err := io.ReadAll(&deadlineReader{r: r, c: x.conn, d: x.s.cfg.ReadTimeout})
	if err != nil {
		var se *smtp.SMTPError
		if errors.Is(err, smtp.ErrTooLongLine) {
			// RFC 5321 §4.5.3.1.6 allows 1000; we accept up to MaxLineLength.
			se = &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0},
				Message: fmt.Sprintf("Line too long (limit %d bytes)", x.s.cfg.MaxLineLength)}
		}
		if se != nil || errors.As(err, &se) {
			x.log.Info("smtpd: message refused", "err", err)
			return se
		}
		return err
	}
	raw = toCRLF(raw)
	x.msgs++
	ctx, cancel := context.WithTimeout(x.s.ctx, 5*time.Minute)
	defer cancel()
	if x.kind == kindSubmission {
		return x.submit(ctx, raw)
	}
	return x.receive(ctx, raw)
}

// deadlineReader extends the read deadline while a message streams in, so
// ReadTimeout bounds idle time, not the transfer of a large message.
type deadlineReader struct {
	r io.Reader
	c *smtp.Conn
	d time.Duration
}

func (d *deadlineReader) Read(p []byte) (int, error) {
	d.c.Conn().SetReadDeadline(time.Now().Add(d.d))
	return d.r.Read(p)
}
