package store

import (
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/xdg-go/scram"
	"github.com/xdg-go/stringprep"
)

// SCRAM-SHA-256 (RFC 5802, RFC 7677) for IMAP AUTHENTICATE and SMTP AUTH.
//
// The store keeps a verifier per user next to the bcrypt hash (schema
// 0027): salt, iteration count, StoredKey and ServerKey, never the
// password. CreateUser and SetPassword write it; an account whose password
// predates it gains one at its next successful Authenticate (PLAIN/LOGIN).
// The exchange itself is github.com/xdg-go/scram's server conversation;
// this file adds the credential lookup that does not tell which users
// exist, the failed-login limiter, and the channel-binding policy.

const (
	// maxSCRAMMessage bounds a client message: a real one is well under
	// 1 KiB (a name, a nonce, a proof); the daemons' line limits (64 KiB
	// IMAP, 2,000 bytes SMTP) come first, this keeps a long nonce from
	// being echoed back and hashed.
	maxSCRAMMessage = 4 << 10
	// SCRAMIterations is the iteration count of new verifiers: RFC 7677 §4
	// "the iteration-count ... SHOULD be at least 4096".
	SCRAMIterations = 4096
	scramSaltLen    = 16
)

// ErrAuthzFailed: the client asked to act as another user (an authzid
// different from the authentication identity), which no account may.
var ErrAuthzFailed = errors.New("store: authorization identity differs from the user")

// ErrSASLMalformed: the client's SASL message does not parse.
var ErrSASLMalformed = errors.New("store: malformed SASL message")

// scramVerifier is what the store keeps of a password for SCRAM-SHA-256
// (RFC 5802 §3: SaltedPassword := Hi(Normalize(password), salt, i),
// ClientKey := HMAC(SaltedPassword, "Client Key"), StoredKey := H(ClientKey),
// ServerKey := HMAC(SaltedPassword, "Server Key")).
type scramVerifier struct {
	salt      []byte
	iters     int
	storedKey []byte
	serverKey []byte
}

// deriveSCRAM computes the verifier of password for salt and iters. ok is
// false for a password that SASLprep (RFC 4013) refuses or empties, which
// RFC 5802 §2.2 Normalize makes unusable for SCRAM: that user has no
// verifier, and a SCRAM attempt fails as with a wrong password.
func deriveSCRAM(password string, salt []byte, iters int) (v scramVerifier, ok bool) {
	p, err := stringprep.SASLprep.Prepare(password)
	if err != nil || p == "" {
		return scramVerifier{}, false
	}
	salted, err := pbkdf2.Key(sha256.New, p, salt, iters, sha256.Size) // Hi() is PBKDF2, RFC 5802 §2.2
	if err != nil {
		return scramVerifier{}, false
	}
	clientKey := hmacSHA256(salted, []byte("Client Key"))
	stored := sha256.Sum256(clientKey)
	return scramVerifier{salt: salt, iters: iters, storedKey: stored[:],
		serverKey: hmacSHA256(salted, []byte("Server Key"))}, true
}

// newSCRAMVerifier derives a verifier with a fresh random salt.
func newSCRAMVerifier(password string) (scramVerifier, bool) {
	salt := make([]byte, scramSaltLen)
	rand.Read(salt)
	return deriveSCRAM(password, salt, SCRAMIterations)
}

// args are the verifier's four columns as query parameters (all NULL for none).
func (v scramVerifier) args() []any {
	if v.salt == nil {
		return []any{nil, nil, nil, nil}
	}
	return []any{v.salt, v.iters, v.storedKey, v.serverKey}
}

func hmacSHA256(key, data []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(data)
	return m.Sum(nil)
}

// scramFake is the secret (schema 0027's scram_secret) from which fake
// verifiers are derived, loaded once per process.
type scramFake struct {
	mu     sync.Mutex
	secret []byte
}

// fakeVerifier is the verifier answered for name when it is no user's or
// its user has none: a salt derived from the database's secret and the
// name, the same on every attempt and every server process, and the
// iteration count of real verifiers (RFC 5802 §5.1: the server "SHOULD
// ... generate a salt and iteration count ... deterministically", so that
// the answer does not tell that the user does not exist). Its keys match
// no password.
func (s *Store) fakeVerifier(ctx context.Context, name string) (scramVerifier, error) {
	s.scramFake.mu.Lock()
	defer s.scramFake.mu.Unlock()
	if s.scramFake.secret == nil {
		var b []byte
		if err := s.pool.QueryRow(ctx, `SELECT secret FROM scram_secret`).Scan(&b); err != nil {
			return scramVerifier{}, wrap("scram secret", err)
		}
		s.scramFake.secret = b
	}
	k := s.scramFake.secret
	return scramVerifier{
		salt:      hmacSHA256(k, []byte("salt\x00"+name))[:scramSaltLen],
		iters:     SCRAMIterations,
		storedKey: hmacSHA256(k, []byte("stored\x00"+name)),
		serverKey: hmacSHA256(k, []byte("server\x00"+name)),
	}, nil
}

// scramLookup finds name's verifier: the user (ID 0 if none) and their
// verifier, or the fake one. Both paths cost one query and a few HMACs.
func (s *Store) scramLookup(ctx context.Context, name string) (User, scramVerifier, error) {
	var u User
	var v scramVerifier
	var iters *int32
	err := pgx.ErrNoRows
	if utf8.ValidString(name) && !strings.Contains(name, "\x00") {
		err = s.pool.QueryRow(ctx, `SELECT id, name, scram_salt, scram_iters, scram_stored_key, scram_server_key
			FROM users WHERE name = $1`, name).Scan(&u.ID, &u.Name, &v.salt, &iters, &v.storedKey, &v.serverKey)
	}
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return User{}, scramVerifier{}, wrap("scram lookup", err)
	}
	if err == nil && iters != nil {
		v.iters = int(*iters)
		return u, v, nil
	}
	v, err = s.fakeVerifier(ctx, name)
	return User{}, v, err
}

// SCRAMExchange is the server side of one SCRAM-SHA-256 or
// SCRAM-SHA-256-PLUS authentication (RFC 5802 §5, RFC 7677): the daemon
// passes each client message to Step, already base64-decoded, and sends
// back what Step returns. Not safe for concurrent use.
type SCRAMExchange struct {
	s      *Store
	remote netip.Addr
	plus   bool
	conv   *scram.ServerConversation
	ctx    context.Context // of the Step running
	user   User            // the account found by the first message (ID 0: none)
	lookup error
	name   string
	step   int
}

// ChannelBinding is a TLS connection's channel binding (RFC 9266
// tls-exporter); the zero value is none.
type ChannelBinding = scram.ChannelBinding

// NewSCRAM starts an exchange with a client at remote (invalid: a local
// socket). plus is the mechanism the client chose: SCRAM-SHA-256-PLUS
// (then cb must be set) or SCRAM-SHA-256. cb is the connection's channel
// binding when the server advertised the -PLUS mechanism on it, zero
// otherwise: a non-PLUS client that says it could bind ("y") although the
// server advertised -PLUS is then refused as a downgrade (RFC 5802 §6).
func (s *Store) NewSCRAM(remote netip.Addr, plus bool, cb ChannelBinding) *SCRAMExchange {
	x := &SCRAMExchange{s: s, remote: remote, plus: plus}
	srv, _ := scram.SHA256.NewServer(x.credentials)
	if s.scramNonce != nil {
		srv = srv.WithNonceGenerator(s.scramNonce)
	}
	if cb.IsSupported() {
		x.conv = srv.NewConversationWithChannelBinding(cb)
	} else {
		x.conv = srv.NewConversation()
	}
	return x
}

// credentials is the library's lookup callback.
func (x *SCRAMExchange) credentials(name string) (scram.StoredCredentials, error) {
	x.name = name
	u, v, err := x.s.scramLookup(x.ctx, name)
	if err != nil {
		x.lookup = err
		return scram.StoredCredentials{}, err
	}
	x.user = u
	return scram.StoredCredentials{KeyFactors: scram.KeyFactors{Salt: string(v.salt), Iters: v.iters},
		StoredKey: v.storedKey, ServerKey: v.serverKey}, nil
}

// Name is the authentication identity the client gave (after the first Step).
func (x *SCRAMExchange) Name() string { return x.name }

// Step takes the client's next message and returns the server's: the
// server-first-message after the client-first-message, and after the
// client-final-message, if the proof is right, the server-final-message
// with done true and the user. The server-final-message must still reach
// the client, which checks the server's signature with it (IMAP and SMTP
// send it as a last challenge, answered by an empty response).
//
// Errors: ErrSASLMalformed, ErrAuthzFailed, ErrAuthFailed (a wrong proof,
// an unknown user, a user without a verifier, a channel-binding
// mismatch: all alike), a *ThrottledError (the limiter refused to check
// the proof), or a server error. The exchange is over after an error.
func (x *SCRAMExchange) Step(ctx context.Context, msg []byte) (out []byte, done bool, u User, err error) {
	x.ctx = ctx
	defer func() { x.ctx = nil }()
	x.step++
	switch {
	case len(msg) > maxSCRAMMessage:
		err = ErrSASLMalformed
	case x.step == 1:
		out, err = x.first(string(msg))
	case x.step == 2:
		out, u, err = x.final(string(msg))
		done = err == nil
	default:
		err = ErrSASLMalformed
	}
	if err != nil {
		x.step = 3
	}
	return out, done, u, err
}

func (x *SCRAMExchange) first(msg string) ([]byte, error) {
	// gs2-cbind-flag, RFC 5802 §7: "p=" binds, "n" and "y" do not. A
	// -PLUS mechanism means binding (RFC 5802 §6: the client "MUST" use
	// the -PLUS name when it binds), the plain one means not binding.
	switch {
	case msg == "" || !utf8.ValidString(msg):
		return nil, ErrSASLMalformed
	case x.plus && !strings.HasPrefix(msg, "p="):
		return nil, fmt.Errorf("%w: -PLUS without channel binding", ErrAuthFailed)
	case !x.plus && strings.HasPrefix(msg, "p="):
		return nil, fmt.Errorf("%w: channel binding without -PLUS", ErrAuthFailed)
	}
	out, err := x.conv.Step(msg)
	if x.lookup != nil {
		return nil, x.lookup
	}
	if err != nil {
		if strings.HasPrefix(out, "e=") {
			// A channel-binding policy failure (a downgrade "y", an
			// unsupported binding type): the client parsed fine.
			return nil, fmt.Errorf("%w: %s", ErrAuthFailed, out)
		}
		return nil, fmt.Errorf("%w: %v", ErrSASLMalformed, err)
	}
	if a := x.conv.AuthzID(); a != "" && a != x.conv.Username() {
		return nil, ErrAuthzFailed
	}
	return []byte(out), nil
}

// final checks the proof behind the failed-login limiter, as
// AuthenticateFrom checks a password: the attempt is charged first and
// refunded on success.
func (x *SCRAMExchange) final(msg string) ([]byte, User, error) {
	ctx := x.ctx
	keys, err := x.s.authBegin(ctx, x.remote, x.name)
	if err != nil {
		return nil, User{}, err
	}
	out, err := x.conv.Step(msg)
	if err != nil || !x.conv.Valid() || x.user.ID == 0 {
		// Proof, nonce or channel binding wrong, or a fake verifier
		// (which no proof matches): the charge stays.
		return nil, User{}, ErrAuthFailed
	}
	if err := x.s.authSucceeded(ctx, keys); err != nil {
		return nil, User{}, err
	}
	return []byte(out), x.user, nil
}
