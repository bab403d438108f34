package smtpd_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"golang.org/x/crypto/bcrypt"

	"decimail/server/pgrun"
	"decimail/server/smtpd"
	"decimail/server/store"
)

func TestMain(m *testing.M) { os.Exit(pgrun.RunTests(m)) }

type env struct {
	st   *store.Store
	u    store.User // "u": u@example.test, catch-all @u.example.test
	srv  *smtpd.Server
	mx   string
	sub  string
	logs *syncBuf
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func openStore(t testing.TB, dsn string) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), dsn, store.Options{SpoolDir: t.TempDir(), PasswordCost: bcrypt.MinCost})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	return st
}

func newEnv(t testing.TB, cfg smtpd.Config) *env {
	t.Helper()
	ctx := context.Background()
	e := &env{st: openStore(t, pgrun.TestDB(t)), logs: &syncBuf{}}
	var err error
	e.u, err = e.st.CreateUser(ctx, "u", "pw")
	must(t, err)
	must(t, e.st.AddAddress(ctx, "u@example.test", "u"))
	must(t, e.st.AddAddress(ctx, "@u.example.test", "u"))
	e.start(t, cfg)
	return e
}

func (e *env) start(t testing.TB, cfg smtpd.Config) {
	if cfg.Hostname == "" {
		cfg.Hostname = "mx.example.test"
	}
	log := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e.srv = smtpd.New(cfg, e.st, log)
	e.mx = listen(t, e.srv.ServeMX)
	e.sub = listen(t, e.srv.ServeSubmission)
	t.Cleanup(func() { e.srv.Close() })
}

func listen(t testing.TB, serve func(net.Listener) error) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	go serve(ln)
	return ln.Addr().String()
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func dial(t testing.TB, addr string) *smtp.Client {
	t.Helper()
	c, err := smtp.Dial(addr)
	must(t, err)
	t.Cleanup(func() { c.Close() })
	must(t, c.Hello("client.example.org"))
	return c
}

// send runs one transaction and returns the first error.
func send(c *smtp.Client, from string, to []string, msg string) error {
	if err := c.Mail(from, nil); err != nil {
		return err
	}
	for _, r := range to {
		if err := c.Rcpt(r, nil); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write([]byte(msg)); err != nil {
		return err
	}
	return w.Close()
}

func code(err error) int {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return se.Code
	}
	return 0
}

func wantCode(t testing.TB, err error, want int) {
	t.Helper()
	if code(err) != want {
		t.Fatalf("got %v, want code %d", err, want)
	}
}

func testMsg(subject string) string {
	return "From: Alice <alice@remote.example>\r\nTo: u@example.test\r\nSubject: " + subject +
		"\r\nMessage-ID: <" + subject + "@remote.example>\r\nDate: Mon, 2 Nov 2026 10:00:00 +0100\r\n\r\nHello.\r\n"
}

// outMsg is a message u submits.
func outMsg(subject string) string {
	return strings.Replace(testMsg(subject), "From: Alice <alice@remote.example>", "From: U <u@example.test>", 1)
}

// messages returns the raw header+body of every message in a mailbox.
func messages(t testing.TB, st *store.Store, u store.User, mailbox string) []string {
	t.Helper()
	ctx := context.Background()
	snap, err := st.Select(ctx, u.ID, mailbox, true)
	must(t, err)
	var out []string
	must(t, st.Fetch(ctx, snap.Mailbox.Box(), snap.UIDs, store.FetchCols{Header: true, Body: true}, func(r *store.FetchRow) error {
		out = append(out, string(r.Header)+string(r.Body))
		return nil
	}))
	return out
}

func TestInboundDelivery(t *testing.T) {
	t.Parallel()
	e := newEnv(t, smtpd.Config{})
	v, err := e.st.CreateUser(context.Background(), "v", "pw")
	must(t, err)
	must(t, e.st.AddAddress(context.Background(), "v@example.test", "v"))
	c := dial(t, e.mx)
	must(t, send(c, "alice@remote.example", []string{"u@example.test", "v@example.test"}, testMsg("hi")))
	for _, x := range []struct {
		u    store.User
		rcpt string
	}{{e.u, "u@example.test"}, {v, "v@example.test"}} {
		inbox := messages(t, e.st, x.u, "INBOX")
		if len(inbox) != 1 {
			t.Fatalf("%s: INBOX has %d messages, want 1", x.rcpt, len(inbox))
		}
		m := inbox[0]
		if !strings.HasPrefix(m, "Delivered-To: "+x.rcpt+"\r\nReceived: from client.example.org ([127.0.0.1])\r\n\tby mx.example.test") ||
			!strings.Contains(m, "for <"+x.rcpt+">;") || !strings.HasSuffix(m, testMsg("hi")) {
			t.Errorf("message to %s:\n%s", x.rcpt, m)
		}
		if all := messages(t, e.st, x.u, "All Mail"); len(all) != 1 {
			t.Errorf("%s: All Mail has %d messages", x.rcpt, len(all))
		}
	}
}

func TestInboundBareLFConverted(t *testing.T) {
	t.Parallel()
	e := newEnv(t, smtpd.Config{})
	c := dial(t, e.mx)
	must(t, send(c, "alice@remote.example", []string{"u@example.test"}, "Subject: lf\nFrom: a@b.example\n\nline1\nline2\n"))
	m := messages(t, e.st, e.u, "INBOX")[0]
	if strings.Contains(strings.ReplaceAll(m, "\r\n", ""), "\n") || !strings.HasSuffix(m, "\r\n\r\nline1\r\nline2\r\n") {
		t.Fatalf("bare LF kept: %q", m)
	}
}

func TestInboundRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t, smtpd.Config{MaxMessageBytes: 1000})
	c := dial(t, e.mx)
	// RFC 5321 §3.3: unknown mailbox in a local domain.
	must(t, c.Mail("alice@remote.example", nil))
	wantCode(t, c.Rcpt("nobody@example.test", nil), 550)
	must(t, c.Reset())
	// RFC 1870 §6.3: too large.
	err := send(c, "alice@remote.example", []string{"u@example.test"}, testMsg("big")+strings.Repeat("xxxxxxxxx\r\n", 200))
	wantCode(t, err, 552)
	c = dial(t, e.mx)
	err = send(c, "alice@remote.example", []string{"u@example.test"}, testMsg("long")[:100]+strings.Repeat("x", 2100)+"\r\n")
	wantCode(t, err, 554)
	if n := len(messages(t, e.st, e.u, "INBOX")); n != 0 {
		t.Fatalf("%d messages stored", n)
	}
	// Loopback is trusted: a remote recipient is queued.
	c2 := dial(t, e.mx)
	must(t, send(c2, "alice@remote.example", []string{"bob@elsewhere.example"}, testMsg("relay")))
	q, err := e.st.OutboundQueue(context.Background())
	must(t, err)
	if len(q) != 1 || q[0].RcptTo[0] != "bob@elsewhere.example" {
		t.Fatalf("queue: %+v", q)
	}
}

// TestNoOpenRelay: with no trusted network, an unauthenticated client may only
// reach local recipients (DESIGN "Security").
func TestNoOpenRelay(t *testing.T) {
	t.Parallel()
	e := newEnv(t, smtpd.Config{TrustedNets: []netip.Prefix{}})
	c := dial(t, e.mx)
	must(t, c.Mail("alice@remote.example", nil))
	err := c.Rcpt("bob@elsewhere.example", nil)
	wantCode(t, err, 550)
	if se := err.(*smtp.SMTPError); se.EnhancedCode != (smtp.EnhancedCode{5, 7, 1}) {
		t.Fatalf("enhanced code %v", se.EnhancedCode)
	}
	must(t, c.Rcpt("u@example.test", nil)) // local still fine
	q, _ := e.st.OutboundQueue(context.Background())
	if len(q) != 0 {
		t.Fatal("queued")
	}
}

func TestDatabaseFailureAnswers451(t *testing.T) {
	t.Parallel()
	e := newEnv(t, smtpd.Config{})
	ctx := context.Background()
	c := dial(t, e.mx)
	must(t, c.Mail("alice@remote.example", nil))
	must(t, c.Rcpt("u@example.test", nil))
	// Make the delivery transaction fail inside Postgres.
	_, err := e.st.Pool().Exec(ctx, `CREATE FUNCTION fail() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'disk on fire'; END $$;
		CREATE TRIGGER fail BEFORE INSERT ON messages FOR EACH ROW EXECUTE FUNCTION fail()`)
	must(t, err)
	w, err := c.Data()
	must(t, err)
	w.Write([]byte(testMsg("lost")))
	wantCode(t, w.Close(), 451)
	_, err = e.st.Pool().Exec(ctx, `DROP TRIGGER fail ON messages`)
	must(t, err)
	if n := len(messages(t, e.st, e.u, "INBOX")); n != 0 {
		t.Fatalf("%d messages stored", n)
	}
	// The client retries: 250 means committed.
	must(t, send(c, "alice@remote.example", []string{"u@example.test"}, testMsg("kept")))
	if n := len(messages(t, e.st, e.u, "INBOX")); n != 1 {
		t.Fatalf("%d messages stored", n)
	}
}

func TestConnectionsPerIP(t *testing.T) {
	t.Parallel()
	e := newEnv(t, smtpd.Config{MaxConnsPerIP: 2})
	dial(t, e.mx)
	dial(t, e.mx)
	c, err := smtp.Dial(e.mx)
	must(t, err)
	defer c.Close()
	err = c.Hello("client.example.org")
	wantCode(t, err, 421)
	if se := err.(*smtp.SMTPError); se.EnhancedCode != (smtp.EnhancedCode{4, 7, 0}) {
		t.Fatalf("enhanced code %v", se.EnhancedCode)
	}
}

func TestSubmissionAuth(t *testing.T) {
	t.Parallel()
	e := newEnv(t, smtpd.Config{LogConversation: true})
	c := dial(t, e.sub)
	wantCode(t, c.Mail("u@example.test", nil), 530)
	wantCode(t, c.Auth(sasl.NewPlainClient("", "u", "wrong-secret")), 535)
	must(t, c.Auth(sasl.NewPlainClient("", "u", "pw")))
	wantCode(t, c.Mail("someone@else.example", nil), 553)
	must(t, c.Reset())
	must(t, send(c, "u@example.test", []string{"bob@elsewhere.example", "u@example.test"}, outMsg("out")))
	q, err := e.st.OutboundQueue(context.Background())
	must(t, err)
	if len(q) != 1 || q[0].MailFrom != "u@example.test" || q[0].UserID != e.u.ID {
		t.Fatalf("queue: %+v", q)
	}
	if n := len(messages(t, e.st, e.u, "INBOX")); n != 1 {
		t.Fatalf("INBOX %d", n)
	}
	sent := messages(t, e.st, e.u, "Sent")
	if len(sent) != 1 || strings.Contains(sent[0], "Delivered-To") {
		t.Fatalf("Sent: %q", sent)
	}
	snap, err := e.st.Select(context.Background(), e.u.ID, "Sent", true)
	must(t, err)
	if len(snap.Unseen) != 0 {
		t.Fatal("Sent copy not \\Seen")
	}
	// AUTH LOGIN.
	c2 := dial(t, e.sub)
	must(t, c2.Auth(&loginClient{user: "u", pass: "pw"}))
	c.Quit()
	c2.Quit()
	e.srv.Close()
	logs := e.logs.String()
	for _, secret := range []string{"wrong-secret", b64("\x00u\x00wrong-secret"), b64("pw"), b64("\x00u\x00pw")} {
		if strings.Contains(logs, secret) {
			t.Errorf("log contains %q:\n%s", secret, logs)
		}
	}
	if !strings.Contains(logs, "C: AUTH PLAIN [redacted]") || !strings.Contains(logs, "session=") {
		t.Errorf("conversation not logged:\n%s", logs)
	}
}

type loginClient struct {
	user, pass string
	step       int
}

func (l *loginClient) Start() (string, []byte, error) { return "LOGIN", nil, nil }
func (l *loginClient) Next(ch []byte) ([]byte, error) {
	l.step++
	if l.step == 1 {
		return []byte(l.user), nil
	}
	return []byte(l.pass), nil
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

var _ = fmt.Sprint
