package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"decimail/server/store"
)

// TestOutboundLease pins finding 6: a queued message is claimed with a
// lease in one short statement (no transaction stays open while the relay
// talks SMTP); another claim skips it while the lease holds; a holder
// whose lease ran out and was taken over cannot record a result; an
// expired lease makes the message due again.
func TestOutboundLease(t *testing.T) {
	t.Parallel()
	s, u := newStore(t)
	ctx := context.Background()
	if _, err := s.Enqueue(ctx, u.ID, "u@example.test", []string{"r@remote.example"}, msg("q", "x")); err != nil {
		t.Fatal(err)
	}
	now := time.Now().Add(time.Second)
	m, err := s.ClaimOutbound(ctx, now, time.Minute)
	if err != nil || m == nil {
		t.Fatalf("claim: %v %v", m, err)
	}
	var open int
	if err := s.Pool().QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
		AND state LIKE 'idle in transaction%'`).Scan(&open); err != nil || open != 0 {
		t.Fatalf("%d transactions open while a message is claimed (%v)", open, err)
	}
	if m2, err := s.ClaimOutbound(ctx, now.Add(30*time.Second), time.Minute); err != nil || m2 != nil {
		t.Fatalf("claimed twice within the lease: %v %v", m2, err)
	}
	m3, err := s.ClaimOutbound(ctx, now.Add(2*time.Minute), time.Minute) // the first worker died
	if err != nil || m3 == nil || m3.ID != m.ID {
		t.Fatalf("expired lease not claimable: %v %v", m3, err)
	}
	if err := s.FinishOutbound(ctx, m, store.OutboundResult{}); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("finish by the worker that lost its lease: %v", err)
	}
	res := store.OutboundResult{Remaining: m3.RcptTo, NextAttempt: now.Add(time.Hour), LastError: "451 later"}
	if err := s.FinishOutbound(ctx, m3, res); err != nil {
		t.Fatal(err)
	}
	if m4, err := s.ClaimOutbound(ctx, now.Add(59*time.Minute), time.Minute); err != nil || m4 != nil {
		t.Fatalf("claimed before next_attempt: %v %v", m4, err)
	}
	m5, err := s.ClaimOutbound(ctx, now.Add(61*time.Minute), time.Minute)
	if err != nil || m5 == nil || m5.Attempts != 1 || m5.LastError != "451 later" {
		t.Fatalf("second attempt: %+v %v", m5, err)
	}
	if err := s.FinishOutbound(ctx, m5, store.OutboundResult{}); err != nil {
		t.Fatal(err)
	}
	if q, _ := s.OutboundQueue(ctx); len(q) != 0 {
		t.Fatalf("queue not empty: %+v", q)
	}
}
