package store

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
)

// CONDSTORE (RFC 7162 §3.1) in the store. Every change a session must see
// takes a modseq from the one sequence modseq_seq (schema 0001): a
// membership row's (a message entering a mailbox, a view included, gets one
// above everything the mailbox ever reported), a flags row's, and a
// tombstone's (a message leaving a view is an event of its own). A
// message's MODSEQ in a mailbox is greatest(membership, flags)
// (FetchCols.ModSeq); the mailbox's HIGHESTMODSEQ is mailboxes.highest_modseq,
// raised by the triggers and never lowered. Changes of one account are
// serialised (gate.go), so modseqs are committed in order.

// HighestModSeq returns a mailbox's HIGHESTMODSEQ now.
func (s *Store) HighestModSeq(ctx context.Context, b Box) (int64, error) {
	if err := b.check(); err != nil {
		return 0, err
	}
	var hm int64
	err := s.caughtUp(ctx, b.userID, func() (pending bool, err error) { // pending.go
		err = s.pool.QueryRow(ctx, `SELECT highest_modseq, flags_pending IS NOT NULL FROM mailboxes WHERE id = $1`, b.id).Scan(&hm, &pending)
		return pending, err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, ErrNotFound
	}
	return hm, wrap("highestmodseq", err)
}

// StoreFlagsUnchangedSince is StoreFlagsHeld with CONDSTORE's UNCHANGEDSINCE
// (rfc7162.txt:543-569): a message whose modseq in the mailbox is above
// unchangedSince is not changed, and its UID is returned in modified; the
// others are changed as by StoreFlagsHeld. The test and the change are one
// transaction under the account's lock: no change of another session can
// come between them.
func (s *Store) StoreFlagsUnchangedSince(ctx context.Context, b Box, uids []uint32, held Held, op FlagOp, f Flags,
	unchangedSince int64) (changes []FlagChange, modified []uint32, err error) {
	return s.storeFlags(ctx, b, uids, held, op, f, max(unchangedSince, 0))
}

// QRESYNC (RFC 7162 §3.2): which UIDs left a mailbox after a modseq. The
// tombstones (mailbox_expunges) answer it; they are kept for the setting
// expunge_horizon and pruned after (PruneExpunges, run by the delete
// daemon), and each mailbox remembers the highest modseq it lost
// (expunges_pruned, schema 0018).

// UIDRange is the UIDs Lo..Hi.
type UIDRange struct{ Lo, Hi uint32 }

// Vanished returns the UIDs removed from a mailbox after modseq since, as
// ascending, disjoint ranges. When tombstones after since were pruned, it
// returns every UID below UIDNEXT that the mailbox does not hold now: a
// superset of the answer (it also names UIDs removed at or before since),
// which RFC 7162 allows ("MUST behave as if it was requested to report all
// expunged messages", rfc7162.txt:1718-1721), and which is exact about
// what is gone, as UIDs are never reused. Either way it is read in one
// statement (one snapshot).
func (s *Store) Vanished(ctx context.Context, b Box, since int64) ([]UIDRange, error) {
	if err := b.check(); err != nil {
		return nil, err
	}
	var uidnext int64
	var found, past bool
	var uids []uint32
	if err := s.caughtUp(ctx, b.userID, func() (pending bool, err error) { // pending.go
		rows, err := s.pool.Query(ctx, `WITH b AS (SELECT uidnext, expunges_pruned > $2 AS past, flags_pending IS NOT NULL AS pending
				FROM mailboxes WHERE id = $1)
			SELECT 0, uidnext, past, pending FROM b
			UNION ALL SELECT 1, u, false, false FROM b, mailbox_expunges e, unnest(e.uids) u
				WHERE NOT b.past AND e.mailbox_id = $1 AND e.modseq > $2
			UNION ALL SELECT 2, mm.uid, false, false FROM b, mailbox_messages mm WHERE b.past AND mm.mailbox_id = $1`, b.id, since)
		if err != nil {
			return false, err
		}
		found, past, uids = false, false, nil
		for rows.Next() {
			var kind int32
			var n int64
			var p, q bool
			if err := rows.Scan(&kind, &n, &p, &q); err != nil {
				rows.Close()
				return false, err
			}
			if kind == 0 {
				found, uidnext, past, pending = true, n, p, q
			} else {
				uids = append(uids, uint32(n))
			}
		}
		return pending, rows.Err()
	}); err != nil {
		return nil, wrap("vanished", err)
	}
	if !found {
		return nil, ErrNotFound
	}
	slices.Sort(uids)
	if !past {
		return uidRanges(uids), nil
	}
	// The gaps below UIDNEXT between the members.
	var out []UIDRange
	next := uint32(1)
	for _, u := range append(uids, uint32(uidnext)) {
		if u > next {
			out = append(out, UIDRange{next, u - 1})
		}
		next = u + 1
	}
	return out, nil
}

// uidRanges turns ascending UIDs into ranges of consecutive ones.
func uidRanges(uids []uint32) []UIDRange {
	var out []UIDRange
	for _, u := range uids {
		if n := len(out); n > 0 && out[n-1].Hi+1 == u {
			out[n-1].Hi = u
		} else if n == 0 || out[n-1].Hi < u {
			out = append(out, UIDRange{u, u})
		}
	}
	return out
}

// PruneExpunges deletes up to limit tombstones written before `before` and
// raises their mailboxes' expunges_pruned to the highest modseq deleted
// (in the same transaction: Vanished sees both or neither). Up to limit
// rows of the log of flag changes written before then go too (schema
// 0030), raising their users' flag_changes_pruned: a poll from below that
// scans the user's flags. It returns how many rows it deleted, of both, so
// a caller that repeats while that reaches limit empties both.
func (s *Store) PruneExpunges(ctx context.Context, before time.Time, limit int) (int, error) {
	var n, logged int
	err := s.tx(ctx, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, pruneSQL("mailbox_expunges", "mailbox_id", "mailboxes", "expunges_pruned"), before, limit).Scan(&n); err != nil {
			return err
		}
		return tx.QueryRow(ctx, pruneSQL("flag_changes", "user_id", "users", "flag_changes_pruned"), before, limit).Scan(&logged)
	})
	return n + logged, wrap("prune expunges", err)
}

// pruneSQL deletes up to $2 rows of log (tombstones, flag changes) written
// before $1, raises the pruned column of each row's owner (the owners
// table's row whose id is the log's ownerCol) to the highest modseq
// deleted, and counts the rows.
func pruneSQL(log, ownerCol, owners, pruned string) string {
	return `WITH d AS (DELETE FROM ` + log + ` WHERE ctid = ANY(ARRAY(
			SELECT ctid FROM ` + log + ` WHERE at < $1 LIMIT $2)) RETURNING ` + ownerCol + ` AS owner, modseq),
		m AS (SELECT owner, max(modseq) AS ms FROM d GROUP BY owner),
		up AS (UPDATE ` + owners + ` o SET ` + pruned + ` = greatest(o.` + pruned + `, m.ms) FROM m WHERE o.id = m.owner)
		SELECT count(*) FROM d`
}
