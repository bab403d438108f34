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

type wireClient struct {
	t  testing.TB
	nc net.Conn
	br *bufio.Reader
}

func newWireServer(t testing.TB, cfg Config, log *slog.Logger) *Server {
	cfg.AuthFailDelay = time.Millisecond
	s := newServer(cfg, fakeAuth{"alice": "s3cret-pw"}, log)
	t.Cleanup(func() { s.Close() })
	return s
}

// dialTCP connects over loopback TCP.
func dialTCP(t testing.TB, s *Server) *wireClient {
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
func dialPipe(t testing.TB, s *Server) *wireClient {
	a, b := net.Pipe()
	c := newConn(s, a, false)
	if !s.addConn(c) {
		t.Fatal("server closed")
	}
	go c.serve()
	return newWireClient(t, b)
}

func newWireClient(t testing.TB, nc net.Conn) *wireClient {
	t.Cleanup(func() { nc.Close() })
	c := &wireClient{t: t, nc: nc, br: bufio.NewReader(nc)}
	if g := c.line(); !strings.HasPrefix(g, "* OK [CAPABILITY IMAP4rev1 ") || !strings.HasSuffix(g, "] Decimail ready") {
		t.Fatalf("greeting %q", g)
	}
	return c
}

func (c *wireClient) send(s string) {
	c.t.Helper()
	c.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.nc.Write([]byte(s)); err != nil {
		c.t.Fatalf("send %q: %v", s, err)
	}
}

func (c *wireClient) line() string {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	l, err := c.br.ReadString('\n')
	if err != nil {
		c.t.Fatalf("read: %v (got %q)", err, l)
	}
	return strings.TrimSuffix(l, "\r\n")
}

// do sends "tag cmd" and returns the untagged lines and the tagged reply.
func (c *wireClient) do(tag, cmd string) ([]string, string) {
	c.t.Helper()
	c.send(tag + " " + cmd + "\r\n")
	return c.until(tag)
}

func (c *wireClient) until(tag string) (untagged []string, tagged string) {
	c.t.Helper()
	for {
		l := c.line()
		if strings.HasPrefix(l, tag+" ") {
			return untagged, l
		}
		untagged = append(untagged, l)
	}
}

// expectReply checks one command's full response.
func (c *wireClient) expectReply(tag, cmd string, wantUntagged []string, wantTagged string) {
	c.t.Helper()
	u, tg := c.do(tag, cmd)
	if strings.Join(u, "\n") != strings.Join(wantUntagged, "\n") || tg != wantTagged {
		c.t.Errorf("%s %s:\n got %q %q\nwant %q %q", tag, cmd, u, tg, wantUntagged, wantTagged)
	}
}

func (c *wireClient) login() {
	c.t.Helper()
	if _, tg := c.do("L", "LOGIN alice s3cret-pw"); !strings.HasPrefix(tg, "L OK [CAPABILITY IMAP4rev1 ") {
		c.t.Fatalf("login: %q", tg)
	}
}

func (c *wireClient) expectEOF() {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if l, err := c.br.ReadString('\n'); err == nil {
		c.t.Fatalf("expected the connection to close, got %q", l)
	}
}

func TestCapability(t *testing.T) {
	c := dialTCP(t, newWireServer(t, Config{}, nil))
	u, tg := c.do("a", "CAPABILITY")
	if tg != "a OK CAPABILITY completed" || len(u) != 1 {
		t.Fatalf("%q %q", u, tg)
	}
	caps := " " + strings.TrimPrefix(u[0], "* CAPABILITY ") + " "
	for _, want := range []string{"IMAP4rev1", "LITERAL+", "SASL-IR", "ID", "ENABLE", "NAMESPACE", "AUTH=PLAIN"} {
		if !strings.Contains(caps, " "+want+" ") {
			t.Errorf("CAPABILITY lacks %s: %s", want, caps)
		}
	}
	for _, unwanted := range []string{"STARTTLS", "LOGINDISABLED"} {
		if strings.Contains(caps, " "+unwanted+" ") {
			t.Errorf("CAPABILITY has %s without TLS config on loopback: %s", unwanted, caps)
		}
	}
	c.expectReply("b", "CAPABILITY x", nil, "b BAD syntax error: CAPABILITY takes no arguments")
}

func TestDisabledExtension(t *testing.T) {
	s := newWireServer(t, Config{Disabled: map[string]bool{"ID": true}}, nil)
	s.cfg.PerUserDisabled = func(user string) map[string]bool { return map[string]bool{"namespace": true} }
	c := dialTCP(t, s)
	u, _ := c.do("a", "CAPABILITY")
	if strings.Contains(u[0]+" ", " ID ") {
		t.Errorf("disabled ID advertised: %q", u)
	}
	c.expectReply("b", "ID NIL", nil, "b BAD unknown command ID")
	c.login()
	c.expectReply("c", "NAMESPACE", nil, "c BAD unknown command NAMESPACE")
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
		c.expectReply("a", "XPANIC", nil, "a NO [SERVERBUG] internal error")
		c.send("b " + tt.cmd + "\r\n")
		for {
			l := c.line()
			if l == tt.fragment {
				break
			}
			if !strings.HasPrefix(l, "* 1 FETCH") {
				t.Fatalf("%s: %q before the fragment %q", tt.cmd, l, tt.fragment)
			}
		}
		if l := c.line(); l != "* BYE [SERVERBUG] internal error" {
			t.Errorf("%s: %q, want BYE [SERVERBUG]", tt.cmd, l)
		}
		if l, err := c.br.ReadString('\n'); err == nil {
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
	c.expectReply("a", "NAMESPACE", nil, "a BAD NAMESPACE not allowed in not authenticated state")
	c.expectReply("b", "FROB", nil, "b BAD unknown command FROB")
	c.expectReply("c", "UID FROB 1", nil, "c BAD unknown command UID FROB")
	c.expectReply("d", `LOGIN "a`, nil, "d BAD syntax error: unterminated quoted string")
	c.send("\r\n")
	if l := c.line(); l != "* BAD syntax error: empty command line" {
		t.Errorf("empty line: %q", l)
	}
	c.expectReply("e", "XERR", nil, "e NO [SERVERBUG] internal error")
	c.expectReply("f", "XPANIC", nil, "f NO [SERVERBUG] internal error")
	c.expectReply("g", "noop", nil, "g OK NOOP completed")
	c.login()
	c.expectReply("h", "LOGIN alice s3cret-pw", nil, "h BAD LOGIN not allowed in authenticated state")
	c.expectReply("i", "XFETCHLIKE", nil, "i BAD XFETCHLIKE not allowed in authenticated state")
	c.expectReply("j", "NAMESPACE", []string{`* NAMESPACE (("" "/")) NIL NIL`}, "j OK NAMESPACE completed")
	c.expectReply("k", "ENABLE FOO", []string{"* ENABLED"}, "k OK ENABLE completed")
	c.expectReply("l", `ID ("name" "test" "version" NIL)`, []string{`* ID ("name" "Decimail" "version" "dev")`}, "l OK ID completed")
}

// The core polls after every command in the selected state, before the
// tagged reply, without EXPUNGE for FETCH/STORE/SEARCH (rfc3501.txt:4053).
func TestPollHook(t *testing.T) {
	c := dialTCP(t, newWireServer(t, Config{}, nil))
	c.login()
	c.expectReply("a", "XSEL", []string{"* OK poll true"}, "a OK [READ-WRITE] XSEL completed")
	c.expectReply("b", "NOOP", []string{"* OK poll true"}, "b OK NOOP completed")
	c.expectReply("c", "XFETCHLIKE", []string{"* OK poll true"}, "c OK XFETCHLIKE completed")
	c.expectReply("d", "LOGOUT", []string{"* BYE Decimail logging out", "* OK unselected"}, "d OK LOGOUT completed")
	for name, want := range map[string]bool{"FETCH": true, "STORE": true, "SEARCH": true, "UID FETCH": false, "UID STORE": false, "UID SEARCH": false, "NOOP": false} {
		if noExpunge[name] != want {
			t.Errorf("noExpunge[%s] = %v", name, !want)
		}
	}
}

func TestLogin(t *testing.T) {
	c := dialTCP(t, newWireServer(t, Config{}, nil))
	c.expectReply("a", "LOGIN alice wrong", nil, "a NO [AUTHENTICATIONFAILED] Invalid credentials")
	c.expectReply("b", "LOGIN alice", nil, "b BAD syntax error: LOGIN takes a user name and a password")
	c.send("c LOGIN {5}\r\n")
	if l := c.line(); l != "+ Ready for literal data" {
		t.Fatalf("continuation: %q", l)
	}
	c.send("alice {9+}\r\ns3cret-pw\r\n")
	_, tg := c.until("c")
	if !strings.HasPrefix(tg, "c OK [CAPABILITY IMAP4rev1 ") || strings.Contains(tg, "AUTH=") || strings.Contains(tg, "STARTTLS") {
		t.Fatalf("login: %q", tg)
	}
}

func TestTooManyAuthFailures(t *testing.T) {
	c := dialTCP(t, newWireServer(t, Config{}, nil))
	for range maxAuthFailures - 1 {
		c.expectReply("a", "LOGIN alice x", nil, "a NO [AUTHENTICATIONFAILED] Invalid credentials")
	}
	c.send("b LOGIN alice x\r\n")
	if l := c.line(); l != "* BYE Too many failed authentication attempts" {
		t.Fatalf("got %q", l)
	}
	c.expectEOF()
}

func plainIR(authz, user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte(authz + "\x00" + user + "\x00" + pass))
}

func TestAuthenticatePlain(t *testing.T) {
	s := newWireServer(t, Config{}, nil)
	ok := func(tg, tag string) {
		t.Helper()
		if !strings.HasPrefix(tg, tag+" OK [CAPABILITY IMAP4rev1 ") {
			t.Fatalf("got %q", tg)
		}
	}
	// SASL-IR (rfc4959).
	c := dialTCP(t, s)
	_, tg := c.do("a", "AUTHENTICATE PLAIN "+plainIR("", "alice", "s3cret-pw"))
	ok(tg, "a")

	// Continuation; authzid equal to authcid is fine.
	c = dialTCP(t, s)
	c.send("a AUTHENTICATE plain\r\n")
	if l := c.line(); l != "+ " {
		t.Fatalf("continuation %q", l)
	}
	c.send(plainIR("alice", "alice", "s3cret-pw") + "\r\n")
	_, tg = c.until("a")
	ok(tg, "a")

	c = dialTCP(t, s)
	c.send("a AUTHENTICATE PLAIN\r\n")
	c.line()
	c.send("*\r\n")
	if _, tg := c.until("a"); tg != "a BAD AUTHENTICATE cancelled" {
		t.Errorf("cancel: %q", tg)
	}
	c.expectReply("b", "AUTHENTICATE PLAIN "+plainIR("bob", "alice", "s3cret-pw"), nil,
		"b NO [AUTHORIZATIONFAILED] authorization identity must equal the user name")
	c.expectReply("c", "AUTHENTICATE PLAIN !!!", nil, "c BAD invalid base64")
	c.expectReply("d", "AUTHENTICATE PLAIN =", nil, "d BAD malformed PLAIN response")
	c.expectReply("e", "AUTHENTICATE CRAM-MD5", nil, "e NO unsupported authentication mechanism")
	c.expectReply("f", "AUTHENTICATE PLAIN "+plainIR("", "alice", "nope"), nil, "f NO [AUTHENTICATIONFAILED] Invalid credentials")
}

// Without TLS a non-loopback peer may not send a password (rfc3501.txt:1704).
func TestPrivacyRequired(t *testing.T) {
	c := dialPipe(t, newWireServer(t, Config{}, nil))
	u, _ := c.do("a", "CAPABILITY")
	if !strings.Contains(u[0], " LOGINDISABLED") || strings.Contains(u[0], "AUTH=PLAIN") {
		t.Errorf("capabilities %q", u)
	}
	c.expectReply("b", "LOGIN alice s3cret-pw", nil, "b NO [PRIVACYREQUIRED] LOGIN is disabled without TLS; use STARTTLS")
	c.expectReply("c", "AUTHENTICATE PLAIN "+plainIR("", "alice", "s3cret-pw"), nil, "c NO [PRIVACYREQUIRED] PLAIN is disabled without TLS; use STARTTLS")

	c = dialPipe(t, newWireServer(t, Config{AllowPlaintext: true}, nil))
	c.login()
}

func TestPipelining(t *testing.T) {
	c := dialTCP(t, newWireServer(t, Config{}, nil))
	c.send("a NOOP\r\nb LOGIN alice s3cret-pw\r\nc NAMESPACE\r\nd FOO\r\ne LOGOUT\r\n")
	var got []string
	for range 7 {
		got = append(got, c.line())
	}
	want := []string{"a OK NOOP completed", "b OK [CAPABILITY", `* NAMESPACE (("" "/")) NIL NIL`, "c OK NAMESPACE completed",
		"d BAD unknown command FOO", "* BYE Decimail logging out", "e OK LOGOUT completed"}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("line %d: got %q, want %q", i, got[i], want[i])
		}
	}
	c.expectEOF()
}

func TestLiteralLimits(t *testing.T) {
	c := dialTCP(t, newWireServer(t, Config{MaxLiteral: 10, MaxAppendLiteral: 100}, nil))
	// Before login even APPEND is held to MaxLiteral; no "+" is sent.
	c.expectReply("a", "APPEND INBOX {11}", nil, "a BAD [TOOBIG] literal too big")
	c.login()
	c.expectReply("b", "APPEND INBOX {101}", nil, "b NO [TOOBIG] message too big")
	c.expectReply("c", "LOGIN {11+}\r\n01234567890 x", nil, "c BAD [TOOBIG] literal too big")
	c.send("d APPEND INBOX {1000+}\r\n")
	if l := c.line(); l != "* BYE [TOOBIG] literal too big" {
		t.Fatalf("got %q", l)
	}
	c.expectEOF()
}

func TestLogout(t *testing.T) {
	c := dialTCP(t, newWireServer(t, Config{}, nil))
	c.expectReply("a", "LOGOUT", []string{"* BYE Decimail logging out"}, "a OK LOGOUT completed")
	c.expectEOF()
}

func TestAutologout(t *testing.T) {
	c := dialTCP(t, newWireServer(t, Config{PreAuthTimeout: 100 * time.Millisecond}, nil))
	if l := c.line(); l != "* BYE Autologout; idle for too long" {
		t.Fatalf("got %q", l)
	}
	c.expectEOF()
}

func TestShutdown(t *testing.T) {
	s := newWireServer(t, Config{}, nil)
	c := dialTCP(t, s)
	c.login()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- s.Shutdown(ctx) }()
	if l := c.line(); l != "* BYE [UNAVAILABLE] Server shutting down" {
		t.Fatalf("got %q", l)
	}
	c.expectEOF()
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
	c.do("a", "LOGIN alice s3cret-pw")
	c.do("b", `LOGOUT`)
	c = dialTCP(t, s)
	c.do("a", `LOGIN "alice" {9+}`+"\r\ns3cret-pw")
	c = dialTCP(t, s)
	c.do("a", "AUTHENTICATE PLAIN "+ir)
	c = dialTCP(t, s)
	c.send("a AUTHENTICATE PLAIN\r\n")
	c.line()
	c.send(ir + "\r\n")
	c.until("a")
	c.do("b", "NOOP")
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
// LOGIN after; data pipelined behind STARTTLS is discarded (rfc3501.txt:1479).
func TestStartTLS(t *testing.T) {
	s := newWireServer(t, Config{TLS: selfSignedTLS(t)}, nil)
	c := dialPipe(t, s)
	u, _ := c.do("a", "CAPABILITY")
	if !strings.Contains(u[0], " STARTTLS") || !strings.Contains(u[0], " LOGINDISABLED") {
		t.Fatalf("before STARTTLS: %q", u)
	}
	c.send("b STARTTLS\r\n")
	if _, tg := c.until("b"); tg != "b OK Begin TLS negotiation now" {
		t.Fatalf("STARTTLS: %q", tg)
	}
	tc := tls.Client(c.nc, &tls.Config{InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	c.nc, c.br = tc, bufio.NewReader(tc)
	u, _ = c.do("c", "CAPABILITY")
	if strings.Contains(u[0], "STARTTLS") || strings.Contains(u[0], "LOGINDISABLED") || !strings.Contains(u[0], "AUTH=PLAIN") {
		t.Fatalf("after STARTTLS: %q", u)
	}
	c.expectReply("d", "STARTTLS", nil, "d BAD unknown command STARTTLS")
	c.login()
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
	u, _ := c.do("a", "CAPABILITY")
	if strings.Contains(u[0], "STARTTLS") {
		t.Errorf("STARTTLS offered on implicit TLS: %q", u)
	}
	c.login()
}
