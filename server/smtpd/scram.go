package smtpd

import (
	"errors"

	"github.com/emersion/go-smtp"
	"github.com/xdg-go/scram"

	"decimail/server/store"
)

// SCRAM-SHA-256 and SCRAM-SHA-256-PLUS for AUTH (RFC 7677, RFC 5802),
// the store's exchange (store.SCRAMExchange, shared with IMAP) behind
// go-smtp's sasl.Server: go-sasl has no SCRAM server. go-smtp offers AUTH
// only where it allows any mechanism (TLS, or AllowInsecureAuth), so SCRAM
// follows PLAIN's policy here.

const (
	mechSCRAM     = "SCRAM-SHA-256"
	mechSCRAMPlus = "SCRAM-SHA-256-PLUS"
)

var errSASLSyntax = &smtp.SMTPError{Code: 501, EnhancedCode: smtp.EnhancedCode{5, 5, 2}, Message: "Malformed SCRAM message"}

// channelBinding is the connection's tls-exporter binding (RFC 9266),
// zero without TLS or where crypto/tls cannot export it (TLS 1.2
// without the extended master secret).
func (x *session) channelBinding() store.ChannelBinding {
	if x.conn == nil {
		return store.ChannelBinding{}
	}
	st, ok := x.conn.TLSConnectionState()
	if !ok {
		return store.ChannelBinding{}
	}
	cb, err := scram.NewTLSExporterBinding(&st)
	if err != nil {
		return store.ChannelBinding{}
	}
	return cb
}

// scramServer is one AUTH SCRAM-SHA-256[-PLUS] exchange.
type scramServer struct {
	x       *session
	ex      *store.SCRAMExchange
	started bool
	user    *store.User // the proof checked; logged in at the empty response
}

func (x *session) newSCRAM(plus bool) *scramServer {
	// The binding goes to the non-PLUS mechanism too where -PLUS is
	// offered, so that a client saying "y" is caught (RFC 5802 §6).
	return &scramServer{x: x, ex: x.s.st.NewSCRAM(x.ip, plus, x.channelBinding())}
}

func (m *scramServer) Next(resp []byte) (challenge []byte, done bool, err error) {
	if !m.started && resp == nil {
		// No initial response: ask for the client-first-message with an
		// empty challenge, "a 334 reply with no text part" (rfc4954.txt:198-206).
		m.started = true
		return []byte{}, false, nil
	}
	m.started = true
	if m.user != nil {
		// The client has the server-final-message (sent as a challenge:
		// SMTP has no "additional data with a successful outcome",
		// rfc4954.txt:276-284) and answers with an empty response.
		if len(resp) != 0 {
			return nil, true, errSASLSyntax
		}
		m.x.user = m.user
		m.x.log.Info("smtpd: authenticated", "user", m.user.Name, "mechanism", "SCRAM")
		return nil, true, nil
	}
	ctx, cancel := m.x.ctx()
	defer cancel()
	out, fin, u, err := m.ex.Step(ctx, resp)
	switch {
	case errors.Is(err, store.ErrSASLMalformed):
		return nil, true, errSASLSyntax
	case errors.Is(err, store.ErrAuthzFailed):
		return nil, true, m.x.authFailed(m.ex.Name(), "authorization identity differs")
	case err != nil:
		return nil, true, m.x.authOutcome(m.ex.Name(), u, err)
	}
	if fin {
		m.user = &u
	}
	return out, false, nil
}
