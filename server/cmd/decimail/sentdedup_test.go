package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"golang.org/x/crypto/bcrypt"

	"decimail/internal/imaptest"
	"decimail/server/imapd"
	"decimail/server/pgrun"
	"decimail/server/smtpd"
	"decimail/server/store"
)

// TestSentCopyNotStoredTwice (issue 14 item 10): a message sent through
// submission is filed in Sent by the server; the client's APPEND of its
// own copy to Sent right after (Thunderbird does that) gets the filed
// copy's UID in APPENDUID, stores nothing, and another session on Sent
// sees no EXISTS. The daemons are wired as serve wires them
// (imapConfig, smtpd.LoadConfig), over real sockets.
func TestSentCopyNotStoredTwice(t *testing.T) {
	ctx := context.Background()
	s, err := store.Open(ctx, pgrun.TestDB(t), store.Options{PasswordCost: bcrypt.MinCost})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.CreateUser(ctx, "alice", "pw"); err != nil {
		t.Fatal(err)
	}
	if err := s.AddAddress(ctx, "alice@example.test", "alice"); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	icfg, err := imapConfig(ctx, s, "mx.test", nil)
	if err != nil {
		t.Fatal(err)
	}
	if icfg.SentDedupWindow != 0 {
		t.Fatalf("imapd_sent_dedup_window unset: SentDedupWindow %v, want the default (0 here)", icfg.SentDedupWindow)
	}
	// The setting (README, Settings): a duration, negative is off.
	for v, want := range map[string]time.Duration{"2m": 2 * time.Minute, "-1s": -time.Second, "soon": 0, "0": 0} {
		if err := s.SetConfig(ctx, "imapd_sent_dedup_window", v); err != nil {
			t.Fatal(err)
		}
		cfg, err := imapConfig(ctx, s, "mx.test", nil)
		if (err != nil) != (want == 0) || cfg.SentDedupWindow != want {
			t.Errorf("imapd_sent_dedup_window %q: %v, %v; want %v", v, cfg.SentDedupWindow, err, want)
		}
	}
	if err := s.SetConfig(ctx, "imapd_sent_dedup_window", "10m"); err != nil {
		t.Fatal(err)
	}
	isrv := imapd.New(icfg, s, log)
	iln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go isrv.Serve(iln)
	defer isrv.Close()
	scfg, err := smtpd.LoadConfig(ctx, s, smtpd.Config{Hostname: "mx.test"})
	if err != nil {
		t.Fatal(err)
	}
	ssrv := smtpd.New(scfg, s, log)
	sln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go ssrv.ServeSubmission(sln)
	defer ssrv.Close()

	login := func() *imaptest.Client {
		t.Helper()
		c, err := imaptest.Dial(iln.Addr().String()) // reads the greeting
		if err == nil {
			err = c.Login("alice", "pw")
		}
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	cmd := func(c *imaptest.Client, command string) ([]*imaptest.Resp, *imaptest.Resp) {
		t.Helper()
		u, done, err := c.Command(command)
		if err != nil {
			t.Fatalf("%.40s: %v", command, err)
		}
		return u, done
	}
	// Another session has Sent selected.
	watcher := login()
	cmd(watcher, "SELECT Sent")

	// The submission, as a client sends it (no Bcc: field on the wire).
	msg := "From: Alice <alice@example.test>\r\nTo: bob@remote.example\r\nSubject: report\r\n" +
		"Message-ID: <report-1@example.test>\r\nDate: Mon, 2 Nov 2026 10:00:00 +0100\r\n\r\nthe report\r\n"
	sc, err := smtp.Dial(sln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if err := sc.Auth(sasl.NewPlainClient("", "alice", "pw")); err != nil {
		t.Fatal(err)
	}
	if err := sc.SendMail("alice@example.test", []string{"bob@remote.example"}, strings.NewReader(msg)); err != nil {
		t.Fatal(err)
	}
	sc.Quit()
	untagged, _ := cmd(watcher, "NOOP")
	if len(untagged) != 2 || untagged[0].String() != "* 1 EXISTS" {
		t.Fatalf("watcher after the submission: %v, want * 1 EXISTS and * 1 RECENT", untagged)
	}
	untagged, _ = cmd(watcher, "UID SEARCH ALL")
	filedUID := untagged[0].Data[len(untagged[0].Data)-1].S

	// The client's own copy, with its Bcc: field, appended \Seen.
	appendSent := func(c *imaptest.Client) string {
		t.Helper()
		own := "Bcc: carol@example.test\r\n" + msg
		_, done := cmd(c, fmt.Sprintf("APPEND Sent (\\Seen) {%d}\r\n%s", len(own), own))
		if len(done.Code) != 3 || !strings.EqualFold(done.Code[0].S, "APPENDUID") {
			t.Fatalf("APPEND: %s, want [APPENDUID uidvalidity uid]", done)
		}
		return done.Code[2].S
	}
	client := login()
	if uid := appendSent(client); uid != filedUID {
		t.Fatalf("APPENDUID uid %s, want the filed copy's %s", uid, filedUID)
	}
	untagged, _ = cmd(client, "STATUS Sent (MESSAGES)")
	if len(untagged) != 1 || !strings.Contains(untagged[0].String(), "(MESSAGES 1)") {
		t.Fatalf("STATUS after the APPEND: %v, want MESSAGES 1", untagged)
	}
	if untagged, _ = cmd(watcher, "NOOP"); len(untagged) != 0 {
		t.Fatalf("watcher after the APPEND: %v, want nothing", untagged)
	}
	// Appending it again is deliberate: a second message.
	if uid := appendSent(client); uid == filedUID {
		t.Fatalf("second APPEND answered with the filed copy %s", uid)
	}
	untagged, _ = cmd(watcher, "NOOP")
	if len(untagged) == 0 || untagged[0].String() != "* 2 EXISTS" {
		t.Fatalf("watcher after the second APPEND: %v, want * 2 EXISTS", untagged)
	}
}
