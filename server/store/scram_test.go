package store_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/xdg-go/scram"
	"golang.org/x/crypto/bcrypt"

	"decimail/schema"
	"decimail/server/pgrun"
	"decimail/server/store"
)

// The RFC 7677 §3 example, repeated in RFC 9051 §8 (AUTHENTICATE
// SCRAM-SHA-256, rfc9051.txt:6212ff).
const (
	rfcClientFirst = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
	rfcServerNonce = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
	rfcServerFirst = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
	rfcClientFinal = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
	rfcServerFinal = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
)

var local = netip.MustParseAddr("192.0.2.10")

// TestSCRAMRFC7677Example replays the RFC's exchange byte for byte: user
// "user", password "pencil", its salt, iteration count and both nonces.
func TestSCRAMRFC7677Example(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	if _, err := s.CreateUser(ctx, "user", "pencil"); err != nil {
		t.Fatal(err)
	}
	salt, _ := base64.StdEncoding.DecodeString("W22ZaJ0SNY7soEsUEjb6gQ==")
	if err := s.SetSCRAMVerifier(ctx, "user", "pencil", salt, 4096); err != nil {
		t.Fatal(err)
	}
	s.FixSCRAMNonce(rfcServerNonce)
	x := s.NewSCRAM(local, false, store.ChannelBinding{})
	out, done, _, err := x.Step(ctx, []byte(rfcClientFirst))
	if err != nil || done || string(out) != rfcServerFirst {
		t.Fatalf("server-first = %q, %v, %v; want %q", out, done, err, rfcServerFirst)
	}
	out, done, u, err := x.Step(ctx, []byte(rfcClientFinal))
	if err != nil || !done || string(out) != rfcServerFinal || u.Name != "user" {
		t.Fatalf("server-final = %q, %v, %+v, %v; want %q", out, done, u, err, rfcServerFinal)
	}
	// A third message is a protocol error.
	if _, _, _, err := x.Step(ctx, nil); !errors.Is(err, store.ErrSASLMalformed) {
		t.Errorf("step after the end: %v", err)
	}
}

// TestSCRAMVerifierDerivation: our SaltedPassword/StoredKey/ServerKey for
// the RFC's salt and count give the RFC's proof and server signature
// (recomputed here by RFC 5802 §3's formulas, independently of the exchange).
func TestSCRAMVerifierDerivation(t *testing.T) {
	salt, _ := base64.StdEncoding.DecodeString("W22ZaJ0SNY7soEsUEjb6gQ==")
	stored, server, ok := store.DeriveSCRAM("pencil", salt, 4096)
	if !ok {
		t.Fatal("no verifier")
	}
	authMsg := strings.TrimPrefix(rfcClientFirst, "n,,") + "," + rfcServerFirst + "," +
		rfcClientFinal[:strings.Index(rfcClientFinal, ",p=")]
	sig := hmacSum(server, authMsg)
	if got := "v=" + base64.StdEncoding.EncodeToString(sig); got != rfcServerFinal {
		t.Errorf("ServerSignature %s, want %s", got, rfcServerFinal)
	}
	proof, _ := base64.StdEncoding.DecodeString(rfcClientFinal[strings.Index(rfcClientFinal, ",p=")+3:])
	clientSig := hmacSum(stored, authMsg)
	clientKey := make([]byte, len(proof))
	for i := range proof {
		clientKey[i] = proof[i] ^ clientSig[i]
	}
	if h := sha256Sum(clientKey); !bytes.Equal(h, stored) {
		t.Errorf("H(ClientProof XOR ClientSignature) = %x, want StoredKey %x", h, stored)
	}
	// SASLprep (RFC 4013) maps a soft hyphen to nothing and refuses a
	// control character.
	if s2, _, _ := store.DeriveSCRAM("pen\u00ADcil", salt, 4096); !bytes.Equal(s2, stored) {
		t.Error("SASLprep not applied")
	}
	if _, _, ok := store.DeriveSCRAM("pen\x07cil", salt, 4096); ok {
		t.Error("a prohibited character gave a verifier")
	}
}

// scramLogin runs the library's client (an independent implementation)
// against an exchange; it returns the store's error.
func scramLogin(t *testing.T, s *store.Store, from netip.Addr, user, authz, pass string) (store.User, error) {
	t.Helper()
	c, err := scram.SHA256.NewClient(user, pass, authz)
	if err != nil {
		t.Fatal(err)
	}
	conv := c.NewConversation()
	x := s.NewSCRAM(from, false, store.ChannelBinding{})
	return runSCRAM(t, conv, x)
}

func runSCRAM(t *testing.T, conv *scram.ClientConversation, x *store.SCRAMExchange) (store.User, error) {
	t.Helper()
	ctx := context.Background()
	msg, err := conv.Step("")
	if err != nil {
		t.Fatal(err)
	}
	for {
		out, done, u, err := x.Step(ctx, []byte(msg))
		if err != nil {
			return u, err
		}
		msg, err = conv.Step(string(out))
		if done {
			if err != nil || !conv.Valid() {
				t.Fatalf("client refused the server's signature: %v", err)
			}
			return u, nil
		}
		if err != nil {
			t.Fatalf("client: %v", err)
		}
	}
}

// TestSCRAMLogin: CreateUser stores a verifier (never the password) that
// the library's client authenticates against; a wrong password and an
// unknown user fail alike; SetPassword replaces the verifier.
func TestSCRAMLogin(t *testing.T) {
	t.Parallel()
	s, u := newStore(t)
	ctx := context.Background()
	salt, iters, stored, server, err := s.SCRAMVerifier(ctx, "u")
	if err != nil || len(salt) != 16 || iters != 4096 || len(stored) != 32 || len(server) != 32 {
		t.Fatalf("verifier %x %d %x %x %v", salt, iters, stored, server, err)
	}
	if got, err := scramLogin(t, s, local, "u", "", "pw"); err != nil || got != u {
		t.Fatalf("login = %+v, %v", got, err)
	}
	if got, err := scramLogin(t, s, local, "u", "u", "pw"); err != nil || got != u {
		t.Fatalf("login with authzid = itself: %+v, %v", got, err)
	}
	if _, err := scramLogin(t, s, local, "u", "", "wrong"); !errors.Is(err, store.ErrAuthFailed) {
		t.Fatalf("wrong password: %v", err)
	}
	if _, err := scramLogin(t, s, local, "nobody", "", "pw"); !errors.Is(err, store.ErrAuthFailed) {
		t.Fatalf("unknown user: %v", err)
	}
	if _, err := scramLogin(t, s, local, "u", "other", "pw"); !errors.Is(err, store.ErrAuthzFailed) {
		t.Fatalf("authzid of another user: %v", err)
	}
	if err := s.SetPassword(ctx, "u", "new"); err != nil {
		t.Fatal(err)
	}
	if _, err := scramLogin(t, s, local, "u", "", "pw"); !errors.Is(err, store.ErrAuthFailed) {
		t.Fatalf("old password after SetPassword: %v", err)
	}
	if _, err := scramLogin(t, s, local, "u", "", "new"); err != nil {
		t.Fatalf("new password: %v", err)
	}
}

// TestSCRAMNoEnumeration: the server-first-message for an unknown user and
// for a user without a verifier has the shape of a real one (a 16-byte
// salt, 4096 iterations) and is the same on every attempt, so a client
// cannot tell them from an account; a real user's salt stays its own.
func TestSCRAMNoEnumeration(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	if _, err := s.CreateUser(ctx, "old", "pw"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetSCRAMVerifier(ctx, "old", "", nil, 0); err != nil {
		t.Fatal(err)
	}
	first := func(name string) (salt, iters string) {
		x := s.NewSCRAM(local, false, store.ChannelBinding{})
		out, _, _, err := x.Step(ctx, []byte("n,,n="+name+",r=abcdefgh"))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		f := strings.Split(string(out), ",")
		if len(f) != 3 || !strings.HasPrefix(f[0], "r=abcdefgh") {
			t.Fatalf("%s: server-first %q", name, out)
		}
		return f[1], f[2]
	}
	salts := map[string]bool{}
	for _, name := range []string{"u", "nobody", "old", "x=2Cy"} {
		salt, iters := first(name)
		if again, _ := first(name); again != salt {
			t.Errorf("%s: salt %s then %s", name, salt, again)
		}
		b, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(salt, "s="))
		if err != nil || len(b) != 16 || iters != "i=4096" {
			t.Errorf("%s: %s %s", name, salt, iters)
		}
		salts[salt] = true
	}
	if len(salts) != 4 {
		t.Errorf("salts not distinct per name: %v", salts)
	}
	if _, err := scramLogin(t, s, local, "old", "", "pw"); !errors.Is(err, store.ErrAuthFailed) {
		t.Fatalf("user without a verifier: %v", err)
	}
}

// TestSCRAMVerifierAddedAtLogin: an account made before schema 0027 (no
// verifier) cannot use SCRAM until its next PLAIN/LOGIN success, which
// stores one; a failed password check adds nothing.
func TestSCRAMVerifierAddedAtLogin(t *testing.T) {
	t.Parallel()
	s, u := newStore(t)
	ctx := context.Background()
	if err := s.SetSCRAMVerifier(ctx, "u", "", nil, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := scramLogin(t, s, local, "u", "", "pw"); !errors.Is(err, store.ErrAuthFailed) {
		t.Fatalf("SCRAM without a verifier: %v", err)
	}
	if _, err := s.Authenticate(ctx, "u", "wrong"); !errors.Is(err, store.ErrAuthFailed) {
		t.Fatal(err)
	}
	if salt, _, _, _, _ := s.SCRAMVerifier(ctx, "u"); salt != nil {
		t.Fatal("a failed login stored a verifier")
	}
	if _, err := s.AuthenticateFrom(ctx, local, "u", "pw"); err != nil {
		t.Fatal(err)
	}
	if salt, iters, _, _, _ := s.SCRAMVerifier(ctx, "u"); len(salt) != 16 || iters != 4096 {
		t.Fatalf("after PLAIN: verifier %x %d", salt, iters)
	}
	if got, err := scramLogin(t, s, local, "u", "", "pw"); err != nil || got != u {
		t.Fatalf("SCRAM after PLAIN: %+v, %v", got, err)
	}
}

// TestSCRAMLimiter: SCRAM failures are charged to the address like
// PLAIN's (5 free here), so the 6th attempt, SCRAM or PLAIN, right
// password or not, is refused unchecked; a success refunds its charge.
func TestSCRAMLimiter(t *testing.T) {
	t.Parallel()
	s, _ := authStore(t, 0)
	ctx := context.Background()
	addr := netip.MustParseAddr("192.0.2.77")
	for i := range 4 {
		if _, err := scramLogin(t, s, addr, "demo", "", "guess"); !errors.Is(err, store.ErrAuthFailed) {
			t.Fatalf("guess %d: %v", i, err)
		}
	}
	// Successes do not count: three, then still one guess left.
	for range 3 {
		if _, err := scramLogin(t, s, addr, "demo", "", "pw"); err != nil {
			t.Fatalf("right password: %v", err)
		}
	}
	if _, err := scramLogin(t, s, addr, "nobody", "", "guess"); !errors.Is(err, store.ErrAuthFailed) {
		t.Fatalf("5th failure: %v", err)
	}
	if _, err := scramLogin(t, s, addr, "demo", "", "pw"); !errors.Is(err, store.ErrAuthThrottled) {
		t.Fatalf("SCRAM after 5 failures: %v", err)
	}
	if _, err := s.AuthenticateFrom(ctx, addr, "demo", "pw"); !errors.Is(err, store.ErrAuthThrottled) {
		t.Fatalf("PLAIN after 5 SCRAM failures: %v", err)
	}
	// Cancelling after the first message costs nothing: only a proof is checked.
	other := netip.MustParseAddr("192.0.2.78")
	for range 10 {
		x := s.NewSCRAM(other, false, store.ChannelBinding{})
		if _, _, _, err := x.Step(ctx, []byte("n,,n=demo,r=abcdefgh")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := scramLogin(t, s, other, "demo", "", "pw"); err != nil {
		t.Fatalf("after abandoned exchanges: %v", err)
	}
}

// TestSCRAMChannelBindingFlags: RFC 5802 §6's downgrade detection. A
// client that could bind but saw no -PLUS ("y") is refused where -PLUS was
// advertised and accepted where not; "p=" needs the -PLUS mechanism and
// the connection's binding data.
func TestSCRAMChannelBindingFlags(t *testing.T) {
	t.Parallel()
	s, u := newStore(t)
	ctx := context.Background()
	cb := store.ChannelBinding{Type: scram.ChannelBindingTLSExporter, Data: bytes.Repeat([]byte{7}, 32)}
	client, _ := scram.SHA256.NewClient("u", "pw", "")
	if _, err := runSCRAM(t, client.NewConversationAdvertisingChannelBinding(),
		s.NewSCRAM(local, false, cb)); !errors.Is(err, store.ErrAuthFailed) {
		t.Errorf(`"y" where -PLUS was advertised: %v`, err)
	}
	if got, err := runSCRAM(t, client.NewConversationAdvertisingChannelBinding(),
		s.NewSCRAM(local, false, store.ChannelBinding{})); err != nil || got != u {
		t.Errorf(`"y" where -PLUS was not advertised: %+v %v`, got, err)
	}
	if got, err := runSCRAM(t, client.NewConversationWithChannelBinding(cb), s.NewSCRAM(local, true, cb)); err != nil || got != u {
		t.Errorf("-PLUS with the binding: %+v %v", got, err)
	}
	other := store.ChannelBinding{Type: scram.ChannelBindingTLSExporter, Data: bytes.Repeat([]byte{8}, 32)}
	if _, err := runSCRAM(t, client.NewConversationWithChannelBinding(other), s.NewSCRAM(local, true, cb)); !errors.Is(err, store.ErrAuthFailed) {
		t.Errorf("-PLUS with another connection's binding: %v", err)
	}
	if _, err := runSCRAM(t, client.NewConversationWithChannelBinding(cb), s.NewSCRAM(local, false, cb)); !errors.Is(err, store.ErrAuthFailed) {
		t.Errorf(`"p=" with the non-PLUS mechanism: %v`, err)
	}
	if _, err := runSCRAM(t, client.NewConversation(), s.NewSCRAM(local, true, cb)); !errors.Is(err, store.ErrAuthFailed) {
		t.Errorf(`"n" with the -PLUS mechanism: %v`, err)
	}
	for _, bad := range []string{"", "x,,n=u,r=a", "n,,n=u", "n,,r=abc,n=u", strings.Repeat("n", 100),
		"n,,n=u,r=" + strings.Repeat("A", 5000)} {
		x := s.NewSCRAM(local, false, store.ChannelBinding{})
		if _, _, _, err := x.Step(ctx, []byte(bad)); !errors.Is(err, store.ErrSASLMalformed) {
			t.Errorf("client-first %.60q: %v", bad, err)
		}
	}
}

func hmacSum(key []byte, msg string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

func sha256Sum(b []byte) []byte {
	h := sha256.Sum256(b)
	return h[:]
}

// TestSCRAMAfterUpgrade: a database from before schema 0027 with an
// account: after the upgrade the account has no verifier, so SCRAM fails
// as with a wrong password, and its first password login adds one.
func TestSCRAMAfterUpgrade(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	inst, _, err := pgrun.Shared(ctx)
	if err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("t_scram_upgrade_%d", os.Getpid())
	dsn, err := pgrun.CloneDB(ctx, inst.DSN, "template0", name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pgrun.DropDB(context.Background(), inst.DSN, name) })
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := schema.MigrateTo(ctx, c, 26); err != nil {
		t.Fatal(err)
	}
	h, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if _, err := c.Exec(ctx, `INSERT INTO users (name, password_hash) VALUES ('old', $1)`, string(h)); err != nil {
		t.Fatal(err)
	}
	c.Close(ctx)
	s, err := store.Open(ctx, dsn, store.Options{PasswordCost: bcrypt.MinCost}) // applies 0027
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := scramLogin(t, s, local, "old", "", "pw"); !errors.Is(err, store.ErrAuthFailed) {
		t.Fatalf("SCRAM before any password login: %v", err)
	}
	if _, err := s.AuthenticateFrom(ctx, local, "old", "pw"); err != nil {
		t.Fatal(err)
	}
	if _, err := scramLogin(t, s, local, "old", "", "pw"); err != nil {
		t.Fatalf("SCRAM after the password login: %v", err)
	}
}
