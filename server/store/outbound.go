package store

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
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

// ClaimOutbound locks one due message (next_attempt <= now) with FOR UPDATE
// SKIP LOCKED, so workers in several processes never send the same row at
// once, and calls fn while holding the lock. fn's result is applied in the
// same transaction: the row is deleted, or updated for a later attempt.
// A crash during fn releases the lock and leaves the row queued (at-least-once
// delivery). found is false when nothing is due.
func (s *Store) ClaimOutbound(ctx context.Context, now time.Time, fn func(*OutboundMessage) OutboundResult) (found bool, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var m OutboundMessage
		var uid *int64
		err := tx.QueryRow(ctx, `SELECT id, user_id, mail_from, rcpt_to, data, created_at, next_attempt, attempts, last_error
			FROM outbound_queue WHERE next_attempt <= $1 ORDER BY next_attempt, id LIMIT 1 FOR UPDATE SKIP LOCKED`, now).
			Scan(&m.ID, &uid, &m.MailFrom, &m.RcptTo, &m.Data, &m.CreatedAt, &m.NextAttempt, &m.Attempts, &m.LastError)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		} else if err != nil {
			return err
		}
		found = true
		if uid != nil {
			m.UserID = *uid
		}
		r := fn(&m)
		if len(r.Remaining) == 0 {
			_, err = tx.Exec(ctx, `DELETE FROM outbound_queue WHERE id = $1`, m.ID)
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE outbound_queue SET rcpt_to = $2, next_attempt = $3, attempts = attempts + 1,
			last_error = $4 WHERE id = $1`, m.ID, r.Remaining, r.NextAttempt, clean(r.LastError))
		return err
	})
	return found, wrap("claim outbound", err)
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
