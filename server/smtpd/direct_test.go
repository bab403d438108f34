package smtpd_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-smtp"

	"decimail/server/smtpd"
)

// fakeDNS answers MX lookups from a table: a missing domain is "no such
// host" (then the implicit MX, the domain itself, is tried).
type fakeDNS map[string][]*net.MX

func (d fakeDNS) LookupMX(_ context.Context, name string) ([]*net.MX, error) {
	if mx, ok := d[name]; ok {
		return mx, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

// exchanger is a recipient domain's mail server on 127.0.0.1, with STARTTLS
// (a self-signed certificate) when tlsOn.
type exchanger struct {
	*smartHost
	port   int
	mu     sync.Mutex
	tlsHit bool
}

func newExchanger(t *testing.T, tlsOn bool) *exchanger {
	h := &smartHost{}
	x := &exchanger{smartHost: h}
	s := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		if _, ok := c.TLSConnectionState(); ok {
			x.mu.Lock()
			x.tlsHit = true
			x.mu.Unlock()
		}
		return &hostSession{h: h}, nil
	}))
	s.Domain = "mx.remote.test"
	s.ErrorLog = nopLog{}
	s.AllowInsecureAuth = true
	if tlsOn {
		s.TLSConfig = &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	x.port = ln.Addr().(*net.TCPAddr).Port
	go s.Serve(ln)
	t.Cleanup(func() { s.Close() })
	return x
}

func selfSigned(t *testing.T) tls.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	tpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mx.remote.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{"mx.remote.test"}}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	must(t, err)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func directRelay(e *env, port int, dns fakeDNS, clk *clock) *smtpd.Relay {
	on := true
	return smtpd.NewRelay(e.st, smtpd.RelayConfig{Hostname: "mx.example.test", Now: clk.Now, RetryBase: time.Minute,
		GiveUp: time.Hour, Timeout: 5 * time.Second, Direct: &on, DirectPort: port, Resolver: dns}, nil)
}

// Without a smart host the relay delivers to each recipient domain's mail
// exchangers (RFC 5321 §5.1): MX records in preference order, the next one
// when one cannot be reached, STARTTLS when offered (unverified,
// opportunistic), one session per domain for its recipients; a domain
// with a null MX (RFC 7505) bounces at once; one that cannot be reached
// stays queued. Outgoing mail of a domain with a DKIM key is signed, and the
// signature verifies against the DNS record `decimail dkim generate`
// prints.
func TestDirectDeliveryAndDKIM(t *testing.T) {
	e := newEnv(t, smtpd.Config{RelayDirect: true})
	ctx := context.Background()
	key, err := e.st.GenerateDKIMKey(ctx, "Example.Test", "dm1")
	must(t, err)
	record, err := key.DNSRecord()
	must(t, err)
	x := newExchanger(t, true)
	dns := fakeDNS{
		// A first exchanger that refuses connections (nothing listens on
		// 127.0.0.2's port), then ours.
		"remote.example": {{Host: "127.0.0.1.", Pref: 20}, {Host: "127.0.0.2.", Pref: 5}},
		"null.example":   {{Host: ".", Pref: 0}},
	}
	submit(t, e, "u@example.test", []string{"bob@remote.example", "carol@remote.example", "dan@null.example", "eve@unreachable.invalid"}, outMsg("direct"))
	if strings.Contains(e.logs.String(), "will bounce") {
		t.Errorf("a bounce was announced at submission though direct delivery is on:\n%s", e.logs.String())
	}
	r := directRelay(e, x.port, dns, &clock{t: time.Now().Add(time.Second)})
	if n := runOnce(t, r); n != 1 {
		t.Fatalf("relay handled %d messages", n)
	}
	got := x.received()
	if len(got) != 1 || strings.Join(got[0].to, ",") != "bob@remote.example,carol@remote.example" || got[0].from != "u@example.test" {
		t.Fatalf("the exchanger received %+v, want one message for bob and carol", got)
	}
	x.mu.Lock()
	usedTLS := x.tlsHit
	x.mu.Unlock()
	if !usedTLS {
		t.Error("STARTTLS was offered but not used")
	}
	if !strings.Contains(got[0].data, "DKIM-Signature:") || !strings.Contains(got[0].data, "d=example.test") || !strings.Contains(got[0].data, "s=dm1") {
		t.Fatalf("not signed:\n%.600s", got[0].data)
	}
	vs, err := dkim.VerifyWithOptions(strings.NewReader(got[0].data), &dkim.VerifyOptions{LookupTXT: func(name string) ([]string, error) {
		if name != key.DNSName() {
			t.Errorf("TXT lookup of %q, want %q", name, key.DNSName())
		}
		return []string{record}, nil
	}})
	must(t, err)
	if len(vs) != 1 || vs[0].Err != nil || vs[0].Domain != "example.test" {
		t.Fatalf("verification: %+v", vs)
	}
	// The null MX bounced; the unreachable domain waits.
	inbox := messages(t, e.st, e.u, "INBOX")
	if len(inbox) != 1 || !strings.Contains(inbox[0], "Status: 5.1.10") || !strings.Contains(inbox[0], "dan@null.example") ||
		strings.Contains(inbox[0], "carol@remote.example") {
		t.Fatalf("INBOX: %d messages, want the bounce for dan only:\n%v", len(inbox), inbox)
	}
	q := queue(t, e.st)
	if len(q) != 1 || strings.Join(q[0].RcptTo, ",") != "eve@unreachable.invalid" {
		t.Fatalf("queue: %+v, want eve's recipient waiting", q)
	}
}

// A message from a domain without a DKIM key goes out unchanged, and an
// exchanger without STARTTLS gets it in the clear.
func TestDirectDeliveryPlain(t *testing.T) {
	e := newEnv(t, smtpd.Config{RelayDirect: true})
	x := newExchanger(t, false)
	submit(t, e, "u@example.test", []string{"bob@remote.example"}, outMsg("plain"))
	r := directRelay(e, x.port, fakeDNS{"remote.example": {{Host: "127.0.0.1", Pref: 10}}}, &clock{t: time.Now().Add(time.Second)})
	runOnce(t, r)
	got := x.received()
	if len(got) != 1 {
		t.Fatalf("received %+v", got)
	}
	if strings.Contains(got[0].data, "DKIM-Signature") {
		t.Error("signed without a key")
	}
	if !bytes.Contains([]byte(got[0].data), []byte("Subject: plain")) {
		t.Errorf("data: %.300s", got[0].data)
	}
	if q := queue(t, e.st); len(q) != 0 {
		t.Fatalf("still queued: %+v", q)
	}
}
