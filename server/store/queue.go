package store

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
)

// The outbound queue as an operator sees it (decimail queue list|show|retry|
// drop). A queued message lives only in its outbound_queue row (data is a
// column): it has no spool file, so dropping one deletes the row and
// nothing else. The sender's Sent copy is a message like any other, with
// its own spool file, and is not touched.

var (
	// ErrNotQueued: no queued message has that id (sent, bounced or dropped).
	ErrNotQueued = errors.New("store: no such queued message")
	// ErrQueueBusy: a relay worker holds the message (its lease has not
	// ended): it is being sent now. Force overrides (QueueOp).
	ErrQueueBusy = errors.New("store: queued message is being sent now")
)

// QueueEntry is an outbound_queue row without its data.
type QueueEntry struct {
	ID          int64
	User        string // the sending user's name; "" when none (relayed for a trusted client, or the user is gone)
	MailFrom    string
	RcptTo      []string
	Size        int
	CreatedAt   time.Time
	NextAttempt time.Time
	Attempts    int
	LastError   string
	LockedUntil time.Time // a relay worker's lease; zero when none
}

// Leased reports whether a relay worker holds the message at now.
func (e QueueEntry) Leased(now time.Time) bool { return e.LockedUntil.After(now) }

const queueCols = `q.id, coalesce(u.name, ''), q.mail_from, q.rcpt_to, octet_length(q.data), q.created_at, q.next_attempt,
	q.attempts, q.last_error, q.locked_until`

func scanQueueEntry(r pgx.Row, e *QueueEntry, extra ...any) error {
	var locked *time.Time
	err := r.Scan(append([]any{&e.ID, &e.User, &e.MailFrom, &e.RcptTo, &e.Size, &e.CreatedAt, &e.NextAttempt,
		&e.Attempts, &e.LastError, &locked}, extra...)...)
	if locked != nil {
		e.LockedUntil = *locked
	}
	return err
}

// QueueList lists the outbound queue, oldest first, without message data.
func (s *Store) QueueList(ctx context.Context) ([]QueueEntry, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+queueCols+` FROM outbound_queue q LEFT JOIN users u ON u.id = q.user_id ORDER BY q.id`)
	if err != nil {
		return nil, wrap("queue list", err)
	}
	es, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (QueueEntry, error) {
		var e QueueEntry
		return e, scanQueueEntry(r, &e)
	})
	return es, wrap("queue list", err)
}

// QueueMessage returns one queued message with its data (header and body as
// they will be sent); ErrNotQueued if there is none with that id.
func (s *Store) QueueMessage(ctx context.Context, id int64) (QueueEntry, []byte, error) {
	var e QueueEntry
	var data []byte
	err := scanQueueEntry(s.pool.QueryRow(ctx, `SELECT `+queueCols+`, q.data FROM outbound_queue q
		LEFT JOIN users u ON u.id = q.user_id WHERE q.id = $1`, id), &e, &data)
	if errors.Is(err, pgx.ErrNoRows) {
		return QueueEntry{}, nil, ErrNotQueued
	}
	return e, data, wrap("queue message", err)
}

// RetryQueued makes a queued message due at now and wakes the relay workers
// (OutboundChannel). A message a worker holds is ErrQueueBusy unless force,
// which also ends the lease: that worker's result is then discarded
// (ErrLeaseLost) and the message may be sent twice.
func (s *Store) RetryQueued(ctx context.Context, id int64, now time.Time, force bool) error {
	return s.queueOp(ctx, id, now, force, `UPDATE outbound_queue SET next_attempt = $2, locked_until = NULL, lease = NULL
		WHERE id = $1 AND ($3 OR locked_until IS NULL OR locked_until <= $2)`, true)
}

// DropQueued removes a queued message without sending it or bouncing it.
// A message a worker holds is ErrQueueBusy unless force (it may then still
// reach its recipients, if the worker is sending it right now).
func (s *Store) DropQueued(ctx context.Context, id int64, now time.Time, force bool) error {
	return s.queueOp(ctx, id, now, force, `DELETE FROM outbound_queue
		WHERE id = $1 AND ($3 OR locked_until IS NULL OR locked_until <= $2)`, false)
}

func (s *Store) queueOp(ctx context.Context, id int64, now time.Time, force bool, sql string, notify bool) error {
	err := s.tx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, sql, id, now, force)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			var exists bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM outbound_queue WHERE id = $1)`, id).Scan(&exists); err != nil {
				return err
			}
			if exists {
				return ErrQueueBusy
			}
			return ErrNotQueued
		}
		if notify {
			_, err = tx.Exec(ctx, `SELECT pg_notify($1, '')`, OutboundChannel)
		}
		return err
	})
	if errors.Is(err, ErrQueueBusy) || errors.Is(err, ErrNotQueued) {
		return err
	}
	return wrap("queue", err)
}
