package imapd

// Wire-level tests of the connection core over real sockets, with a fake
// authenticator (no database needed at this layer; end-to-end behaviour
// on Postgres is covered by harness_test.go and the conformance suite).

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"log/slog"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"decimail/internal/imaptest"
	"decimail/server/store"
)

type fakeAuth map[string]string

func (f fakeAuth) Authenticate(_ context.Context, name, pw string) (store.User, error) {
	if p, ok := f[name]; ok && p == pw {
		return store.User{ID: 7, Name: name}, nil
	}
	return store.User{}, store.ErrAuthFailed
}

func init() {
	// Test-only commands exercising the core's error and poll paths. They
	// belong to the extension "XTEST" (never advertised), which FuzzServer's
	// server disables: a fuzzer that finds XPANIC has found no bug.
	register("XPANIC", cmdSpec{states: anyState, ext: "XTEST", fn: func(*Conn, *Command) error { panic("boom") }})
	register("XERR", cmdSpec{states: anyState, ext: "XTEST", fn: func(*Conn, *Command) error { return errors.New("db down: secret detail") }})
	register("XSEL", cmdSpec{states: authenticated, ext: "XTEST", fn: func(c *Conn, _ *Command) error {
		c.poll = func(allowExpunge bool) error {
			c.Untagged("OK poll %v", allowExpunge)
			return nil
		}
		c.onUnselect = func() { c.Untagged("OK unselected") }
		c.SetState(Selected)
		return c.OK("READ-WRITE", "XSEL completed")
	}})
	register("XFETCHLIKE", cmdSpec{states: selected, ext: "XTEST", fn: func(*Conn, *Command) error { return nil }})
	// Panics in the middle of a response: holding the writer lock, and
	// after releasing it (a deferred Unlock).
	register("XPANICLOCKED", cmdSpec{states: anyState, ext: "XTEST", fn: func(c *Conn, _ *Command) error {
		c.w.Lock()
		c.w.Raw("* 1 FETCH (BODY[] {10}\r\nabc")
		panic("boom")
	}})
	register("XPANICDEFER", cmdSpec{states: anyState, ext: "XTEST", fn: func(c *Conn, _ *Command) error {
		c.w.Lock()
		defer c.w.Unlock()
		c.w.Raw("* 1 FETCH (FLAGS")
		panic("boom")
	}})
}

func newWireServer(t testing.TB, cfg Config, log *slog.Logger) *Server {
	cfg.AuthFailDelay = time.Millisecond
	s := newServer(cfg, fakeAuth{"alice": "s3cret-pw"}, log)
	t.Cleanup(func() { s.Close() })
	return s
}

// dialTCP connects over loopback TCP.
func dialTCP(t testing.TB, s *Server) *imaptest.TestClient {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ln)
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	return newWireClient(t, nc)
}

// dialPipe connects through net.Pipe: a peer that is not loopback.
func dialPipe(t testing.TB, s *Server) *imaptest.TestClient {
	a, b := net.Pipe()
	c := newConn(s, a, false)
	if !s.addConn(c) {
		t.Fatal("server closed")
	}
	go c.serve()
	return newWireClient(t, b)
}

func newWireClient(t testing.TB, nc net.Conn) *imaptest.TestClient {
	t.Helper()
	c := imaptest.NewTest(t, nc)
	if g := c.Greeting; !imaptest.MatchStatus(g, "OK [CAPABILITY IMAP4rev1 *] Decimail ready") {
		t.Fatalf("greeting %s", g)
	}
	return c
}

// expectReply checks one command's full response.
func expectReply(t testing.TB, c *imaptest.TestClient, tag, cmd string, wantUntagged []string, wantTagged string) {
	t.Helper()
	u, done := c.DoTag(tag, cmd)
	if d := imaptest.Diff(append(u, done), append(wantUntagged, wantTagged)...); d != "" {
		t.Errorf("%s %s:\n%s", tag, cmd, d)
	}
}

// loggedIn checks a tagged OK to LOGIN or AUTHENTICATE: it carries the
// capabilities, as the greeting does (LOGIN: rfc3501.txt:1687-1691,
// "A server MAY include a CAPABILITY response code").
func loggedIn(t testing.TB, done *imaptest.Resp) {
	t.Helper()
	if !imaptest.MatchStatus(done, "OK [CAPABILITY IMAP4rev1 *] *") {
		t.Fatalf("login: %s", done)
	}
}

func login(t testing.TB, c *imaptest.TestClient) {
	t.Helper()
	_, done := c.DoTag("L", "LOGIN alice s3cret-pw")
	loggedIn(t, done)
}

// capabilities are the capabilities of the one CAPABILITY response in u,
// upper-cased.
func capabilities(t testing.TB, u []*imaptest.Resp) map[string]bool {
	t.Helper()
	if len(u) != 1 || u[0].Name() != "CAPABILITY" {
		t.Fatalf("want one CAPABILITY response, got %q", u)
	}
	caps := map[string]bool{}
	for _, tok := range u[0].Data[1:] {
		caps[strings.ToUpper(tok.S)] = true
	}
	return caps
}

func TestCapability(t *testing.T) {
	c := dialTCP(t, newWireServer(t, Config{}, nil))
	u, done := c.DoTag("a", "CAPABILITY")
	imaptest.ExpectDone(t, done, "OK CAPABILITY completed")
	caps := capabilities(t, u)
	for _, want := range []string{"IMAP4REV1", "LITERAL+", "SASL-IR", "ID", "ENABLE", "NAMESPACE", "AUTH=PLAIN"} {
		if !caps[want] {
			t.Errorf("CAPABILITY lacks %s: %s", want, u[0])
		}
	}
	for _, unwanted := range []string{"STARTTLS", "LOGINDISABLED"} {
		if caps[unwanted] {
			t.Errorf("CAPABILITY has %s without TLS config on loopback: %s", unwanted, u[0])
		}
	}
	expectReply(t, c, "b", "CAPABILITY x", nil, "b BAD syntax error: CAPABILITY takes no arguments")
}

func TestDisabledExtension(t *testing.T) {
	s := newWireServer(t, Config{Disabled: map[string]bool{"ID": true}}, nil)
	s.cfg.PerUserDisabled = func(user string) map[string]bool { return map[string]bool{"namespace": true} }
	c := dialTCP(t, s)
	u, _ := c.DoTag("a", "CAPABILITY")
	if capabilities(t, u)["ID"] {
		t.Errorf("disabled ID advertised: %q", u)
	}
	expectReply(t, c, "b", "ID NIL", nil, "b BAD unknown command ID")
	login(t, c)
	expectReply(t, c, "c", "NAMESPACE", nil, "c BAD unknown command NAMESPACE")
}

// Regression (found by FuzzServer with a panic planted in FETCH's partial):
// a handler that panicked while writing a response held the writer lock
// forever, so its session hung and Server.Close with it. Now the session
// ends with BYE [SERVERBUG] after the fragment's line; a panic before any
// output is still a NO [SERVERBUG] for that command only.
func TestPanicMidResponseEndsSession(t *testing.T) {
	for _, tt := range []struct{ cmd, fragment string }{
		{"XPANICLOCKED", "abc"},
		{"XPANICDEFER", "* 1 FETCH (FLAGS"},
	} {
		s := newWireServer(t, Config{}, nil)
		c := dialTCP(t, s)
		expectReply(t, c, "a", "XPANIC", nil, "a NO [SERVERBUG] internal error")
		c.Send("b " + tt.cmd)
		// The fragment is not a whole response: read lines off the socket.
		br := bufio.NewReader(c.Conn())
		line := func() string {
			c.Conn().SetReadDeadline(time.Now().Add(10 * time.Second))
			l, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("%s: read: %v (got %q)", tt.cmd, err, l)
			}
			return strings.TrimSuffix(l, "\r\n")
		}
		for {
			l := line()
			if l == tt.fragment {
				break
			}
			if !strings.HasPrefix(l, "* 1 FETCH") {
				t.Fatalf("%s: %q before the fragment %q", tt.cmd, l, tt.fragment)
			}
		}
		if l := line(); l != "* BYE [SERVERBUG] internal error" {
			t.Errorf("%s: %q, want BYE [SERVERBUG]", tt.cmd, l)
		}
		if l, err := br.ReadString('\n'); err == nil {
			t.Errorf("%s: %q after BYE, want the connection closed", tt.cmd, l)
		}
		done := make(chan struct{})
		go func() { s.Close(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: Server.Close hangs on the session", tt.cmd)
		}
	}
}

func TestStateAndSyntaxErrors(t *testing.T) {
	c := dialTCP(t, newWireServer(t, Config{}, nil))
	expectReply(t, c, "a", "NAMESPACE", nil, "a BAD NAMESPACE not allowed in not authenticated state")
	expectReply(t, c, "b", "FROB", nil, "b BAD unknown command FROB")
	expectReply(t, c, "c", "UID FROB 1", nil, "c BAD unknown command UID FROB")
	expectReply(t, c, "d", `LOGIN "a`, nil, "d BAD syntax error: unterminated quoted string")
	c.Send("")
	c.Expect("* BAD syntax error: empty command line")
	expectReply(t, c, "e", "XERR", nil, "e NO [SERVERBUG] internal error")
	expectReply(t, c, "f", "XPANIC", nil, "f NO [SERVERBUG] internal error")
	expectReply(t, c, "g", "noop", nil, "g OK NOOP completed")
	login(t, c)
	expectReply(t, c, "h", "LOGIN alice s3cret-pw", nil, "h BAD LOGIN not allowed in authenticated state")
	expectReply(t, c, "i", "XFETCHLIKE", nil, "i BAD XFETCHLIKE not allowed in authenticated state")
	expectReply(t, c, "j", "NAMESPACE", []string{`* NAMESPACE (("" "/")) NIL NIL`}, "j OK NAMESPACE completed")
	expectReply(t, c, "k", "ENABLE FOO", []string{"* ENABLED"}, "k OK ENABLE completed")
	expectReply(t, c, "l", `ID ("name" "test" "version" NIL)`, []string{`* ID ("name" "Decimail" "version" "dev")`}, "l OK ID completed")
}

// The core polls after every command in the selected state, before the
// tagged reply, without EXPUNGE for FETCH/STORE/SEARCH (rfc3501.txt:4053).
func TestPollHook(t *testing.T) {
	c := dialTCP(t, newWireServer(t, Config{}, nil))
	login(t, c)
	expectReply(t, c, "a", "XSEL", []string{"* OK poll true"}, "a OK [READ-WRITE] XSEL completed")
	expectReply(t, c, "b", "NOOP", []string{"* OK poll true"}, "b OK NOOP completed")
	expectReply(t, c, "c", "XFETCHLIKE", []string{"* OK poll true"}, "c OK XFETCHLIKE completed")
	expectReply(t, c, "d", "LOGOUT", []string{"* BYE Decimail logging out", "* OK unselected"}, "d OK LOGOUT completed")
	for name, want := range map[string]bool{"FETCH": true, "STORE": true, "SEARCH": true, "UID FETCH": false, "UID STORE": false, "UID SEARCH": false, "NOOP": false} {
		if noExpunge[name] != want {
			t.Errorf("noExpunge[%s] = %v", name, !want)
		}
	}
}

func TestLogin(t *testing.T) {
	c := dialTCP(t, newWireServer(t, Config{}, nil))
	expectReply(t, c, "a", "LOGIN alice wrong", nil, "a NO [AUTHENTICATIONFAILED] Invalid credentials")
	expectReply(t, c, "b", "LOGIN alice", nil, "b BAD syntax error: LOGIN takes a user name and a password")
	// By hand, to see the continuation request's text.
	c.Send("c LOGIN {5}")
	c.Expect("+ Ready for literal data")
	c.Send("alice {9+}\r\ns3cret-pw")
	_, done := c.Until("c")
	loggedIn(t, done)
	for _, tok := range done.Code[1:] {
		if s := strings.ToUpper(tok.S); strings.HasPrefix(s, "AUTH=") || s == "STARTTLS" {
			t.Fatalf("login: %s", done)
		}
	}
}

func TestTooManyAuthFailures(t *testing.T) {
	c := dialTCP(t, newWireServer(t, Config{}, nil))
	for range maxAuthFailures - 1 {
		expectReply(t, c, "a", "LOGIN alice x", nil, "a NO [AUTHENTICATIONFAILED] Invalid credentials")
	}
	c.Send("b LOGIN alice x")
	c.Expect("* BYE Too many failed authentication attempts")
	c.ExpectClosed()
}

func plainIR(authz, user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte(authz + "\x00" + user + "\x00" + pass))
}

func TestAuthenticatePlain(t *testing.T) {
	s := newWireServer(t, Config{}, nil)
	// SASL-IR (rfc4959).
	c := dialTCP(t, s)
	_, done := c.DoTag("a", "AUTHENTICATE PLAIN "+plainIR("", "alice", "s3cret-pw"))
	loggedIn(t, done)

	// Continuation; authzid equal to authcid is fine.
	c = dialTCP(t, s)
	c.Send("a AUTHENTICATE plain")
	c.Expect("+ ")
	c.Send(plainIR("alice", "alice", "s3cret-pw"))
	_, done = c.Until("a")
	loggedIn(t, done)

	c = dialTCP(t, s)
	c.Send("a AUTHENTICATE PLAIN")
	c.Expect("+ ")
	c.Send("*")
	_, done = c.Until("a")
	imaptest.ExpectDone(t, done, "BAD AUTHENTICATE cancelled")
	expectReply(t, c, "b", "AUTHENTICATE PLAIN "+plainIR("bob", "alice", "s3cret-pw"), nil,
		"b NO [AUTHORIZATIONFAILED] authorization identity must equal the user name")
	expectReply(t, c, "c", "AUTHENTICATE PLAIN !!!", nil, "c BAD invalid base64")
	expectReply(t, c, "d", "AUTHENTICATE PLAIN =", nil, "d BAD malformed PLAIN response")
	expectReply(t, c, "e", "AUTHENTICATE CRAM-MD5", nil, "e NO unsupported authentication mechanism")
	expectReply(t, c, "f", "AUTHENTICATE PLAIN "+plainIR("", "alice", "nope"), nil, "f NO [AUTHENTICATIONFAILED] Invalid credentials")
}

// Without TLS a non-loopback peer may not send a password (LOGINDISABLED, rfc3501.txt:1704-1713).
func TestPrivacyRequired(t *testing.T) {
	c := dialPipe(t, newWireServer(t, Config{}, nil))
	u, _ := c.DoTag("a", "CAPABILITY")
	if caps := capabilities(t, u); !caps["LOGINDISABLED"] || caps["AUTH=PLAIN"] {
		t.Errorf("capabilities %q", u)
	}
	expectReply(t, c, "b", "LOGIN alice s3cret-pw", nil, "b NO [PRIVACYREQUIRED] LOGIN is disabled without TLS; use STARTTLS")
	expectReply(t, c, "c", "AUTHENTICATE PLAIN "+plainIR("", "alice", "s3cret-pw"), nil, "c NO [PRIVACYREQUIRED] PLAIN is disabled without TLS; use STARTTLS")

	c = dialPipe(t, newWireServer(t, Config{AllowPlaintext: true}, nil))
	login(t, c)
}

func TestPipelining(t *testing.T) {
	c := dialTCP(t, newWireServer(t, Config{}, nil))
	c.Send("a NOOP\r\nb LOGIN alice s3cret-pw\r\nc NAMESPACE\r\nd FOO\r\ne LOGOUT")
	c.Expect("a OK NOOP completed")
	if r := c.Next(); r.Tag != "b" {
		t.Fatalf("LOGIN: %s", r)
	} else {
		loggedIn(t, r)
	}
	c.Expect(`* NAMESPACE (("" "/")) NIL NIL`, "c OK NAMESPACE completed",
		"d BAD unknown command FOO", "* BYE Decimail logging out", "e OK LOGOUT completed")
	c.ExpectClosed()
}

func TestLiteralLimits(t *testing.T) {
	c := dialTCP(t, newWireServer(t, Config{MaxLiteral: 10, MaxAppendLiteral: 100, MaxPreAuthLiterals: 8}, nil))
	// Before login every command, APPEND too, is held to
	// MaxPreAuthLiterals, all its literals together; no "+" is sent.
	expectReply(t, c, "a", "APPEND INBOX {9}", nil, "a BAD [TOOBIG] literal too big")
	expectReply(t, c, "a", "LOGIN {5}\r\nalice {4}", nil, "a BAD [TOOBIG] literal too big")
	login(t, c)
	expectReply(t, c, "b", "APPEND INBOX {101}", nil, "b NO [TOOBIG] message too big")
	expectReply(t, c, "c", "LOGIN {11+}\r\n01234567890 x", nil, "c BAD [TOOBIG] literal too big")
	c.Send("d APPEND INBOX {1000+}")
	c.Expect("* BYE [TOOBIG] literal too big")
	c.ExpectClosed()
	// A non-synchronising literal above the limit before login ends the
	// connection: an unauthenticated client makes us read nothing big
	// (issue 13: LOGIN with 60 literals of 1 MiB held 75 MB a connection).
	c = dialTCP(t, newWireServer(t, Config{MaxPreAuthLiterals: 8}, nil))
	c.Send("e LOGIN {9+}")
	c.Expect("* BYE [TOOBIG] literal too big before authentication")
	c.ExpectClosed()
}

// Literals held in memory count against the connection's address: over
// MaxMemoryPerIP a synchronising literal is refused (NO [LIMIT], nothing
// read) until the other connection's command is done.
func TestMemoryPerAddress(t *testing.T) {
	s := newWireServer(t, Config{MaxLiteral: 100, MaxMemoryPerIP: 150, LimitLoopback: true}, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ln)
	dial := func() *imaptest.TestClient {
		nc, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c := newWireClient(t, nc)
		login(t, c)
		return c
	}
	a, b := dial(), dial()
	field := strings.Repeat("x", 90)
	a.Send(`a1 ID ("name" {90}`) // announced, and held: its 90 octets are reserved
	if r := a.Next(); r.Tag != "+" {
		t.Fatalf("continuation: %s", r)
	}
	expectReply(t, b, "b1", `ID ("name" {90}`, nil, "b1 NO [LIMIT] too much data in flight from your address, try again later")
	a.Send(field + ")")
	a.Expect(`* ID ("name" "Decimail" "version" "dev")`, "a1 OK ID completed")
	a.OK("NOOP") // a's next command is read: its reservation is released
	expectReply(t, b, "b2", `ID ("name" {90}`+"\r\n"+field+")", []string{`* ID ("name" "Decimail" "version" "dev")`}, "b2 OK ID completed")
}

func TestLogout(t *testing.T) {
	c := dialTCP(t, newWireServer(t, Config{}, nil))
	expectReply(t, c, "a", "LOGOUT", []string{"* BYE Decimail logging out"}, "a OK LOGOUT completed")
	c.ExpectClosed()
}

func TestAutologout(t *testing.T) {
	c := dialTCP(t, newWireServer(t, Config{PreAuthTimeout: 100 * time.Millisecond}, nil))
	c.Expect("* BYE Autologout; idle for too long")
	c.ExpectClosed()
}

func TestShutdown(t *testing.T) {
	s := newWireServer(t, Config{}, nil)
	c := dialTCP(t, s)
	login(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- s.Shutdown(ctx) }()
	c.Expect("* BYE [UNAVAILABLE] Server shutting down")
	c.ExpectClosed()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Regression for the original's conversation log, which held plaintext
// passwords: no credential reaches the log at any level.
func TestConversationLogRedactsCredentials(t *testing.T) {
	var buf syncBuffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s := newWireServer(t, Config{LogIMAP: true}, log)
	ir := plainIR("", "alice", "s3cret-pw")
	c := dialTCP(t, s)
	c.DoTag("a", "LOGIN alice s3cret-pw")
	c.DoTag("b", `LOGOUT`)
	c = dialTCP(t, s)
	c.DoTag("a", `LOGIN "alice" {9+}`+"\r\ns3cret-pw")
	c = dialTCP(t, s)
	c.DoTag("a", "AUTHENTICATE PLAIN "+ir)
	c = dialTCP(t, s)
	c.Send("a AUTHENTICATE PLAIN")
	c.Expect("+ ")
	c.Send(ir)
	c.Until("a")
	c.DoTag("b", "NOOP")
	logged := buf.String()
	for _, secret := range []string{"s3cret-pw", ir} {
		if strings.Contains(logged, secret) {
			t.Errorf("log contains %q:\n%s", secret, logged)
		}
	}
	for _, want := range []string{"C: a LOGIN *** ***", "C: a AUTHENTICATE PLAIN ***", "C: b NOOP", "S: b OK NOOP completed", "session="} {
		if !strings.Contains(logged, want) {
			t.Errorf("log lacks %q:\n%s", want, logged)
		}
	}
}

func selfSignedTLS(t testing.TB) *tls.Config {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		DNSNames: []string{"localhost"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}

// STARTTLS over a non-loopback peer: LOGINDISABLED before, AUTH=PLAIN and
// LOGIN after; data pipelined behind STARTTLS is discarded (rfc3501.txt:1478-1480:
// the client "MUST NOT issue further commands until a server response is seen").
func TestStartTLS(t *testing.T) {
	s := newWireServer(t, Config{TLS: selfSignedTLS(t)}, nil)
	c := dialPipe(t, s)
	u, _ := c.DoTag("a", "CAPABILITY")
	if caps := capabilities(t, u); !caps["STARTTLS"] || !caps["LOGINDISABLED"] {
		t.Fatalf("before STARTTLS: %q", u)
	}
	_, done := c.DoTag("b", "STARTTLS")
	imaptest.ExpectDone(t, done, "OK Begin TLS negotiation now")
	if err := c.UpgradeTLS(&tls.Config{InsecureSkipVerify: true}); err != nil {
		t.Fatal(err)
	}
	u, _ = c.DoTag("c", "CAPABILITY")
	if caps := capabilities(t, u); caps["STARTTLS"] || caps["LOGINDISABLED"] || !caps["AUTH=PLAIN"] {
		t.Fatalf("after STARTTLS: %q", u)
	}
	expectReply(t, c, "d", "STARTTLS", nil, "d BAD unknown command STARTTLS")
	login(t, c)
}

func TestServeTLS(t *testing.T) {
	s := newWireServer(t, Config{TLS: selfSignedTLS(t)}, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.ServeTLS(ln)
	nc, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	c := newWireClient(t, nc)
	u, _ := c.DoTag("a", "CAPABILITY")
	if capabilities(t, u)["STARTTLS"] {
		t.Errorf("STARTTLS offered on implicit TLS: %q", u)
	}
	login(t, c)
}
