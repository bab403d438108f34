package imapd

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/xdg-go/scram"
	"golang.org/x/crypto/bcrypt"

	"decimail/internal/imaptest"
	"decimail/server/pgrun"
	"decimail/server/store"
)

// scramEnv is newEnv with the limiter's config set first (key/value pairs
// of the configuration table), so that tests can loosen or tighten it.
func scramEnv(t *testing.T, cfg Config, limits ...string) *testEnv {
	t.Helper()
	ctx := context.Background()
	dsn := pgrun.TestDB(t)
	st, err := store.Open(ctx, dsn, store.Options{PasswordCost: bcrypt.MinCost})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(limits); i += 2 {
		if err := st.SetConfig(ctx, limits[i], limits[i+1]); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	if st, err = store.Open(ctx, dsn, store.Options{PasswordCost: bcrypt.MinCost}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	u, err := st.CreateUser(ctx, "u", "pw")
	if err != nil {
		t.Fatal(err)
	}
	e := &testEnv{t: t, st: st, user: u, dsn: dsn}
	cfg.AuthFailDelay = time.Millisecond
	e.srv, e.addr = e.serve(cfg)
	return e
}

// scramAuth runs AUTHENTICATE mech as the library's client conv (an
// independent SCRAM implementation) would: with the client-first-message
// as initial response (SASL-IR) or after an empty continuation, then the
// client-final-message, then, having checked the server's signature, an
// empty response. It returns the tagged reply.
func scramAuth(t *testing.T, c *imaptest.TestClient, tag, mech string, conv *scram.ClientConversation, ir bool) *imaptest.Resp {
	t.Helper()
	first, err := conv.Step("")
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.StdEncoding.EncodeToString
	if ir {
		c.Send(tag + " AUTHENTICATE " + mech + " " + b64([]byte(first)))
	} else {
		c.Send(tag + " AUTHENTICATE " + mech)
		if r := c.Next(); r.Tag != "+" || r.Text != "" {
			t.Fatalf("want an empty continuation, got %s", r)
		}
		c.Send(b64([]byte(first)))
	}
	for {
		r := c.Next()
		if r.Tag != "+" {
			if r.Tag != tag {
				t.Fatalf("unexpected %s", r)
			}
			return r
		}
		chal, err := base64.StdEncoding.DecodeString(r.Text)
		if err != nil {
			t.Fatalf("challenge %q: %v", r.Text, err)
		}
		resp, err := conv.Step(string(chal))
		if err != nil {
			t.Fatalf("client refused %q: %v", chal, err)
		}
		if conv.Done() && !conv.Valid() {
			t.Fatalf("server signature %q not valid", chal)
		}
		c.Send(b64([]byte(resp)))
	}
}

func scramClient(t *testing.T, user, pass, authz string) *scram.Client {
	cl, err := scram.SHA256.NewClient(user, pass, authz)
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// TestAuthenticateSCRAM: AUTH=SCRAM-SHA-256 is advertised; the library's
// client logs in with SASL-IR and with continuation rounds, and the
// server's signature checks; the session is then authenticated.
func TestAuthenticateSCRAM(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.dialAddr(e.addr)
	u, _ := c.DoTag("a", "CAPABILITY")
	if caps := capabilities(t, u); !caps["AUTH=SCRAM-SHA-256"] || caps["AUTH=SCRAM-SHA-256-PLUS"] || !caps["AUTH=PLAIN"] {
		t.Fatalf("capabilities %q", u)
	}
	loggedIn(t, scramAuth(t, c, "b", "SCRAM-SHA-256", scramClient(t, "u", "pw", "").NewConversation(), true))
	c.OK("SELECT INBOX")
	expectReply(t, c, "c", "AUTHENTICATE SCRAM-SHA-256", nil, "c BAD AUTHENTICATE not allowed in selected state")

	c = e.dialAddr(e.addr)
	loggedIn(t, scramAuth(t, c, "b", "scram-sha-256", scramClient(t, "u", "pw", "u").NewConversation(), false))
	c.OK("SELECT INBOX")
}

// TestAuthenticateSCRAMFailures: a wrong password and an unknown user get
// the same NO [AUTHENTICATIONFAILED] after the same exchange, in similar
// time; an authzid of another user is refused as PLAIN's is.
func TestAuthenticateSCRAMFailures(t *testing.T) {
	t.Parallel()
	e := scramEnv(t, Config{}, "auth_addr_free", "1000", "auth_user_free", "1000")
	c := e.dialAddr(e.addr)
	try := func(user, pass string) (string, time.Duration) {
		start := time.Now()
		r := scramAuth(t, c, "x", "SCRAM-SHA-256", scramClient(t, user, pass, "").NewConversation(), true)
		return r.Raw, time.Since(start)
	}
	var wrong, unknown []time.Duration
	for i := range 16 {
		if i > 0 && i%2 == 0 {
			c = e.dialAddr(e.addr) // under the per-connection limit of 5
		}
		r1, d1 := try("u", "guess")
		r2, d2 := try("nobody", "guess")
		for _, r := range []string{r1, r2} {
			if r != "x NO [AUTHENTICATIONFAILED] Invalid credentials" {
				t.Fatalf("reply %q", r)
			}
		}
		wrong, unknown = append(wrong, d1), append(unknown, d2)
	}
	slices.Sort(wrong)
	slices.Sort(unknown)
	mw, mu := wrong[len(wrong)/2], unknown[len(unknown)/2]
	t.Logf("median exchange: wrong password %v, unknown user %v", mw, mu)
	if mu > 3*mw || mw > 3*mu {
		t.Errorf("timings differ: wrong password %v, unknown user %v", mw, mu)
	}

	c = e.dialAddr(e.addr)
	if r := scramAuth(t, c, "a", "SCRAM-SHA-256", scramClient(t, "u", "pw", "other").NewConversation(), false); r.Raw != "a NO [AUTHORIZATIONFAILED] authorization identity must equal the user name" {
		t.Errorf("authzid: %s", r)
	}
	loggedIn(t, scramAuth(t, c, "b", "SCRAM-SHA-256", scramClient(t, "u", "pw", "").NewConversation(), false))
}

// TestAuthenticateSCRAMProtocolErrors: "*" cancels at either round, bad
// base64 and a malformed client-first-message are BAD (an "invalid base64 string":
// rfc9051.txt:1443-1446),
// an empty response is required after the server's signature, and a
// client that can bind but saw no -PLUS ("y") is fine where none was offered.
func TestAuthenticateSCRAMProtocolErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.dialAddr(e.addr)
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	c.Send("a AUTHENTICATE SCRAM-SHA-256")
	c.Expect("+ ")
	c.Send("*")
	c.Expect("a BAD AUTHENTICATE cancelled")

	c.Send("b AUTHENTICATE SCRAM-SHA-256 " + b64("n,,n=u,r=0123456789abcdef"))
	if r := c.Next(); r.Tag != "+" || r.Text == "" {
		t.Fatalf("server-first: %s", r)
	}
	c.Send("*")
	c.Expect("b BAD AUTHENTICATE cancelled")

	expectReply(t, c, "c", "AUTHENTICATE SCRAM-SHA-256 !!!", nil, "c BAD invalid base64")
	c.Send("d AUTHENTICATE SCRAM-SHA-256")
	c.Expect("+ ")
	c.Send("=AAA")
	c.Expect("d BAD invalid base64")
	expectReply(t, c, "e", "AUTHENTICATE SCRAM-SHA-256 =", nil, "e BAD malformed SCRAM message")
	expectReply(t, c, "f", "AUTHENTICATE SCRAM-SHA-256 "+b64("n,,r=abc"), nil, "f BAD malformed SCRAM message")
	expectReply(t, c, "g", "AUTHENTICATE SCRAM-SHA-256-PLUS "+b64("p=tls-exporter,,n=u,r=abc"), nil,
		"g NO unsupported authentication mechanism")
	expectReply(t, c, "h", "AUTHENTICATE SCRAM-SHA-256 "+b64("p=tls-exporter,,n=u,r=abc"), nil,
		"h NO [AUTHENTICATIONFAILED] Invalid credentials")

	// A non-empty response to the server-final-message.
	conv := scramClient(t, "u", "pw", "").NewConversation()
	first, _ := conv.Step("")
	c.Send("i AUTHENTICATE SCRAM-SHA-256 " + b64(first))
	r := c.Next()
	chal, _ := base64.StdEncoding.DecodeString(r.Text)
	final, _ := conv.Step(string(chal))
	c.Send(b64(final))
	if r := c.Next(); r.Tag != "+" || !strings.HasPrefix(mustB64(t, r.Text), "v=") {
		t.Fatalf("server-final: %s", r)
	}
	c.Send(b64("v=please"))
	c.Expect("i BAD expected an empty response after the server's signature")
	c.OK("NOOP")
	expectReply(t, c, "j", "SELECT INBOX", nil, "j BAD SELECT not allowed in not authenticated state")

	c = e.dialAddr(e.addr)
	loggedIn(t, scramAuth(t, c, "k", "SCRAM-SHA-256",
		scramClient(t, "u", "pw", "").NewConversationAdvertisingChannelBinding(), true))
}

func mustB64(t *testing.T, s string) string {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return string(b)
}

// TestAuthenticateSCRAMUpgrade: an account from before SCRAM (no
// verifier) fails SCRAM like a wrong password, gains a verifier by its
// next LOGIN, then logs in with SCRAM.
func TestAuthenticateSCRAMUpgrade(t *testing.T) {
	t.Parallel()
	e := scramEnv(t, Config{})
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, e.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `UPDATE users SET scram_salt = NULL, scram_iters = NULL, scram_stored_key = NULL,
		scram_server_key = NULL`); err != nil {
		t.Fatal(err)
	}
	c := e.dialAddr(e.addr)
	if r := scramAuth(t, c, "a", "SCRAM-SHA-256", scramClient(t, "u", "pw", "").NewConversation(), true); r.Raw != "a NO [AUTHENTICATIONFAILED] Invalid credentials" {
		t.Fatalf("before LOGIN: %s", r)
	}
	c.OK("LOGIN u pw")
	c = e.dialAddr(e.addr)
	loggedIn(t, scramAuth(t, c, "b", "SCRAM-SHA-256", scramClient(t, "u", "pw", "").NewConversation(), true))
}

// TestAuthenticateSCRAMLimiter: SCRAM failures are charged to the
// address as LOGIN's are (3 free here), so the right password is then
// refused unchecked by LOGIN and SCRAM alike (NO [UNAVAILABLE]); and the
// connection's fifth failure is answered BYE.
func TestAuthenticateSCRAMLimiter(t *testing.T) {
	t.Parallel()
	e := scramEnv(t, Config{}, "auth_addr_free", "3", "auth_delay_base", "1m")
	c := e.dialAddr(e.addr)
	for i := range 3 {
		if r := scramAuth(t, c, "a", "SCRAM-SHA-256", scramClient(t, "u", "guess", "").NewConversation(), i%2 == 0); r.Raw != "a NO [AUTHENTICATIONFAILED] Invalid credentials" {
			t.Fatalf("guess %d: %s", i, r)
		}
	}
	if r := scramAuth(t, c, "b", "SCRAM-SHA-256", scramClient(t, "u", "pw", "").NewConversation(), true); !strings.HasPrefix(r.Raw, "b NO [UNAVAILABLE] Too many failed logins from your address; try again in ") {
		t.Fatalf("SCRAM after 3 failures: %s", r)
	}
	c = e.dialAddr(e.addr)
	_, done := c.DoTag("c", "LOGIN u pw")
	if !strings.HasPrefix(done.Raw, "c NO [UNAVAILABLE] Too many failed logins from your address; try again in ") {
		t.Fatalf("LOGIN after 3 SCRAM failures: %s", done)
	}

	// Per connection: the fifth failure ends it (maxAuthFailures).
	e = scramEnv(t, Config{}, "auth_addr_free", "1000")
	c = e.dialAddr(e.addr)
	for range 4 {
		scramAuth(t, c, "a", "SCRAM-SHA-256", scramClient(t, "u", "guess", "").NewConversation(), true)
	}
	conv := scramClient(t, "u", "guess", "").NewConversation()
	first, _ := conv.Step("")
	c.Send("z AUTHENTICATE SCRAM-SHA-256 " + base64.StdEncoding.EncodeToString([]byte(first)))
	chal, _ := base64.StdEncoding.DecodeString(c.Next().Text)
	final, _ := conv.Step(string(chal))
	c.Send(base64.StdEncoding.EncodeToString([]byte(final)))
	c.Expect("* BYE Too many failed authentication attempts")
	c.ExpectClosed()
}

// TestAuthenticateSCRAMHostileSizes: a 100 KB client-first-message, as
// initial response or as a continuation response, is refused by the
// line limit (MaxLine, 64 KiB) without reaching SCRAM, and the
// connection goes on.
func TestAuthenticateSCRAMHostileSizes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.dialAddr(e.addr)
	huge := base64.StdEncoding.EncodeToString([]byte("n,,n=u,r=" + strings.Repeat("A", 100<<10)))
	_, done := c.DoTag("a", "AUTHENTICATE SCRAM-SHA-256 "+huge)
	if done.Status != "BAD" {
		t.Fatalf("100 KB initial response: %s", done)
	}
	c.Send("b AUTHENTICATE SCRAM-SHA-256")
	c.Expect("+ ")
	c.Send(huge)
	if r := c.Next(); r.Tag != "b" || r.Status != "BAD" {
		t.Fatalf("100 KB response: %s", r)
	}
	loggedIn(t, scramAuth(t, c, "c", "SCRAM-SHA-256", scramClient(t, "u", "pw", "").NewConversation(), true))
}

// TestAuthenticateSCRAMPlus: on TLS the server also offers
// SCRAM-SHA-256-PLUS with the tls-exporter binding (RFC 9266); the
// library's client binds to its side of the connection and logs in; a
// client saying "y" (could bind, saw no -PLUS) is a downgrade and fails
// (RFC 5802 §6). Before STARTTLS on a non-loopback connection: SCRAM is
// offered (and works) though PLAIN is not, and -PLUS is not.
func TestAuthenticateSCRAMPlus(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	srv := New(Config{AuthFailDelay: time.Millisecond, TLS: selfSignedTLS(t)}, e.st, nil)
	t.Cleanup(func() { srv.Close() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.ServeTLS(ln)
	dial := func() (*imaptest.TestClient, *tls.Conn) {
		tc, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		return newWireClient(t, tc), tc
	}
	c, tc := dial()
	u, _ := c.DoTag("a", "CAPABILITY")
	if caps := capabilities(t, u); !caps["AUTH=SCRAM-SHA-256-PLUS"] || !caps["AUTH=SCRAM-SHA-256"] {
		t.Fatalf("capabilities on TLS %q", u)
	}
	st := tc.ConnectionState()
	cb, err := scram.NewTLSExporterBinding(&st)
	if err != nil {
		t.Fatal(err)
	}
	loggedIn(t, scramAuth(t, c, "b", "SCRAM-SHA-256-PLUS", scramClient(t, "u", "pw", "").NewConversationWithChannelBinding(cb), true))

	// Another connection's binding does not match.
	c, _ = dial()
	if r := scramAuth(t, c, "c", "SCRAM-SHA-256-PLUS", scramClient(t, "u", "pw", "").NewConversationWithChannelBinding(cb), false); r.Raw != "c NO [AUTHENTICATIONFAILED] Invalid credentials" {
		t.Fatalf("foreign binding: %s", r)
	}
	if r := scramAuth(t, c, "d", "SCRAM-SHA-256", scramClient(t, "u", "pw", "").NewConversationAdvertisingChannelBinding(), true); r.Raw != "d NO [AUTHENTICATIONFAILED] Invalid credentials" {
		t.Fatalf(`"y" where -PLUS was offered: %s`, r)
	}
	loggedIn(t, scramAuth(t, c, "e", "SCRAM-SHA-256", scramClient(t, "u", "pw", "").NewConversation(), true))

	// Cleartext, not loopback (a pipe): SCRAM yes, PLAIN and -PLUS no.
	c = dialPipe(t, srv)
	u, _ = c.DoTag("a", "CAPABILITY")
	if caps := capabilities(t, u); !caps["AUTH=SCRAM-SHA-256"] || caps["AUTH=SCRAM-SHA-256-PLUS"] || caps["AUTH=PLAIN"] || !caps["LOGINDISABLED"] {
		t.Fatalf("capabilities in cleartext %q", u)
	}
	loggedIn(t, scramAuth(t, c, "b", "SCRAM-SHA-256", scramClient(t, "u", "pw", "").NewConversation(), false))

	// Switched off by configuration.
	off := New(Config{AuthFailDelay: time.Millisecond, Disabled: map[string]bool{"AUTH=SCRAM-SHA-256": true}}, e.st, nil)
	t.Cleanup(func() { off.Close() })
	c = dialPipe(t, off)
	u, _ = c.DoTag("a", "CAPABILITY")
	if caps := capabilities(t, u); caps["AUTH=SCRAM-SHA-256"] {
		t.Fatalf("capabilities with SCRAM disabled %q", u)
	}
	expectReply(t, c, "b", "AUTHENTICATE SCRAM-SHA-256", nil, "b NO unsupported authentication mechanism")
}
