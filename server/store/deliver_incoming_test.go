package store_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"decimail/server/pgrun"
	"decimail/server/store"
)

// Issue 13: deliveries from a spooled message, in one transaction.

// rowJSON is everything a delivery stored about a message, except what
// differs by owner and id.
func rowJSON(t testing.TB, s *store.Store, id int64) string {
	t.Helper()
	var j string
	err := s.Pool().QueryRow(context.Background(), `SELECT row_to_json(x)::text FROM (
		SELECT m.size, m.header, m.body, m.envelope, m.bodystructure, m.body_simple, m.sent_date, m.sent_day, m.subject,
			m.from_addr, m.to_addr, m.cc_addr, m.bcc_addr, m.reply_to, m.from_key, m.message_id, m.in_reply_to, m.refs,
			m.broken, m.delivered_to, t.header_text, t.body_text, f.size AS flags_size, f.seen
		FROM messages m JOIN message_texts t ON t.message_id = m.id JOIN message_flags f ON f.message_id = m.id
		WHERE m.id = $1) x`, id).Scan(&j)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func newUser(t testing.TB, s *store.Store, name string) store.User {
	t.Helper()
	u, err := s.CreateUser(context.Background(), name, "pw")
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestDeliverIncomingCopiesAsIfWhole: a message parsed once and stored as
// several copies, each with its own prefix (the first by COPY, the others
// made by Postgres from it), stores exactly what delivering each
// prefix+message whole stores.
func TestDeliverIncomingCopiesAsIfWhole(t *testing.T) {
	t.Parallel()
	s, a := newStore(t)
	b, c, d := newUser(t, s, "b"), newUser(t, s, "c"), newUser(t, s, "d")
	ctx := context.Background()
	files, _ := filepath.Glob("../../fixtures/transcripts/seed/*.eml")
	if len(files) < 10 {
		t.Fatalf("seed corpus: %d files", len(files))
	}
	var raws [][]byte
	for _, f := range files[:10] {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		raws = append(raws, raw)
	}
	raws = append(raws, []byte(""), []byte("\r\nbody only\r\n"), []byte("Subject: no body\r\n"),
		[]byte(" folded first\r\nSubject: x\r\n\r\nb\r\n"), []byte("From x\nSubject: lf\n\nbare\n"),
		[]byte("Subject: =?utf-8?q?caf=C3=A9?=\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\none\r\n--b--\r\n"))
	p1 := []byte("Delivered-To: a@example.test\r\nReceived: from x\r\n\tby y; Mon, 2 Nov 2026 10:00:00 +0100\r\n")
	p2 := []byte("Delivered-To: b@example.test\r\n")
	for i, raw := range raws {
		at := time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)
		r, err := s.DeliverIncoming(ctx, store.IncomingBytes(raw), store.Delivery{Copies: []store.Copy{
			{UserID: a.ID, Prefix: p1, DeliverOptions: store.DeliverOptions{DeliveredTo: "x", InternalDate: at}},
			{UserID: b.ID, Prefix: p2, DeliverOptions: store.DeliverOptions{DeliveredTo: "x", InternalDate: at}},
			{UserID: b.ID, DeliverOptions: store.DeliverOptions{Mailbox: "Sent", Flags: store.Flags{Seen: true}, InternalDate: at}},
		}})
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		whole := func(u store.User, prefix []byte, o store.DeliverOptions) int64 {
			o.InternalDate = at
			return deliver(t, s, u, append(append([]byte{}, prefix...), raw...), o).MessageID
		}
		for j, want := range []int64{
			whole(c, p1, store.DeliverOptions{DeliveredTo: "x"}),
			whole(d, p2, store.DeliverOptions{DeliveredTo: "x"}),
			whole(d, nil, store.DeliverOptions{Mailbox: "Sent", Flags: store.Flags{Seen: true}}),
		} {
			if got, want := rowJSON(t, s, r.Copies[j].MessageID), rowJSON(t, s, want); got != want {
				t.Errorf("message %d copy %d:\n got %s\nwant %s", i, j, got, want)
			}
		}
	}
}

// TestDeliverIncomingAtomic pins finding 5: copies for several users, a
// Sent copy and the queued copy commit together or not at all, so a retry
// after a failure stores each exactly once.
func TestDeliverIncomingAtomic(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	spool := t.TempDir()
	s, err := store.Open(ctx, pgrun.TestDB(t), store.Options{SpoolDir: spool, PasswordCost: bcrypt.MinCost})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	a, b := newUser(t, s, "a"), newUser(t, s, "b")
	count := func(q string, args ...any) int {
		t.Helper()
		var n int
		if err := s.Pool().QueryRow(ctx, q, args...).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// The second user's copy fails inside Postgres.
	_, err = s.Pool().Exec(ctx, `CREATE FUNCTION fail() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'disk on fire'; END $$;
		CREATE TRIGGER fail BEFORE INSERT ON messages FOR EACH ROW WHEN (NEW.user_id = `+strconv.FormatInt(b.ID, 10)+`)
		EXECUTE FUNCTION fail()`)
	if err != nil {
		t.Fatal(err)
	}
	in, err := s.NewIncoming()
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	in.Write(msg("atomic", strings.Repeat("x", 100<<10)))
	d := store.Delivery{
		Copies: []store.Copy{{UserID: a.ID, Prefix: []byte("Delivered-To: a@example.test\r\n")},
			{UserID: b.ID, Prefix: []byte("Delivered-To: b@example.test\r\n")},
			{UserID: a.ID, DeliverOptions: store.DeliverOptions{Mailbox: "Sent"}}},
		Queue: &store.Outbound{UserID: a.ID, From: "a@example.test", Rcpts: []string{"r@remote.example"}, Prefix: []byte("Received: x\r\n")},
	}
	if _, err := s.DeliverIncoming(ctx, in, d); err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("delivery with a failing copy: %v", err)
	}
	if n := count(`SELECT count(*) FROM messages`); n != 0 {
		t.Fatalf("%d messages committed by a failed delivery", n)
	}
	if n := count(`SELECT count(*) FROM outbound_queue`); n != 0 {
		t.Fatalf("%d queue rows committed by a failed delivery", n)
	}
	spooled, _ := filepath.Glob(filepath.Join(spool, "*", "*.eml"))
	if len(spooled) != 0 {
		t.Fatalf("spool files left by a failed delivery: %v", spooled)
	}
	if _, err := s.Pool().Exec(ctx, `DROP TRIGGER fail ON messages`); err != nil {
		t.Fatal(err)
	}
	r, err := s.DeliverIncoming(ctx, in, d)
	if err != nil {
		t.Fatal(err)
	}
	if n := count(`SELECT count(*) FROM messages WHERE user_id = $1`, a.ID); n != 2 {
		t.Errorf("user a has %d messages, want INBOX + Sent", n)
	}
	if n := count(`SELECT count(*) FROM messages WHERE user_id = $1`, b.ID); n != 1 {
		t.Errorf("user b has %d messages", n)
	}
	q, err := s.OutboundQueue(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := "Received: x\r\n" + string(msg("atomic", strings.Repeat("x", 100<<10)))
	if len(q) != 1 || q[0].ID != r.QueueID || string(q[0].Data) != want {
		t.Fatalf("queue: %d rows (id %d), data ok %v", len(q), r.QueueID, len(q) == 1 && string(q[0].Data) == want)
	}
	for _, c := range r.Copies {
		var path string
		if err := s.Pool().QueryRow(ctx, `SELECT spool_path FROM messages WHERE id = $1`, c.MessageID).Scan(&path); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(path); err != nil {
			t.Errorf("spool file: %v", err)
		}
	}
}

// TestDeliverPrepareNoNestedAcquire pins finding 6: a delivery's first
// round trip never takes a second pool connection (it did, inside a batch
// callback, when the target mailbox did not exist: with every other
// connection in use it waited for itself).
func TestDeliverPrepareNoNestedAcquire(t *testing.T) {
	t.Parallel()
	s, u := newStore(t)
	ctx := context.Background()
	pool := s.Pool()
	// Hold every connection but one.
	for pool.Stat().AcquiredConns() < pool.Config().MaxConns-1 {
		c, err := pool.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Release()
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err := s.Deliver(ctx, u.ID, msg("x", "y"), store.DeliverOptions{Mailbox: "No such folder"})
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("delivery to a missing folder with one free connection: %v, want ErrNotFound", err)
	}
}

func TestIncomingSplice(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	in, err := s.NewIncoming()
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	in.Write([]byte("Subject: a\r\nFrom: x\r\n\r\nbody"))
	in.Splice(12, []byte("Subject: longer\r\n"))
	in.Splice(0, []byte("Received: r\r\n"))
	want := "Received: r\r\nSubject: longer\r\nFrom: x\r\n\r\nbody"
	if b, err := in.Bytes(); err != nil || string(b) != want || in.Size() != int64(len(want)) {
		t.Fatalf("got %q (size %d), %v; want %q", b, in.Size(), err, want)
	}
	if p, _ := in.Prefix(5); string(p) != "Recei" {
		t.Fatalf("prefix %q", p)
	}
	in.Splice(30, []byte("From: y\r\n"))
	if b, _ := in.Bytes(); string(b) != "From: y\r\nFrom: x\r\n\r\nbody" {
		t.Fatalf("got %q", b)
	}
}
