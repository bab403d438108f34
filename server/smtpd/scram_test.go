package smtpd_test

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/xdg-go/scram"

	"decimail/server/smtpd"
)

// scramSASL is a go-sasl client over the xdg-go/scram client (an
// independent SCRAM implementation); ir sends the client-first-message
// with AUTH (initial response) rather than after an empty 334.
type scramSASL struct {
	mech     string
	conv     *scram.ClientConversation
	ir       bool
	verified bool
}

func newSCRAMSASL(t testing.TB, user, pass string, ir bool) *scramSASL {
	c, err := scram.SHA256.NewClient(user, pass, "")
	must(t, err)
	return &scramSASL{mech: "SCRAM-SHA-256", conv: c.NewConversation(), ir: ir}
}

func (s *scramSASL) Start() (string, []byte, error) {
	if !s.ir {
		return s.mech, nil, nil
	}
	first, err := s.conv.Step("")
	return s.mech, []byte(first), err
}

func (s *scramSASL) Next(challenge []byte) ([]byte, error) {
	if !s.ir && len(challenge) == 0 {
		s.ir = true
		first, err := s.conv.Step("")
		return []byte(first), err
	}
	resp, err := s.conv.Step(string(challenge))
	if err != nil {
		return nil, err
	}
	if s.conv.Done() {
		if !s.conv.Valid() {
			return nil, errors.New("server signature invalid")
		}
		s.verified = true
	}
	return []byte(resp), nil
}

// TestSubmissionAuthSCRAM: submission offers AUTH SCRAM-SHA-256; the
// library's client logs in with and without an initial response, checks
// the server's signature, and may then send as its own address; a wrong
// password and an unknown user get 535 alike.
func TestSubmissionAuthSCRAM(t *testing.T) {
	t.Parallel()
	e := newEnv(t, smtpd.Config{})
	for _, ir := range []bool{true, false} {
		c := dial(t, e.sub)
		if ok, mechs := c.Extension("AUTH"); !ok || !strings.Contains(" "+mechs+" ", " SCRAM-SHA-256 ") ||
			strings.Contains(mechs, "PLUS") {
			t.Fatalf("AUTH %q", mechs)
		}
		a := newSCRAMSASL(t, "u", "pw", ir)
		must(t, c.Auth(a))
		if !a.verified {
			t.Fatal("server signature not received")
		}
		must(t, c.Mail("u@example.test", nil))
		must(t, c.Rcpt("someone@u.example.test", nil))
	}
	c := dial(t, e.sub)
	wantCode(t, c.Auth(newSCRAMSASL(t, "u", "wrong", true)), 535)
	wantCode(t, c.Auth(newSCRAMSASL(t, "nobody", "pw", false)), 535)
	wantCode(t, c.Mail("u@example.test", nil), 530)
}

// TestSubmissionAuthSCRAMWire: the exchange on the wire (RFC 4954 §4):
// "*" cancels (501), bad base64 and a malformed client-first-message are
// 501 5.5.2, the server-final-message comes as a last 334 answered by an
// empty line before 235, and a 100 KB client-first-message is refused by
// the line limit.
func TestSubmissionAuthSCRAMWire(t *testing.T) {
	t.Parallel()
	e := newEnv(t, smtpd.Config{})
	nc, err := net.Dial("tcp", e.sub)
	must(t, err)
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReader(nc)
	expect := func(send, wantPrefix string) string {
		t.Helper()
		if send != "\x00" {
			if _, err := nc.Write([]byte(send + "\r\n")); err != nil {
				t.Fatal(err)
			}
		}
		var l string
		for {
			l, err = br.ReadString('\n')
			if err != nil {
				t.Fatalf("after %.40q: %v", send, err)
			}
			if len(l) < 4 || l[3] != '-' {
				break
			}
		}
		if !strings.HasPrefix(l, wantPrefix) {
			t.Fatalf("after %.40q: %q, want %q", send, l, wantPrefix)
		}
		return strings.TrimSpace(l)
	}
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	expect("\x00", "220 ")
	expect("EHLO c", "250 ")
	expect("AUTH SCRAM-SHA-256", "334 ")
	expect("*", "501 5.0.0")
	expect("AUTH SCRAM-SHA-256 "+b64("n,,n=u,r=0123456789"), "334 ")
	expect("*", "501 5.0.0")
	expect("AUTH SCRAM-SHA-256 !!!", "454 4.7.0 Invalid base64")
	expect("AUTH SCRAM-SHA-256 "+b64("n,,r=abc"), "501 5.5.2 Malformed SCRAM message")
	expect("AUTH SCRAM-SHA-256 =", "501 5.5.2 Malformed SCRAM message")

	cl, _ := scram.SHA256.NewClient("u", "pw", "")
	conv := cl.NewConversation()
	first, _ := conv.Step("")
	l := expect("AUTH SCRAM-SHA-256 "+b64(first), "334 ")
	chal, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(l, "334 "))
	final, _ := conv.Step(string(chal))
	l = expect(b64(final), "334 ")
	sig, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(l, "334 "))
	if _, err := conv.Step(string(sig)); err != nil || !conv.Valid() {
		t.Fatalf("server-final %q: %v", sig, err)
	}
	expect("", "235 2.0.0")
	expect("MAIL FROM:<u@example.test>", "250 ")

	// The line limit (2000) refuses a 100 KB message before SCRAM sees it.
	nc2, err := net.Dial("tcp", e.sub)
	must(t, err)
	defer nc2.Close()
	nc, br = nc2, bufio.NewReader(nc2)
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	expect("\x00", "220 ")
	expect("EHLO c", "250 ")
	huge := b64("n,,n=u,r=" + strings.Repeat("A", 100<<10))
	nc.Write([]byte("AUTH SCRAM-SHA-256 " + huge + "\r\n"))
	l, _ = br.ReadString('\n')
	if !strings.HasPrefix(l, "500 ") {
		t.Fatalf("100 KB AUTH line: %q", l)
	}
	t.Logf("100 KB AUTH line: %q", strings.TrimSpace(l))
}

// TestSubmissionAuthSCRAMLimiter: SCRAM failures count like PLAIN's,
// per connection (the third is 421 and closes) and per address (the
// store's limiter; here 2 free failures, then the right password is
// refused unchecked).
func TestSubmissionAuthSCRAMLimiter(t *testing.T) {
	t.Parallel()
	e := newEnvConfig(t, map[string]string{"auth_addr_free": "4", "auth_delay_base": "1m"})
	c := dial(t, e.sub)
	wantCode(t, c.Auth(newSCRAMSASL(t, "demo", "guess1", true)), 535)
	wantCode(t, c.Auth(newSCRAMSASL(t, "demo", "guess2", false)), 535)
	wantCode(t, c.Auth(newSCRAMSASL(t, "demo", "guess3", true)), 421)
	if err := c.Noop(); err == nil {
		t.Fatal("connection open after 421")
	}
	c = dial(t, e.sub)
	wantCode(t, c.Auth(newSCRAMSASL(t, "demo", "guess4", true)), 535)
	err := c.Auth(newSCRAMSASL(t, "demo", "demo-pw", true))
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 421 || !strings.Contains(se.Message, "Too many failed logins from your address") {
		t.Fatalf("right password after 4 failures: %v", err)
	}
}

// TestSubmissionAuthSCRAMPlus: after STARTTLS, SCRAM-SHA-256-PLUS with
// the tls-exporter binding is offered and works; "y" from a client that
// could bind is a downgrade there (RFC 5802 §6), and another
// connection's binding does not match.
func TestSubmissionAuthSCRAMPlus(t *testing.T) {
	t.Parallel()
	e := newEnv(t, smtpd.Config{TLS: &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}}})
	dialTLS := func() (*smtp.Client, tls.ConnectionState) {
		c, err := smtp.DialStartTLS(e.sub, &tls.Config{InsecureSkipVerify: true})
		must(t, err)
		t.Cleanup(func() { c.Close() })
		must(t, c.Hello("client.example.org"))
		st, ok := c.TLSConnectionState()
		if !ok {
			t.Fatal("no TLS")
		}
		return c, st
	}
	c, st := dialTLS()
	if ok, mechs := c.Extension("AUTH"); !ok || !strings.Contains(mechs, "SCRAM-SHA-256-PLUS") {
		t.Fatalf("AUTH %q", mechs)
	}
	cb, err := scram.NewTLSExporterBinding(&st)
	must(t, err)
	cl, _ := scram.SHA256.NewClient("u", "pw", "")
	must(t, c.Auth(&scramSASL{mech: "SCRAM-SHA-256-PLUS", conv: cl.NewConversationWithChannelBinding(cb), ir: true}))

	c, _ = dialTLS()
	wantCode(t, c.Auth(&scramSASL{mech: "SCRAM-SHA-256", conv: cl.NewConversationAdvertisingChannelBinding(), ir: true}), 535)
	wantCode(t, c.Auth(&scramSASL{mech: "SCRAM-SHA-256-PLUS", conv: cl.NewConversationWithChannelBinding(cb), ir: true}), 535)
	must(t, c.Auth(newSCRAMSASL(t, "u", "pw", false)))
}
