package smtpd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"slices"
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
	errTooManyAuth  = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "Too many authentication failures, closing connection"}
	// RFC 4954 §4, rfc4954.txt:157: "The AUTH command is not permitted during a mail transaction."
	errAuthInTx  = &smtp.SMTPError{Code: 503, EnhancedCode: smtp.EnhancedCode{5, 5, 1}, Message: "AUTH is not permitted during a mail transaction"}
	errNoStorage = &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 3, 1}, Message: "Insufficient system storage, try again later"}
	// A local recipient over their quota (store.Quota): 552 "exceeded
	// storage allocation" (rfc5321.txt:2839), X.2.2 "Mailbox full" (RFC 3463 §3.3).
	errOverQuota = &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 2, 2}, Message: "Mailbox full"}
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
	nc      *notifyConn // the socket under conn (and TLS)
	log     *slog.Logger
	id      uint64
	ip      netip.Addr
	trusted bool

	user      *store.User
	authFails int
	msgs      int

	inTx      bool // between MAIL and the end of DATA or RSET
	from      string
	size      int64 // MAIL FROM SIZE= (RFC 1870), 0 if not given
	rcpts     int   // RCPTs accepted, duplicates included
	rcptLimit bool
	local     []localRcpt // one per user: duplicates collapse
	remote    []string
	headerLen int64 // of the last DATA (dataWriter)
}

func (x *session) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(x.s.ctx, time.Minute)
}

func (x *session) Reset() {
	x.inTx, x.from, x.rcpts, x.rcptLimit, x.local, x.remote = false, "", 0, false, nil, nil
}

func (x *session) Logout() error { return nil }

// AuthMechanisms: PLAIN (RFC 4616), LOGIN (Outlook-era clients),
// SCRAM-SHA-256 (RFC 7677) and on TLS SCRAM-SHA-256-PLUS (scram.go).
func (x *session) AuthMechanisms() []string {
	m := []string{sasl.Plain, sasl.Login, mechSCRAM}
	if x.channelBinding().IsSupported() {
		m = append(m, mechSCRAMPlus)
	}
	return m
}

func (x *session) Auth(mech string) (sasl.Server, error) {
	if x.inTx {
		return nil, errAuthInTx
	}
	if x.authFails >= x.s.cfg.MaxAuthFailures {
		x.nc.closeAfterReply()
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
	case mechSCRAM:
		return x.newSCRAM(false), nil
	case mechSCRAMPlus:
		if x.channelBinding().IsSupported() {
			return x.newSCRAM(true), nil
		}
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

// authenticate checks credentials through the store's failed-login limiter
// (per address and per account, across connections and processes: see
// store.AuthPolicy). A refused attempt, or the connection's
// MaxAuthFailures-th failure, is answered 421 and the connection closed
// (RFC 5321 §3.8, rfc5321.txt:1652: a server may close the connection
// after "returning a 421 response code").
func (x *session) authenticate(username, password string) error {
	ctx, cancel := x.ctx()
	defer cancel()
	u, err := x.s.st.AuthenticateFrom(ctx, x.ip, username, password)
	return x.authOutcome(username, u, err)
}

// authOutcome answers an authentication's outcome (any mechanism).
func (x *session) authOutcome(username string, u store.User, err error) error {
	var te *store.ThrottledError
	switch {
	case errors.As(err, &te):
		x.log.Warn("smtpd: authentication refused: too many failures from this address", "user", username,
			"retry", te.RetryAfter.Round(time.Second))
		x.nc.closeAfterReply()
		return &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0},
			Message: fmt.Sprintf("Too many failed logins from your address, try again in %v; closing connection",
				max(time.Second, te.RetryAfter.Round(time.Second)))}
	case errors.Is(err, store.ErrAuthFailed):
		return x.authFailed(username, "bad credentials")
	case err != nil:
		x.log.Error("smtpd: authenticate", "err", err)
		return errAuthTemp
	}
	x.user = &u
	x.log.Info("smtpd: authenticated", "user", u.Name)
	return nil
}

func (x *session) authFailed(username, why string) error {
	x.authFails++
	x.log.Warn("smtpd: authentication failed", "user", username, "why", why, "failures", x.authFails)
	if x.authFails >= x.s.cfg.MaxAuthFailures {
		x.nc.closeAfterReply()
		return errTooManyAuth
	}
	return smtp.ErrAuthFailed // 535 5.7.8, RFC 4954 §6
}

// Mail starts a transaction. An authenticated session is a submission as
// far as the sender goes, on any listener: MAIL FROM must be one of the
// user's addresses (RFC 6409 §6.1, rfc6409.txt:523: a sender with
// "insufficient submission rights" may be refused), or the null reverse-path, which an MSA "MUST NOT,
// in itself" reject (RFC 6409 §3.2, rfc6409.txt:350); the From: header
// field is checked at DATA (checkFrom), where a null sender needs one.
func (x *session) Mail(from string, opts *smtp.MailOptions) error {
	x.Reset()
	from = strings.ToLower(strings.TrimSpace(from))
	if x.kind == kindSubmission && x.user == nil {
		return errAuthRequired
	}
	if x.user != nil && from != "" {
		ctx, cancel := x.ctx()
		defer cancel()
		ok, err := x.s.st.MaySendAs(ctx, x.user.ID, from)
		if err != nil {
			x.log.Error("smtpd: sender check", "err", err)
			return errTempDB
		}
		if !ok {
			x.log.Warn("smtpd: sender refused", "from", from, "user", x.user.Name)
			return errNotYours
		}
	}
	x.inTx, x.from, x.size = true, from, opts.Size
	return nil
}

func domainOf(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return addr[i+1:]
	}
	return ""
}

// Rcpt accepts a recipient. A message goes once to each local user and once
// to each remote address, however many RCPTs name them: a repeated or
// aliased recipient is accepted (250) and collapses.
func (x *session) Rcpt(to string, opts *smtp.RcptOptions) error {
	to = strings.ToLower(strings.TrimSpace(to))
	if domainOf(to) == "" || strings.ContainsAny(to, " \t\r\n<>") {
		return errBadAddress
	}
	if x.rcpts >= x.s.cfg.MaxRecipients {
		// RFC 5321 §4.5.3.1.10, rfc5321.txt:3599: when the recipient
		// limit "is exhausted, it MUST use a response code of" 452.
		if !x.rcptLimit {
			x.rcptLimit = true
			x.log.Info("smtpd: recipient limit reached; further RCPTs refused", "max", x.s.cfg.MaxRecipients)
		}
		return &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 5, 3},
			Message: fmt.Sprintf("Too many recipients (at most %d per message); send the rest in another transaction",
				x.s.cfg.MaxRecipients)}
	}
	ctx, cancel := x.ctx()
	defer cancel()
	u, err := x.s.st.LookupAddress(ctx, to)
	if err == nil {
		// A recipient whose quota has no room for the message (its
		// declared SIZE, or one more octet) is refused here; the
		// delivery checks again with the real size (a message that
		// does not fit then fails as a whole, 552).
		if q, err := x.s.st.Quota(ctx, u.ID); err != nil {
			x.log.Error("smtpd: quota", "err", err)
			return errTempDB
		} else if !q.Room(max(x.size, 1)) {
			x.log.Info("smtpd: recipient over quota", "rcpt", to)
			return errOverQuota
		}
		x.rcpts++
		if !slices.ContainsFunc(x.local, func(r localRcpt) bool { return r.user.ID == u.ID }) {
			x.local = append(x.local, localRcpt{to, u})
		}
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
	x.rcpts++
	if !slices.Contains(x.remote, to) {
		x.remote = append(x.remote, to)
	}
	return nil
}

// Data spools the message to a file as it arrives (dataWriter: bare LF
// repaired, header size bounded, a total deadline), then stores and queues
// it in one transaction; it returns nil (250) only after the commit.
func (x *session) Data(r io.Reader) error {
	in, err := x.s.st.NewIncoming()
	if err != nil {
		x.log.Error("smtpd: spool", "err", err)
		return errTempDB
	}
	defer in.Close()
	if err := x.readData(r, in); err != nil {
		return err
	}
	x.msgs++
	ctx, cancel := context.WithTimeout(x.s.ctx, 5*time.Minute)
	defer cancel()
	if x.user != nil {
		return x.submit(ctx, in)
	}
	return x.receive(ctx, in)
}
