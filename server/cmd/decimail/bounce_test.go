package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"golang.org/x/crypto/bcrypt"

	"decimail/internal/testwait"
	"decimail/server/pgrun"
	"decimail/server/store"
)

// sink is a smart host on 127.0.0.1 that refuses every recipient with 550.
type sink struct{ rcpts chan string }

func (k *sink) NewSession(*smtp.Conn) (smtp.Session, error) { return k, nil }
func (k *sink) Reset()                                      {}
func (k *sink) Logout() error                               { return nil }
func (k *sink) Mail(string, *smtp.MailOptions) error        { return nil }
func (k *sink) Data(r io.Reader) error                      { return nil }
func (k *sink) Rcpt(to string, _ *smtp.RcptOptions) error {
	select {
	case k.rcpts <- to:
	default:
	}
	return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such user here"}
}

// lockedBuf is a log destination for the daemons' goroutines and the test.
type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *lockedBuf) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// TestSubmissionBounces (issue 18): a message submitted to a remote
// recipient that cannot be relayed comes back to the sender as a delivery
// status notification in INBOX, and leaves the queue: with no relay host
// configured (a warning is logged at submission), and with a relay host
// that answers 550. The SMTP side is wired as serve wires it (startSMTP,
// configuration from the database), over real sockets.
func TestSubmissionBounces(t *testing.T) {
	for _, tc := range []struct {
		name, status, why string
		relay             bool
	}{
		{"no relay host, no direct delivery", "Status: 5.4.4", "no relay host is configured (smtp_relay_host)", false},
		{"relay answers 550", "Status: 5.1.1", "550 No such user here", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			st, err := store.Open(ctx, pgrun.TestDB(t), store.Options{PasswordCost: bcrypt.MinCost})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			u, err := st.CreateUser(ctx, "alice", "pw")
			if err == nil {
				err = st.AddAddress(ctx, "alice@example.test", "alice")
			}
			if err != nil {
				t.Fatal(err)
			}
			k := &sink{rcpts: make(chan string, 4)}
			if tc.relay {
				srv := smtp.NewServer(k)
				srv.Domain = "sink.test"
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				go srv.Serve(ln)
				defer srv.Close()
				if err := st.SetConfig(ctx, "smtp_relay_host", ln.Addr().String()); err != nil {
					t.Fatal(err)
				}
			} else if err := st.SetConfig(ctx, "smtp_relay_direct", "false"); err != nil {
				t.Fatal(err)
			}

			logs := &lockedBuf{}
			old := slog.Default()
			slog.SetDefault(slog.New(slog.NewTextHandler(logs, nil)))
			defer slog.SetDefault(old)
			var subm string
			stop, err := startSMTP(ctx, st, listenFlags{submission: "127.0.0.1:0", hostname: "mx.test"}, nil,
				func(addr string, fn func(net.Listener) error, what string) error {
					if addr == "" {
						return nil
					}
					ln, err := net.Listen("tcp", addr)
					if err != nil {
						return err
					}
					subm = ln.Addr().String()
					go fn(ln)
					return nil
				}, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer stop()

			c, err := smtp.Dial(subm)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if err := c.Auth(sasl.NewPlainClient("", "alice", "pw")); err != nil {
				t.Fatal(err)
			}
			msg := "From: Alice <alice@example.test>\r\nTo: bob@remote.example\r\nSubject: lost letter\r\n" +
				"Message-ID: <lost-1@example.test>\r\nDate: Mon, 2 Nov 2026 10:00:00 +0100\r\n\r\nthe letter\r\n"
			if err := c.SendMail("alice@example.test", []string{"bob@remote.example"}, strings.NewReader(msg)); err != nil {
				t.Fatalf("submission: %v", err)
			}
			c.Quit()
			warned := strings.Contains(logs.String(), "no relay host (smtp_relay_host) is configured and direct delivery (smtp_relay_direct) is off: the message to remote recipients will bounce")
			if warned == tc.relay {
				t.Errorf("warning at submission: %v, want %v; log:\n%s", warned, !tc.relay, logs.String())
			}

			var bounce string
			testwait.For(t, 20*time.Second, "the bounce in alice's INBOX and an empty queue", func() (bool, string) {
				inbox := inboxMessages(t, st, u)
				q, err := st.QueueList(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if len(inbox) == 1 {
					bounce = inbox[0]
				}
				return len(inbox) == 1 && len(q) == 0, fmt.Sprintf("INBOX %d messages, queue %d", len(inbox), len(q))
			})
			for _, want := range []string{"From: Mail Delivery System <MAILER-DAEMON@mx.test>", "To: <alice@example.test>",
				"Subject: Undelivered Mail Returned to Sender", "In-Reply-To: <lost-1@example.test>",
				"Content-Type: multipart/report; report-type=delivery-status", "Final-Recipient: rfc822; bob@remote.example",
				"Action: failed", tc.status, tc.why, "Content-Type: text/rfc822-headers", "Subject: lost letter"} {
				if !strings.Contains(bounce, want) {
					t.Errorf("bounce lacks %q:\n%s", want, bounce)
				}
			}
			if strings.Contains(bounce, "the letter") {
				t.Errorf("bounce carries the original body:\n%s", bounce)
			}
			if tc.relay {
				select {
				case r := <-k.rcpts:
					if r != "bob@remote.example" {
						t.Errorf("smart host asked for %q", r)
					}
				default:
					t.Error("the smart host was never asked")
				}
			}
		})
	}
}

// inboxMessages returns header and body of every message in u's INBOX.
func inboxMessages(t *testing.T, st *store.Store, u store.User) []string {
	t.Helper()
	ctx := context.Background()
	snap, err := st.Select(ctx, u.ID, "INBOX", true)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	err = st.Fetch(ctx, snap.Mailbox.Box(), snap.UIDs, store.FetchCols{Header: true, Body: true}, func(r *store.FetchRow) error {
		out = append(out, string(r.Header)+string(r.Body))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
