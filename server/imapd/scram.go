package imapd

import (
	"crypto/tls"
	"errors"

	"github.com/xdg-go/scram"

	"decimail/server/store"
)

// AUTHENTICATE SCRAM-SHA-256 and SCRAM-SHA-256-PLUS (RFC 7677, RFC 5802),
// among the mechanisms "that do not use plaintext passwords" IMAP4rev2
// servers should add (rfc9051.txt:1484-1491). The exchange is the store's
// (store.SCRAMExchange, shared with SMTP AUTH); this file carries it over
// AUTHENTICATE's challenges and responses as in RFC 9051 §8's sample
// (AUTHENTICATE SCRAM-SHA-256, rfc9051.txt:6212ff).
//
// Offered without TLS too. plaintextOK guards "plaintext password
// mechanisms" (rfc9051.txt:1477-1491) from password snooping; SCRAM sends
// no password, only a proof bound to both nonces, and RFC 9051's own
// sample advertises AUTH=SCRAM-SHA-256 next to LOGINDISABLED before
// STARTTLS (rfc9051.txt:6207). What an eavesdropper can still do is try
// passwords offline against the proof and read the session itself, so
// the cleartext port stays loopback-only by default; a site that wants
// SCRAM only under TLS disables "AUTH=SCRAM-SHA-256" (Config.Disabled).

// scramOffered: SCRAM-SHA-256 is advertised and accepted.
func (c *Conn) scramOffered() bool {
	return c.srv.st != nil && !c.disabled["AUTH=SCRAM-SHA-256"]
}

// scramPlusOffered: SCRAM-SHA-256-PLUS is advertised and accepted, on a
// TLS connection whose tls-exporter binding (RFC 9266) exists: TLS 1.3,
// or TLS 1.2 with the extended master secret (crypto/tls refuses to export
// keying material without it).
func (c *Conn) scramPlusOffered() bool {
	return c.scramOffered() && !c.disabled["AUTH=SCRAM-SHA-256-PLUS"] && c.channelBinding().IsSupported()
}

// channelBinding is the connection's tls-exporter channel binding, zero
// without TLS.
func (c *Conn) channelBinding() store.ChannelBinding {
	tc, ok := c.nc.(*tls.Conn)
	if !ok {
		return store.ChannelBinding{}
	}
	st := tc.ConnectionState()
	cb, err := scram.NewTLSExporterBinding(&st)
	if err != nil {
		return store.ChannelBinding{}
	}
	return cb
}

// authSCRAM runs the exchange from the client-first-message on (first).
func (c *Conn) authSCRAM(plus bool, first []byte) error {
	var cb store.ChannelBinding
	if c.scramPlusOffered() {
		// Given also to the non-PLUS mechanism: a client that could bind
		// but did not see -PLUS ("y") detects a downgrade (RFC 5802 §6).
		cb = c.channelBinding()
	}
	x := c.srv.st.NewSCRAM(c.remoteAddr(), plus, cb)
	msg := first
	for {
		out, done, u, err := x.Step(c.ctx, msg)
		switch {
		case errors.Is(err, store.ErrSASLMalformed):
			return Bad("", "malformed SCRAM message")
		case errors.Is(err, store.ErrAuthzFailed):
			// As PLAIN (cmdAuthenticate): no user may act as another.
			return No("AUTHORIZATIONFAILED", "authorization identity must equal the user name")
		case err != nil:
			return c.loggedIn(x.Name(), u, err)
		}
		// The next response: the client-final-message, or after the
		// server-final-message (which carries the server's signature and
		// must reach the client before the tagged OK) an empty one, as in
		// RFC 9051 §8's sample.
		msg, err = c.saslChallenge(out)
		if err != nil {
			return err
		}
		if done {
			if len(msg) != 0 {
				return Bad("", "expected an empty response after the server's signature")
			}
			return c.loggedIn(x.Name(), u, nil)
		}
	}
}
