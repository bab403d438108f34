package imapd

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"decimail/server/store"
)

func init() {
	register("LOGIN", cmdSpec{states: notAuthenticated, fn: cmdLogin})
	register("AUTHENTICATE", cmdSpec{states: notAuthenticated, fn: cmdAuthenticate})
}

const maxAuthFailures = 5 // then BYE (DESIGN.md: limits on failed logins)

// LOGIN, rfc3501.txt:4804: "LOGIN" SP userid SP password (astrings).
func cmdLogin(c *Conn, cmd *Command) error {
	if len(cmd.Args) != 2 {
		return Syntax("LOGIN takes a user name and a password")
	}
	user, ok1 := cmd.Args[0].AString()
	pass, ok2 := cmd.Args[1].AString()
	if !ok1 || !ok2 {
		return Syntax("LOGIN takes two astrings")
	}
	if !c.plaintextOK() {
		// LOGINDISABLED: rfc3501.txt:1704-1713, code PRIVACYREQUIRED from rfc5530.txt:152.
		return No(CodePrivacyRequired, "LOGIN is disabled without TLS; use STARTTLS")
	}
	return c.login(user, pass)
}

// AUTHENTICATE, which "indicates a [SASL] authentication mechanism"
// (rfc9051.txt:1418-1425), with PLAIN (rfc4616.txt) or
// SCRAM-SHA-256[-PLUS] (scram.go), an optional initial response (SASL-IR,
// rfc4959.txt) or continuation rounds.
func cmdAuthenticate(c *Conn, cmd *Command) error {
	if len(cmd.Args) < 1 || len(cmd.Args) > 2 || cmd.Args[0].Kind != Atom {
		return Syntax("AUTHENTICATE takes a mechanism and an optional initial response")
	}
	var plaintext bool
	switch mech := strings.ToUpper(cmd.Args[0].S); {
	case mech == "PLAIN" && !c.disabled["AUTH=PLAIN"]:
		plaintext = true
	case mech == "SCRAM-SHA-256" && c.scramOffered():
	case mech == "SCRAM-SHA-256-PLUS" && c.scramPlusOffered():
	default:
		return No("", "unsupported authentication mechanism")
	}
	if plaintext && !c.plaintextOK() {
		return No(CodePrivacyRequired, "PLAIN is disabled without TLS; use STARTTLS")
	}
	var resp []byte
	if len(cmd.Args) == 2 {
		if !c.capable("SASL-IR") || cmd.Args[1].Kind != Atom {
			return Syntax("unexpected initial response")
		}
		r, err := decodeSASL(cmd.Args[1].S)
		if err != nil {
			return err
		}
		resp = r
	} else {
		r, err := c.saslChallenge(nil) // "+ " with empty challenge
		if err != nil {
			return err
		}
		resp = r
	}
	if !plaintext {
		return c.authSCRAM(strings.HasSuffix(strings.ToUpper(cmd.Args[0].S), "-PLUS"), resp)
	}
	authz, user, pass, ok := parsePlain(resp)
	if !ok {
		return Bad("", "malformed PLAIN response")
	}
	if authz != "" && authz != user {
		// rfc4616.txt:155-160: the credentials must "permit the client to act
		// as the (presented or derived) authorization identity"; we do not let
		// one user act as another.
		return No("AUTHORIZATIONFAILED", "authorization identity must equal the user name")
	}
	return c.login(user, pass)
}

// saslChallenge sends a server challenge, a "command continuation request"
// with base64 (rfc9051.txt:1436-1446), and reads the client's response
// line, decoded.
func (c *Conn) saslChallenge(challenge []byte) ([]byte, error) {
	if err := c.Continue(base64.StdEncoding.EncodeToString(challenge)); err != nil {
		return nil, err
	}
	line, err := c.ReadLine()
	if err != nil {
		return nil, err
	}
	if line == "*" {
		return nil, Bad("", "AUTHENTICATE cancelled") // "cancel an authentication exchange", rfc3501.txt:1553
	}
	return decodeSASL(line)
}

// decodeSASL decodes a client response; "=" is the empty initial
// response (rfc4959.txt §3). An "invalid base64 string" is BAD,
// rfc9051.txt:1443-1446.
func decodeSASL(s string) ([]byte, error) {
	if s == "=" {
		return []byte{}, nil
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, Bad("", "invalid base64")
	}
	return b, nil
}

// parsePlain splits message = [authzid] NUL authcid NUL passwd
// (rfc4616.txt:122).
func parsePlain(b []byte) (authz, user, pass string, ok bool) {
	parts := bytes.Split(b, []byte{0})
	if len(parts) != 3 || len(parts[1]) == 0 {
		return "", "", "", false
	}
	return string(parts[0]), string(parts[1]), string(parts[2]), true
}

// login checks the credentials and moves to the authenticated state.
func (c *Conn) login(name, pass string) error {
	if c.srv.auth == nil {
		return errors.New("no authenticator configured")
	}
	var u store.User
	var err error
	if l, ok := c.srv.auth.(limitedAuthenticator); ok {
		u, err = l.AuthenticateFrom(c.ctx, c.remoteAddr(), name, pass)
	} else {
		u, err = c.srv.auth.Authenticate(c.ctx, name, pass)
	}
	return c.loggedIn(name, u, err)
}

// loggedIn answers an authentication's outcome (any mechanism): the
// authenticated state, or a failure counted by authFailed, or the
// limiter's refusal.
func (c *Conn) loggedIn(name string, u store.User, err error) error {
	if errors.Is(err, store.ErrAuthFailed) {
		return c.authFailed(name, "bad credentials")
	}
	var te *store.ThrottledError
	if errors.As(err, &te) {
		// The store's failed-login limiter refused to check the password
		// (per address, across connections: store.AuthPolicy). A temporary
		// failure, RFC 5530 §3, rfc5530.txt:96: UNAVAILABLE, "Temporary failure".
		if bye := c.authFailed(name, "refused unchecked: too many failures from this address"); c.authFail >= maxAuthFailures {
			return bye
		}
		return No(CodeUnavailable, fmt.Sprintf("Too many failed logins from your address; try again in %v",
			max(time.Second, te.RetryAfter.Round(time.Second))))
	}
	if err != nil {
		return err
	}
	c.user = u
	c.state = Authenticated
	c.log = c.log.With("user", u.Name)
	if f := c.srv.cfg.PerUserDisabled; f != nil {
		for k, v := range f(u.Name) {
			c.disabled[strings.ToUpper(k)] = v
		}
	}
	c.log.Info("authenticated")
	// rfc3501.txt:1687-1691: a CAPABILITY response code in the OK is allowed.
	return c.OK("CAPABILITY "+c.capabilityString(), "Logged in")
}

// limitedAuthenticator is *store.Store's Authenticate behind its
// failed-login limiter.
type limitedAuthenticator interface {
	AuthenticateFrom(ctx context.Context, remote netip.Addr, name, password string) (store.User, error)
}

// remoteAddr is the peer's address (invalid for a Unix socket).
func (c *Conn) remoteAddr() netip.Addr {
	if ap, err := netip.ParseAddrPort(c.nc.RemoteAddr().String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

func (c *Conn) authFailed(name, why string) error {
	c.authFail++
	c.log.Info("authentication failed", "user", name, "why", why, "failures", c.authFail)
	t := time.NewTimer(c.srv.cfg.AuthFailDelay)
	select {
	case <-t.C:
	case <-c.ctx.Done():
		t.Stop()
	}
	if c.authFail >= maxAuthFailures {
		return Bye("", "Too many failed authentication attempts")
	}
	return No(CodeAuthFailed, "Invalid credentials") // AUTHENTICATIONFAILED, rfc5530.txt:104
}
