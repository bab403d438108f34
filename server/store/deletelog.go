package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// DeleteChannel is notified by the messages_delete trigger at COMMIT.
const DeleteChannel = "decimail_delete"

// DeletedMessage is a pending delete_log row.
type DeletedMessage struct {
	ID        int64
	MessageID int64
	UserID    int64
	SpoolPath string
	DeletedAt time.Time
}

// ClaimDeleted locks up to limit pending delete_log rows deleted at or before
// `before` (FOR UPDATE SKIP LOCKED: daemons in several processes share the
// work), calls fn for each and marks those for which fn returned nil done, in
// one transaction. It returns how many were marked done.
func (s *Store) ClaimDeleted(ctx context.Context, before time.Time, limit int, fn func(DeletedMessage) error) (int, error) {
	n := 0
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		n = 0
		rows, err := tx.Query(ctx, `SELECT id, message_id, user_id, spool_path, deleted_at FROM delete_log
			WHERE done_at IS NULL AND deleted_at <= $1 ORDER BY deleted_at, id LIMIT $2 FOR UPDATE SKIP LOCKED`, before, limit)
		if err != nil {
			return err
		}
		ds, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (DeletedMessage, error) {
			var d DeletedMessage
			return d, r.Scan(&d.ID, &d.MessageID, &d.UserID, &d.SpoolPath, &d.DeletedAt)
		})
		if err != nil {
			return err
		}
		if len(ds) == 0 {
			return nil
		}
		// The deletions these rows record may have committed lazily (an
		// EXPUNGE: gate.go), not yet on disk: a durable commit of our own,
		// later in the WAL, flushes them before any spool file goes (a
		// crash must not bring back a message without its backup).
		if _, err := s.pool.Exec(ctx, `SELECT txid_current()`); err != nil {
			return err
		}
		var done []int64
		for _, d := range ds {
			if fn(d) == nil {
				done = append(done, d.ID)
			}
		}
		if len(done) == 0 {
			return nil
		}
		tag, err := tx.Exec(ctx, `UPDATE delete_log SET done_at = now() WHERE id = ANY($1)`, done)
		n = int(tag.RowsAffected())
		return err
	})
	return n, wrap("claim deleted", err)
}
