package store

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// OutboundChannel is notified (at COMMIT) when a message is queued, so relay
// workers in any process wake up before their next poll.
const OutboundChannel = "decimail_outbound"

// OutboundMessage is a row of outbound_queue.
type OutboundMessage struct {
	ID          int64
	UserID      int64 // 0 when the sending user was deleted
	MailFrom    string
	RcptTo      []string
	Data        []byte
	CreatedAt   time.Time
	NextAttempt time.Time
	Attempts    int
	LastError   string
	Lease       int64 // ClaimOutbound's token, checked by FinishOutbound
}

// OutboundResult is what a relay attempt decided for a claimed message.
type OutboundResult struct {
	// Remaining lists the recipients still to be tried; empty removes the row
	// (every recipient was accepted with 250, or bounced).
	Remaining   []string
	NextAttempt time.Time
	LastError   string
}

// Enqueue adds a message to the outbound queue; the row is visible to relay
// workers (and OutboundChannel notified) when this returns.
func (s *Store) Enqueue(ctx context.Context, userID int64, from string, rcpts []string, data []byte) (int64, error) {
	r, err := s.DeliverIncoming(ctx, IncomingBytes(data), Delivery{Queue: &Outbound{UserID: userID, From: from, Rcpts: rcpts}})
	return r.QueueID, err
}

// ErrLeaseLost: FinishOutbound found the message no longer leased to the
// caller (its lease expired and another worker claimed it, or it is gone).
var ErrLeaseLost = errors.New("store: outbound lease lost")

// ClaimOutbound leases one due message (next_attempt <= now, not leased to
// another worker) until now+lease, in one short statement (FOR UPDATE SKIP
// LOCKED: workers in several processes never claim the same row), and
// returns it, or nil when nothing is due. No transaction stays open: the
// caller talks to the smart host, then records the outcome with
// FinishOutbound. A worker that crashes meanwhile leaves the row leased
// until the lease ends; then it is claimed again (at-least-once delivery).
func (s *Store) ClaimOutbound(ctx context.Context, now time.Time, lease time.Duration) (*OutboundMessage, error) {
	m := &OutboundMessage{Lease: rand.Int64()}
	var uid *int64
	err := s.pool.QueryRow(ctx, `UPDATE outbound_queue q SET locked_until = $2, lease = $3
		FROM (SELECT id FROM outbound_queue WHERE next_attempt <= $1 AND (locked_until IS NULL OR locked_until <= $1)
			ORDER BY next_attempt, id LIMIT 1 FOR UPDATE SKIP LOCKED) c
		WHERE q.id = c.id
		RETURNING q.id, q.user_id, q.mail_from, q.rcpt_to, q.data, q.created_at, q.next_attempt, q.attempts, q.last_error`,
		now, now.Add(lease), m.Lease).
		Scan(&m.ID, &uid, &m.MailFrom, &m.RcptTo, &m.Data, &m.CreatedAt, &m.NextAttempt, &m.Attempts, &m.LastError)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	} else if err != nil {
		return nil, wrap("claim outbound", err)
	}
	if uid != nil {
		m.UserID = *uid
	}
	return m, nil
}

// FinishOutbound records the outcome of an attempt on a claimed message,
// if the caller still holds its lease: the row is deleted, or released for
// a later attempt. ErrLeaseLost otherwise.
func (s *Store) FinishOutbound(ctx context.Context, m *OutboundMessage, r OutboundResult) error {
	var err error
	var tag pgconn.CommandTag
	if len(r.Remaining) == 0 {
		tag, err = s.pool.Exec(ctx, `DELETE FROM outbound_queue WHERE id = $1 AND lease = $2`, m.ID, m.Lease)
	} else {
		tag, err = s.pool.Exec(ctx, `UPDATE outbound_queue SET rcpt_to = $3, next_attempt = $4, attempts = attempts + 1,
			last_error = $5, locked_until = NULL, lease = NULL WHERE id = $1 AND lease = $2`,
			m.ID, m.Lease, r.Remaining, r.NextAttempt, clean(r.LastError))
	}
	if err == nil && tag.RowsAffected() == 0 {
		err = ErrLeaseLost
	}
	return wrap("finish outbound", err)
}

// OutboundQueue lists the queue in id order (tools and tests).
func (s *Store) OutboundQueue(ctx context.Context) ([]OutboundMessage, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, coalesce(user_id, 0), mail_from, rcpt_to, data, created_at, next_attempt,
		attempts, last_error FROM outbound_queue ORDER BY id`)
	if err != nil {
		return nil, wrap("outbound queue", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (OutboundMessage, error) {
		var m OutboundMessage
		return m, r.Scan(&m.ID, &m.UserID, &m.MailFrom, &m.RcptTo, &m.Data, &m.CreatedAt, &m.NextAttempt, &m.Attempts, &m.LastError)
	})
}

// IsLocalDomain reports whether some address row (exact or catch-all) is in
// domain: mail to an unknown local part there is refused rather than relayed.
func (s *Store) IsLocalDomain(ctx context.Context, domain string) (bool, error) {
	domain = strings.ToLower(strings.TrimSpace(domain))
	if domain == "" {
		return false, nil
	}
	var ok bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM addresses WHERE right(address, length($1) + 1) = '@' || $1)`,
		domain).Scan(&ok)
	return ok, wrap("local domain", err)
}

// MaySendAs reports whether a user may use address as a sender (MAIL FROM,
// or a From: address): it is delivered to them (exact or through their
// catch-all), it is one of their auto_users addresses, or it is an address
// recorded for one of those (custom_addrs: what Rewrite sends as).
func (s *Store) MaySendAs(ctx context.Context, userID int64, address string) (bool, error) {
	u, err := s.LookupAddress(ctx, address)
	if err == nil && u.ID == userID {
		return true, nil
	}
	if err != nil && !errors.Is(err, ErrNoUser) {
		return false, err
	}
	var ok bool
	err = s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM auto_users WHERE address = $1 AND user_id = $2)
		OR EXISTS (SELECT 1 FROM custom_addrs c JOIN auto_users a ON a.address = c.auto_address
			WHERE c.address = $1 AND a.user_id = $2)`, strings.ToLower(strings.TrimSpace(address)), userID).Scan(&ok)
	return ok, wrap("may send as", err)
}
