package smtpd_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"decimail/server/smtpd"
	"decimail/server/store"
)

// smartHost is an in-process go-smtp server standing in for the relay host.
type smartHost struct {
	addr string
	mu   sync.Mutex
	// rcptErr / dataErr decide the replies (nil: 250); n counts DATA commands.
	rcptErr func(rcpt string) error
	dataErr func(n int) error
	n       int
	got     []hostMsg
	// sessions counts connections, ended the sessions that ended.
	sessions, ended int
}

type hostMsg struct {
	from string
	to   []string
	data string
}

func newSmartHost(t testing.TB, opts ...func(*smtp.Server)) *smartHost {
	h := &smartHost{}
	s := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		h.mu.Lock()
		h.sessions++
		h.mu.Unlock()
		return &hostSession{h: h}, nil
	}))
	s.Domain = "smarthost.test"
	s.ErrorLog = nopLog{}
	for _, o := range opts {
		o(s)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	h.addr = ln.Addr().String()
	go s.Serve(ln)
	t.Cleanup(func() { s.Close() })
	return h
}

type nopLog struct{}

func (nopLog) Printf(string, ...any) {}
func (nopLog) Println(...any)        {}

type hostSession struct {
	h    *smartHost
	from string
	to   []string
}

func (s *hostSession) Reset() { s.from, s.to = "", nil }
func (s *hostSession) Logout() error {
	s.h.mu.Lock()
	s.h.ended++
	s.h.mu.Unlock()
	return nil
}
func (s *hostSession) Mail(from string, _ *smtp.MailOptions) error {
	s.from = from
	return nil
}
func (s *hostSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.h.mu.Lock()
	defer s.h.mu.Unlock()
	if s.h.rcptErr != nil {
		if err := s.h.rcptErr(to); err != nil {
			return err
		}
	}
	s.to = append(s.to, to)
	return nil
}
func (s *hostSession) Data(r io.Reader) error {
	b, _ := io.ReadAll(r)
	s.h.mu.Lock()
	defer s.h.mu.Unlock()
	s.h.n++
	if s.h.dataErr != nil {
		if err := s.h.dataErr(s.h.n); err != nil {
			return err
		}
	}
	s.h.got = append(s.h.got, hostMsg{s.from, s.to, string(b)})
	return nil
}

func (h *smartHost) received() []hostMsg {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]hostMsg{}, h.got...)
}

// clock is an injectable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// newRelay: without a host, no direct delivery either (direct_test.go
// tests that), so queued mail bounces.
func newRelay(e *env, host string, clk *clock) *smtpd.Relay {
	off := false
	return smtpd.NewRelay(e.st, smtpd.RelayConfig{Host: host, Hostname: "mx.example.test", Now: clk.Now,
		RetryBase: time.Minute, GiveUp: time.Hour, Timeout: 5 * time.Second, Direct: &off}, nil)
}

func runOnce(t testing.TB, r *smtpd.Relay) int {
	t.Helper()
	n, err := r.RunOnce(context.Background())
	must(t, err)
	return n
}

func queue(t testing.TB, st *store.Store) []store.OutboundMessage {
	t.Helper()
	q, err := st.OutboundQueue(context.Background())
	must(t, err)
	return q
}

// submit sends msg through the submission listener as user u.
func submit(t testing.TB, e *env, from string, to []string, msg string) {
	t.Helper()
	c := dial(t, e.sub)
	must(t, c.Auth(sasl.NewPlainClient("", "u", "pw")))
	must(t, send(c, from, to, msg))
	c.Quit()
}

func TestRelayRetryThenSend(t *testing.T) {
	t.Parallel()
	e := newEnv(t, smtpd.Config{})
	h := newSmartHost(t)
	h.dataErr = func(n int) error {
		if n == 1 {
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try later"}
		}
		return nil
	}
	clk := &clock{t: time.Now().Add(time.Second)}
	r := newRelay(e, h.addr, clk)
	submit(t, e, "u@example.test", []string{"bob@elsewhere.example"}, outMsg("retry"))
	if n := runOnce(t, r); n != 1 {
		t.Fatalf("handled %d", n)
	}
	q := queue(t, e.st)
	if len(q) != 1 || q[0].Attempts != 1 || !strings.Contains(q[0].LastError, "451") {
		t.Fatalf("queue after 451: %+v", q)
	}
	if runOnce(t, r) != 0 { // not due yet: backoff
		t.Fatal("retried before next_attempt")
	}
	clk.Add(2 * time.Minute)
	runOnce(t, r)
	if q := queue(t, e.st); len(q) != 0 {
		t.Fatalf("still queued: %+v", q)
	}
	got := h.received()
	if len(got) != 1 || got[0].from != "u@example.test" || got[0].to[0] != "bob@elsewhere.example" ||
		!strings.Contains(got[0].data, "Subject: retry") {
		t.Fatalf("smart host got %+v", got)
	}
}

func TestRelayBouncesOn550(t *testing.T) {
	t.Parallel()
	e := newEnv(t, smtpd.Config{})
	h := newSmartHost(t)
	h.rcptErr = func(rcpt string) error {
		if strings.HasPrefix(rcpt, "gone@") {
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
		}
		return nil
	}
	r := newRelay(e, h.addr, &clock{t: time.Now().Add(time.Second)})
	submit(t, e, "u@example.test", []string{"gone@elsewhere.example", "bob@elsewhere.example"}, outMsg("bounce"))
	runOnce(t, r)
	if q := queue(t, e.st); len(q) != 0 {
		t.Fatalf("still queued: %+v", q)
	}
	if got := h.received(); len(got) != 1 || len(got[0].to) != 1 || got[0].to[0] != "bob@elsewhere.example" {
		t.Fatalf("smart host got %+v", got)
	}
	inbox := messages(t, e.st, e.u, "INBOX")
	if len(inbox) != 1 || !strings.Contains(inbox[0], "Final-Recipient: rfc822; gone@elsewhere.example") ||
		!strings.Contains(inbox[0], "Status: 5.1.1") || !strings.Contains(inbox[0], "In-Reply-To: <bounce@remote.example>") ||
		strings.Contains(inbox[0], "bob@elsewhere.example\r\nAction") {
		t.Fatalf("bounce: %q", inbox)
	}
}

func TestRelayGivesUp(t *testing.T) {
	t.Parallel()
	e := newEnv(t, smtpd.Config{})
	h := newSmartHost(t)
	h.dataErr = func(int) error {
		return &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 2, 2}, Message: "mailbox full"}
	}
	clk := &clock{t: time.Now().Add(time.Second)}
	r := newRelay(e, h.addr, clk)
	submit(t, e, "u@example.test", []string{"bob@elsewhere.example"}, outMsg("giveup"))
	runOnce(t, r)
	if len(queue(t, e.st)) != 1 || len(messages(t, e.st, e.u, "INBOX")) != 0 {
		t.Fatal("4xx must defer, not bounce")
	}
	clk.Add(2 * time.Hour) // past GiveUp
	runOnce(t, r)
	if q := queue(t, e.st); len(q) != 0 {
		t.Fatalf("still queued: %+v", q)
	}
	inbox := messages(t, e.st, e.u, "INBOX")
	if len(inbox) != 1 || !strings.Contains(inbox[0], "gave up after 1h0m0s") || !strings.Contains(inbox[0], "452") {
		t.Fatalf("bounce: %q", inbox)
	}
}

func TestRelayHostDown(t *testing.T) {
	t.Parallel()
	e := newEnv(t, smtpd.Config{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	addr := ln.Addr().String()
	ln.Close() // connection refused from now on
	clk := &clock{t: time.Now().Add(time.Second)}
	r := newRelay(e, addr, clk)
	submit(t, e, "u@example.test", []string{"bob@elsewhere.example"}, outMsg("down"))
	runOnce(t, r)
	q := queue(t, e.st)
	if len(q) != 1 || q[0].Attempts != 1 || !q[0].NextAttempt.After(clk.Now()) || !strings.Contains(q[0].LastError, "refused") {
		t.Fatalf("queue: %+v", q)
	}
	// Exponential backoff: the second failure waits twice as long.
	clk.Add(time.Minute)
	runOnce(t, r)
	q2 := queue(t, e.st)
	if wait := q2[0].NextAttempt.Sub(clk.Now()); q2[0].Attempts != 2 || wait < 2*time.Minute-time.Millisecond || wait > 2*time.Minute {
		t.Fatalf("backoff: attempts %d, wait %v", q2[0].Attempts, wait)
	}
}

// TestRelayRunWakesOnNotify: a message queued while the relay worker waits
// is sent because of the NOTIFY at commit (store.OutboundChannel). The
// worker reports when it waits with LISTEN in place and the catch-up after
// LISTEN done, and PollInterval is an hour: nothing else can start the
// pass that sends it.
func TestRelayRunWakesOnNotify(t *testing.T) {
	t.Parallel()
	e := newEnv(t, smtpd.Config{})
	h := newSmartHost(t)
	r := smtpd.NewRelay(e.st, smtpd.RelayConfig{Host: h.addr, PollInterval: time.Hour}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	idle := make(chan bool)
	r.OnIdle(func(listened bool) {
		select {
		case idle <- listened:
		case <-ctx.Done():
		}
	})
	done := make(chan error)
	go func() { done <- r.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitIdle := func(what string) bool {
		t.Helper()
		select {
		case listened := <-idle:
			return listened
		case <-time.After(10 * time.Second):
			t.Fatalf("relay worker: %s", what)
			return false
		}
	}
	for !waitIdle("never waited with LISTEN in place") {
	}
	submit(t, e, "u@example.test", []string{"bob@elsewhere.example"}, outMsg("wake"))
	waitIdle("no pass within 10 s of queueing a message: the NOTIFY did not wake it")
	if got := h.received(); len(got) != 1 || !strings.Contains(got[0].data, "Subject: wake") {
		t.Fatalf("smart host got %+v after the pass the NOTIFY started", got)
	}
}

func TestRewriteCases(t *testing.T) {
	t.Parallel()
	e := newEnv(t, smtpd.Config{})
	ctx := context.Background()
	must(t, e.st.AddAutoUser(ctx, "auto@u.example.test", "u", "%s@u.example.test"))
	must(t, e.st.SetExplicitAddr(ctx, "auto@u.example.test", "carol@elsewhere.example", "for-carol@u.example.test"))
	// A message dave sent to a per-correspondent address of u.
	c := dial(t, e.mx)
	must(t, send(c, "dave@elsewhere.example", []string{"dave-only@u.example.test"},
		"From: dave@elsewhere.example\r\nTo: dave-only@u.example.test\r\nMessage-ID: <orig@dave>\r\nSubject: q\r\n\r\nhi\r\n"))

	out := func(to, extra string) string {
		return "From: U Ser <auto@u.example.test>\r\nTo: " + to + "\r\nSubject: s\r\nMessage-ID: <" + token() + "@u>\r\n" + extra + "\r\nbody\r\n"
	}
	h := newSmartHost(t)
	r := newRelay(e, h.addr, &clock{t: time.Now().Add(time.Second)})
	// Reply: the address the original was delivered to.
	submit(t, e, "auto@u.example.test", []string{"dave@elsewhere.example"}, out("dave@elsewhere.example", "In-Reply-To: <orig@dave>\r\nReferences: <orig@dave>\r\n"))
	// Custom (explicit) address.
	submit(t, e, "auto@u.example.test", []string{"carol@elsewhere.example"}, out("Carol <carol@elsewhere.example>", ""))
	// Random, twice: the same address both times.
	submit(t, e, "auto@u.example.test", []string{"erin@elsewhere.example"}, out("erin@elsewhere.example", ""))
	submit(t, e, "auto@u.example.test", []string{"erin@elsewhere.example"}, out("erin@elsewhere.example", ""))
	for runOnce(t, r) > 0 {
	}
	got := h.received()
	if len(got) != 4 {
		t.Fatalf("smart host got %d messages", len(got))
	}
	byTo := map[string][]hostMsg{}
	for _, m := range got {
		byTo[m.to[0]] = append(byTo[m.to[0]], m)
	}
	check := func(to, from string) {
		t.Helper()
		for _, m := range byTo[to] {
			if m.from != from || !strings.Contains(m.data, "\r\nFrom: \"U Ser\" <"+from+">\r\n") {
				t.Errorf("to %s: MAIL FROM %s, data:\n%s", to, m.from, m.data)
			}
		}
	}
	check("dave@elsewhere.example", "dave-only@u.example.test")
	check("carol@elsewhere.example", "for-carol@u.example.test")
	random := byTo["erin@elsewhere.example"][0].from
	if len(random) != len("12345678@u.example.test") || random == "auto@u.example.test" {
		t.Fatalf("random address %q", random)
	}
	check("erin@elsewhere.example", random)
	// A reply to the random address reaches u (TestAutoAddressesDeliverable
	// shows it without the catch-all).
	if u, err := e.st.LookupAddress(ctx, random); err != nil || u.ID != e.u.ID {
		t.Fatalf("random address not deliverable: %v", err)
	}
	// The Sent copies carry the rewritten From.
	for _, m := range messages(t, e.st, e.u, "Sent") {
		if strings.Contains(m, "auto@u.example.test") {
			t.Errorf("Sent copy not rewritten:\n%s", m)
		}
	}
}

var tokens struct {
	sync.Mutex
	n int
}

func token() string {
	tokens.Lock()
	defer tokens.Unlock()
	tokens.n++
	return strings.Repeat("x", tokens.n)
}

func TestDeleteDaemon(t *testing.T) {
	t.Parallel()
	e := newEnv(t, smtpd.Config{})
	ctx := context.Background()
	c := dial(t, e.mx)
	must(t, send(c, "alice@remote.example", []string{"u@example.test"}, testMsg("del")))
	var path string
	must(t, e.st.Pool().QueryRow(ctx, `SELECT spool_path FROM messages`).Scan(&path))
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
	snap, err := e.st.Select(ctx, e.u.ID, "INBOX", false)
	must(t, err)
	_, err = e.st.StoreFlags(ctx, snap.Mailbox.Box(), snap.UIDs, store.FlagsAdd, store.Flags{Deleted: true})
	must(t, err)
	_, err = e.st.Expunge(ctx, snap.Mailbox.Box(), nil)
	must(t, err)

	clk := &clock{t: time.Now().Add(time.Second)}
	d := smtpd.NewDeleteDaemon(e.st, smtpd.DeleteConfig{Retention: time.Hour, Now: clk.Now}, nil)
	n, err := d.RunOnce(ctx)
	must(t, err)
	if _, serr := os.Stat(path); n != 0 || serr != nil {
		t.Fatalf("removed within retention (n=%d)", n)
	}
	clk.Add(2 * time.Hour)
	n, err = d.RunOnce(ctx)
	must(t, err)
	if _, serr := os.Stat(path); n != 1 || !errors.Is(serr, os.ErrNotExist) {
		t.Fatalf("n=%d stat=%v", n, serr)
	}
	var done int
	must(t, e.st.Pool().QueryRow(ctx, `SELECT count(*) FROM delete_log WHERE done_at IS NOT NULL`).Scan(&done))
	if done != 1 {
		t.Fatalf("done rows %d", done)
	}
	// Idempotent: nothing left; a re-opened row with a missing file is fine.
	if n, err = d.RunOnce(ctx); err != nil || n != 0 {
		t.Fatalf("second run: %d %v", n, err)
	}
	_, err = e.st.Pool().Exec(ctx, `UPDATE delete_log SET done_at = NULL`)
	must(t, err)
	if n, err = d.RunOnce(ctx); err != nil || n != 1 {
		t.Fatalf("missing file: %d %v", n, err)
	}
}

// oneDelivered is an environment whose INBOX holds one message received
// over SMTP, and a snapshot of it.
func oneDelivered(t *testing.T, subject string) (*env, *store.Snapshot) {
	e := newEnv(t, smtpd.Config{})
	c := dial(t, e.mx)
	must(t, send(c, "alice@remote.example", []string{"u@example.test"}, testMsg(subject)))
	snap, err := e.st.Select(context.Background(), e.u.ID, "INBOX", false)
	must(t, err)
	return e, snap
}

// The delete daemon prunes tombstones older than expunge_horizon and
// raises the mailbox's expunges_pruned (store.Vanished then answers from
// the membership); a negative horizon keeps them.
func TestDeleteDaemonExpungeHorizon(t *testing.T) {
	t.Parallel()
	e, snap := oneDelivered(t, "gone")
	ctx := context.Background()
	_, err := e.st.StoreFlags(ctx, snap.Mailbox.Box(), snap.UIDs, store.FlagsAdd, store.Flags{Deleted: true})
	must(t, err)
	_, err = e.st.Expunge(ctx, snap.Mailbox.Box(), nil)
	must(t, err)
	count := func() (tombs int, pruned int64) {
		must(t, e.st.Pool().QueryRow(ctx, `SELECT (SELECT count(*) FROM mailbox_expunges WHERE mailbox_id = $1),
			(SELECT expunges_pruned FROM mailboxes WHERE id = $1)`, snap.Mailbox.ID).Scan(&tombs, &pruned))
		return
	}
	clk := &clock{t: time.Now().Add(time.Second)}
	for _, h := range []time.Duration{-1, time.Hour} {
		_, err := smtpd.NewDeleteDaemon(e.st, smtpd.DeleteConfig{ExpungeHorizon: h, Now: clk.Now}, nil).RunOnce(ctx)
		must(t, err)
		if n, p := count(); n != 1 || p != 0 {
			t.Fatalf("horizon %v, 1 s later: %d tombstones, expunges_pruned %d; want 1, 0", h, n, p)
		}
	}
	clk.Add(2 * time.Hour)
	_, err = smtpd.NewDeleteDaemon(e.st, smtpd.DeleteConfig{ExpungeHorizon: time.Hour, Now: clk.Now}, nil).RunOnce(ctx)
	must(t, err)
	if n, p := count(); n != 0 || p == 0 {
		t.Fatalf("past the horizon: %d tombstones, expunges_pruned %d; want 0, the tombstone's modseq", n, p)
	}
	vs, err := e.st.Vanished(ctx, snap.Mailbox.Box(), 1)
	must(t, err)
	if len(vs) != 1 || vs[0] != (store.UIDRange{Lo: 1, Hi: 1}) {
		t.Fatalf("Vanished past the horizon: %v, want [1:1]", vs)
	}
}

// The delete daemon prunes the log of flag changes (schema 0030) with the
// tombstones, in batches, until none is left past the horizon, even when no
// tombstone is due (its loop ran again only while tombstones filled a batch).
func TestDeleteDaemonPrunesFlagLog(t *testing.T) {
	t.Parallel()
	e, snap := oneDelivered(t, "kept")
	ctx := context.Background()
	var err error
	for _, f := range []store.Flags{{Seen: true}, {Flagged: true}, {Answered: true}} {
		_, err = e.st.StoreFlags(ctx, snap.Mailbox.Box(), snap.UIDs, store.FlagsAdd, f)
		must(t, err)
	}
	count := func() (rows int, pruned int64) {
		must(t, e.st.Pool().QueryRow(ctx, `SELECT (SELECT count(*) FROM flag_changes WHERE user_id = $1),
			(SELECT flag_changes_pruned FROM users WHERE id = $1)`, e.u.ID).Scan(&rows, &pruned))
		return
	}
	if n, _ := count(); n != 3 {
		t.Fatalf("%d rows of the flag log after 3 changes, want 3", n)
	}
	clk := &clock{t: time.Now().Add(2 * time.Hour)}
	d := smtpd.NewDeleteDaemon(e.st, smtpd.DeleteConfig{ExpungeHorizon: time.Hour, Batch: 1, Sweep: time.Minute, Now: clk.Now}, nil)
	_, err = d.RunOnce(ctx)
	must(t, err)
	if n, p := count(); n != 0 || p == 0 {
		t.Fatalf("past the horizon, batches of 1: %d rows of the flag log left, flag_changes_pruned %d; want 0 and the last change's modseq", n, p)
	}
	// Pruning is due once per sweep, not at every wake (each removal).
	_, err = e.st.StoreFlags(ctx, snap.Mailbox.Box(), snap.UIDs, store.FlagsDel, store.Flags{Answered: true})
	must(t, err)
	_, err = d.RunOnce(ctx)
	must(t, err)
	if n, _ := count(); n != 1 {
		t.Fatalf("woken again within the sweep: %d rows of the flag log, want the 1 left for the next sweep", n)
	}
	clk.Add(time.Minute)
	_, err = d.RunOnce(ctx)
	must(t, err)
	if n, _ := count(); n != 0 {
		t.Fatalf("a sweep later: %d rows of the flag log, want 0", n)
	}
	// A poll from before the pruning still sees the flags (by a scan).
	ch, err := e.st.ChangesSinceFresh(ctx, snap.Mailbox.Box(), snap.ModSeq)
	must(t, err)
	if len(ch.Changed) != 1 || !ch.Changed[0].Flags.Seen || !ch.Changed[0].Flags.Flagged || ch.Changed[0].Flags.Answered {
		t.Fatalf("changes since the snapshot after pruning: %+v, want the message seen and flagged", ch.Changed)
	}
}

// TestRelayHoldsNoTransaction pins finding 6: the relay held a transaction
// (and the queue row's lock) open across its whole SMTP session with the
// smart host. It now leases the row, commits, talks SMTP, and records the
// result in a second short statement: while the smart host reads the
// message, no transaction of ours is open.
func TestRelayHoldsNoTransaction(t *testing.T) {
	t.Parallel()
	e := newEnv(t, smtpd.Config{})
	h := newSmartHost(t)
	var open []string
	h.dataErr = func(int) error {
		rows, err := e.st.Pool().Query(context.Background(), `SELECT state || ': ' || query FROM pg_stat_activity
			WHERE datname = current_database() AND state LIKE 'idle in transaction%'`)
		if err != nil {
			open = append(open, err.Error())
			return nil
		}
		for rows.Next() {
			var s string
			rows.Scan(&s)
			open = append(open, s)
		}
		rows.Close()
		return nil
	}
	submit(t, e, "u@example.test", []string{"bob@elsewhere.example"}, outMsg("lease"))
	r := newRelay(e, h.addr, &clock{t: time.Now().Add(time.Second)})
	if n := runOnce(t, r); n != 1 {
		t.Fatalf("sent %d", n)
	}
	if len(open) != 0 {
		t.Fatalf("open during the SMTP session: %q", open)
	}
	if q := queue(t, e.st); len(q) != 0 || len(h.received()) != 1 {
		t.Fatalf("queue %d, smart host got %d", len(q), len(h.received()))
	}
}

// TestRelayDeadWorkersLeaseExpires: a message claimed by a worker that
// died is left alone until its lease ends, then sent.
func TestRelayDeadWorkersLeaseExpires(t *testing.T) {
	t.Parallel()
	e := newEnv(t, smtpd.Config{})
	h := newSmartHost(t)
	clk := &clock{t: time.Now().Add(time.Second)}
	submit(t, e, "u@example.test", []string{"bob@elsewhere.example"}, outMsg("dead"))
	if m, err := e.st.ClaimOutbound(context.Background(), clk.Now(), 30*time.Minute); err != nil || m == nil {
		t.Fatalf("claim: %v %v", m, err)
	} // ... and the worker dies.
	r := newRelay(e, h.addr, clk)
	if n := runOnce(t, r); n != 0 {
		t.Fatalf("sent a message leased to another worker")
	}
	clk.Add(31 * time.Minute)
	if n := runOnce(t, r); n != 1 || len(h.received()) != 1 {
		t.Fatalf("after the lease: sent %d", n)
	}
}

// TestRelayNoHostBounces (issue 18): with no smart host configured
// (smtp_relay_host empty) and direct delivery off, a message for a remote recipient cannot leave:
// the submission logs a warning saying it will bounce, and the relay
// bounces it at once (status 5.4.4, no route) instead of keeping it
// queued forever. With a relay host configured there is no warning.
func TestRelayNoHostBounces(t *testing.T) {
	t.Parallel()
	e := newEnv(t, smtpd.Config{})
	submit(t, e, "u@example.test", []string{"bob@elsewhere.example"}, outMsg("nohost"))
	if !strings.Contains(e.logs.String(), "no relay host (smtp_relay_host) is configured") {
		t.Errorf("no warning at submission:\n%s", e.logs.String())
	}
	r := newRelay(e, "", &clock{t: time.Now().Add(time.Second)})
	if n := runOnce(t, r); n != 1 {
		t.Fatalf("relay handled %d messages, want 1", n)
	}
	if q := queue(t, e.st); len(q) != 0 {
		t.Fatalf("still queued: %+v", q)
	}
	inbox := messages(t, e.st, e.u, "INBOX")
	if len(inbox) != 1 {
		t.Fatalf("INBOX holds %d messages, want the bounce", len(inbox))
	}
	for _, want := range []string{"Subject: Undelivered Mail Returned to Sender", "multipart/report; report-type=delivery-status",
		"<bob@elsewhere.example>: no relay host is configured (smtp_relay_host) and direct delivery (smtp_relay_direct) is off", "Final-Recipient: rfc822; bob@elsewhere.example",
		"Action: failed", "Status: 5.4.4", "Content-Type: text/rfc822-headers", "Subject: nohost", "In-Reply-To: <nohost@remote.example>"} {
		if !strings.Contains(inbox[0], want) {
			t.Errorf("bounce lacks %q:\n%s", want, inbox[0])
		}
	}
	if strings.Contains(inbox[0], "Remote-MTA") || strings.Contains(inbox[0], "Diagnostic-Code") {
		t.Errorf("bounce names a remote MTA that was never asked:\n%s", inbox[0])
	}

	e2 := newEnv(t, smtpd.Config{RelayHost: "smarthost.example:25"})
	submit(t, e2, "u@example.test", []string{"bob@elsewhere.example"}, outMsg("withhost"))
	if strings.Contains(e2.logs.String(), "no relay host") {
		t.Errorf("warning with a relay host configured:\n%s", e2.logs.String())
	}
}

// TestAutoAddressesDeliverable (issue 18): the addresses auto@ hands out
// are addresses of the user, in a domain with no catch-all: a reply sent
// over SMTP to the address made at submission time for a correspondent
// reaches the user's INBOX, as does mail to an explicit per-correspondent
// address and to the auto address itself; any other local part of that
// domain is still refused (550 5.1.1), and so is a made address another
// user already has.
func TestAutoAddressesDeliverable(t *testing.T) {
	t.Parallel()
	e := newEnv(t, smtpd.Config{})
	ctx := context.Background()
	must(t, e.st.AddAutoUser(ctx, "auto@auto.example.test", "u", "%s@auto.example.test"))
	must(t, e.st.SetExplicitAddr(ctx, "auto@auto.example.test", "carol@elsewhere.example", "for-carol@auto.example.test"))
	h := newSmartHost(t)
	r := newRelay(e, h.addr, &clock{t: time.Now().Add(time.Second)})
	submit(t, e, "auto@auto.example.test", []string{"erin@elsewhere.example"},
		"From: U <auto@auto.example.test>\r\nTo: erin@elsewhere.example\r\nSubject: hello erin\r\nMessage-ID: <to-erin@u>\r\n\r\nhi\r\n")
	runOnce(t, r)
	got := h.received()
	if len(got) != 1 || !strings.HasSuffix(got[0].from, "@auto.example.test") || got[0].from == "auto@auto.example.test" {
		t.Fatalf("smart host got %+v", got)
	}
	made := got[0].from

	// erin replies, over SMTP, to the address she got.
	for _, to := range []string{made, "for-carol@auto.example.test", "auto@auto.example.test"} {
		c := dial(t, e.mx)
		must(t, send(c, "erin@elsewhere.example", []string{to},
			"From: erin@elsewhere.example\r\nTo: "+to+"\r\nSubject: re: "+to+"\r\nIn-Reply-To: <to-erin@u>\r\n\r\nthanks\r\n"))
		c.Quit()
	}
	inbox := messages(t, e.st, e.u, "INBOX")
	if len(inbox) != 3 {
		t.Fatalf("INBOX holds %d messages, want the 3 replies", len(inbox))
	}
	for i, to := range []string{made, "for-carol@auto.example.test", "auto@auto.example.test"} {
		if !strings.Contains(inbox[i], "Delivered-To: "+to+"\r\n") || !strings.Contains(inbox[i], "Subject: re: "+to) {
			t.Errorf("INBOX message %d is not the reply to %s:\n%s", i+1, to, inbox[i])
		}
	}
	// No catch-all: other local parts of the domain are unknown.
	c := dial(t, e.mx)
	wantCode(t, send(c, "erin@elsewhere.example", []string{"guess@auto.example.test"}, testMsg("guess")), 550)

	// A made address never takes another user's address.
	_, err := e.st.CreateUser(ctx, "v", "pw")
	must(t, err)
	must(t, e.st.AddAddress(ctx, "v@auto.example.test", "v"))
	if _, err := e.st.RecordRandomAddr(ctx, "auto@auto.example.test", "frank@elsewhere.example", "v@auto.example.test"); !errors.Is(err, store.ErrAddressTaken) {
		t.Errorf("recorded another user's address for u: %v", err)
	}
	if u, err := e.st.LookupAddress(ctx, "v@auto.example.test"); err != nil || u.Name != "v" {
		t.Errorf("v@auto.example.test now goes to %v (%v)", u.Name, err)
	}
	if a, err := e.st.CorrespondentAddr(ctx, "auto@auto.example.test", "frank@elsewhere.example"); err != nil || a != "" {
		t.Errorf("frank got %q (%v) after the refused address", a, err)
	}
}

// counts returns how many sessions the host has had and how many ended.
func (h *smartHost) counts() (sessions, ended int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.sessions, h.ended
}

// waitEnded waits until n sessions have ended, or fails with why.
func (h *smartHost) waitEnded(t *testing.T, n int, why string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, ended := h.counts(); ended == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(why)
		}
	}
}

// TestRelayReusesConnection: messages to one smart host go over one
// session (RSET between them), which ends after KeepIdle; the next
// message opens a new one.
func TestRelayReusesConnection(t *testing.T) {
	t.Parallel()
	e := newEnv(t, smtpd.Config{})
	h := newSmartHost(t)
	off := false
	r := smtpd.NewRelay(e.st, smtpd.RelayConfig{Host: h.addr, Hostname: "mx.example.test", Timeout: 5 * time.Second,
		Direct: &off, Workers: 1, KeepIdle: 500 * time.Millisecond}, nil)
	for i := range 3 {
		submit(t, e, "u@example.test", []string{fmt.Sprintf("bob%d@elsewhere.example", i)}, outMsg(fmt.Sprintf("reuse %d", i)))
	}
	if n := runOnce(t, r); n != 3 {
		t.Fatalf("handled %d, want 3", n)
	}
	if got := h.received(); len(got) != 3 {
		t.Fatalf("smart host got %d messages, want 3", len(got))
	}
	if s, ended := h.counts(); s != 1 || ended != 0 {
		t.Fatalf("%d sessions (%d ended) for 3 messages, want 1 still open", s, ended)
	}
	h.waitEnded(t, 1, "the idle session was not ended after KeepIdle")
	submit(t, e, "u@example.test", []string{"carol@elsewhere.example"}, outMsg("after idle"))
	if n := runOnce(t, r); n != 1 {
		t.Fatalf("handled %d, want 1", n)
	}
	if s, _ := h.counts(); s != 2 || len(h.received()) != 4 {
		t.Fatalf("%d sessions, %d messages; want 2 and 4", s, len(h.received()))
	}
}

// TestRelayReuseAfterHostClosed: a kept session the host has closed
// meanwhile (its idle timeout) fails the RSET; the message goes over a
// new session, nothing is deferred.
func TestRelayReuseAfterHostClosed(t *testing.T) {
	t.Parallel()
	e := newEnv(t, smtpd.Config{})
	h := newSmartHost(t, func(s *smtp.Server) { s.ReadTimeout = 200 * time.Millisecond })
	off := false
	r := smtpd.NewRelay(e.st, smtpd.RelayConfig{Host: h.addr, Hostname: "mx.example.test", Timeout: 5 * time.Second,
		Direct: &off, Workers: 1}, nil)
	submit(t, e, "u@example.test", []string{"bob@elsewhere.example"}, outMsg("first"))
	runOnce(t, r)
	h.waitEnded(t, 1, "the host did not close the idle session")
	submit(t, e, "u@example.test", []string{"carol@elsewhere.example"}, outMsg("second"))
	runOnce(t, r)
	if q := queue(t, e.st); len(q) != 0 {
		t.Fatalf("deferred: %+v", q)
	}
	if s, _ := h.counts(); s != 2 || len(h.received()) != 2 {
		t.Fatalf("%d sessions, %d messages; want 2 and 2", s, len(h.received()))
	}
}
