package store

import (
	"context"
	"errors"
	"maps"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
)

// Snapshot is what SELECT needs: the mailbox's UIDs in order, which of them are
// \Recent for this session, and the modseq cursor the session continues from.
type Snapshot struct {
	Mailbox  Mailbox
	UIDs     []uint32
	Flags    []Flags  // Flags[i] are the flags of UIDs[i]
	Unseen   []uint32 // UIDs without \Seen
	Recent   []uint32 // \Recent for this session (claimed unless read-only)
	Keywords []string // keywords in use in the mailbox
	ModSeq   int64
}

// readTx runs fn in a REPEATABLE READ transaction (one consistent snapshot),
// retrying serialization failures.
func (s *Store) readTx(ctx context.Context, fn func(pgx.Tx) error) error {
	for attempt := 0; ; attempt++ {
		tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead})
		if err != nil {
			return err
		}
		err = fn(tx)
		if err == nil {
			err = tx.Commit(ctx)
		} else {
			tx.Rollback(ctx)
		}
		if isRetryable(err) && attempt < 8 {
			time.Sleep(time.Duration(attempt+1) * 5 * time.Millisecond)
			continue
		}
		return err
	}
}

// Select snapshots a mailbox for a session. Unless readOnly, the session
// claims the mailbox's \Recent messages (RFC 3501 §2.3.2: only one session
// sees a message as recent).
func (s *Store) Select(ctx context.Context, userID int64, name string, readOnly bool) (*Snapshot, error) {
	snap := &Snapshot{}
	err := s.readTx(ctx, func(tx pgx.Tx) error {
		*snap = Snapshot{}
		var err error
		snap.Mailbox, err = scanMailbox(tx.QueryRow(ctx, `SELECT `+mailboxCols+` FROM mailboxes WHERE user_id = $1 AND name = $2`, userID, NormName(name)))
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		} else if err != nil {
			return err
		}
		id := snap.Mailbox.ID
		claimed := map[int64]bool{}
		if !readOnly {
			rows, err := tx.Query(ctx, `UPDATE mailbox_messages SET recent = false WHERE mailbox_id = $1 AND recent RETURNING uid`, id)
			if err != nil {
				return err
			}
			us, err := pgx.CollectRows(rows, pgx.RowTo[int64])
			if err != nil {
				return err
			}
			for _, u := range us {
				claimed[u] = true
			}
		}
		// Every member with its flags (the session keeps them: FETCH FLAGS
		// is answered from memory); keywords are NULL when empty, which
		// decodes without allocating.
		rows, err := tx.Query(ctx, `SELECT mm.uid, mm.recent, f.seen, f.answered, f.flagged, f.deleted, f.draft,
				nullif(f.keywords, '{}')
			FROM mailbox_messages mm JOIN message_flags f ON f.message_id = mm.message_id
			WHERE mm.mailbox_id = $1 ORDER BY mm.uid`, id)
		if err != nil {
			return err
		}
		kws := map[string]bool{}
		for rows.Next() {
			var uid int64
			var recent bool
			var f Flags
			if err := rows.Scan(&uid, &recent, &f.Seen, &f.Answered, &f.Flagged, &f.Deleted, &f.Draft, &f.Keywords); err != nil {
				return err
			}
			snap.UIDs = append(snap.UIDs, uint32(uid))
			snap.Flags = append(snap.Flags, f)
			if (readOnly && recent) || claimed[uid] {
				snap.Recent = append(snap.Recent, uint32(uid))
			}
			if !f.Seen {
				snap.Unseen = append(snap.Unseen, uint32(uid))
			}
			for _, k := range f.Keywords {
				kws[k] = true
			}
		}
		if err := rows.Err(); err != nil {
			return err
		}
		// The cursor: every change of this mailbox so far, flag changes included
		// (found by the user's flag modseq).
		if err := tx.QueryRow(ctx, `SELECT greatest(
				(SELECT coalesce(max(modseq), 0) FROM mailbox_messages WHERE mailbox_id = $1),
				(SELECT coalesce(max(modseq), 0) FROM mailbox_expunges WHERE mailbox_id = $1),
				(SELECT coalesce(max(modseq), 0) FROM message_flags WHERE user_id = $2))`, id, userID).Scan(&snap.ModSeq); err != nil {
			return err
		}
		snap.Keywords = slices.Sorted(maps.Keys(kws))
		return nil
	})
	if err != nil {
		return nil, err
	}
	return snap, nil
}

// Change is a message added or changed since a cursor.
type Change struct {
	UID    uint32
	Flags  Flags
	ModSeq int64
	Recent bool // claimed as \Recent by this session
}

// Changes is what happened in a mailbox after a modseq cursor.
type Changes struct {
	UIDValidity uint32
	Changed     []Change // new or changed memberships, by UID
	Expunged    []uint32 // removed UIDs, ascending
	ModSeq      int64    // the new cursor
}

// ChangesSince reads everything that changed in a mailbox after modseq since,
// in ONE statement (one snapshot, one round trip: it runs at every poll).
// claimRecent claims new \Recent messages for this (read-write) session.
// A deleted mailbox gives ErrNotFound.
func (s *Store) ChangesSince(ctx context.Context, mailboxID, since int64, claimRecent bool) (*Changes, error) {
	return s.ChangesSinceExcept(ctx, mailboxID, since, claimRecent, 0, -1)
}

// ChangesSinceExcept is ChangesSince leaving out the flag changes with
// modseqs in [lo, hi]: a session's own STORE, whose results it already has
// (StoreSystemFlags). Under the user's lock nobody else took a modseq of
// this user in that range, so the new cursor is at least hi.
func (s *Store) ChangesSinceExcept(ctx context.Context, mailboxID, since int64, claimRecent bool, lo, hi int64) (*Changes, error) {
	rows, err := s.pool.Query(ctx, `WITH
		claim AS (UPDATE mailbox_messages SET recent = false
			WHERE $3 AND mailbox_id = $1 AND recent AND modseq > $2 RETURNING uid),
		ch AS (SELECT mm.uid, greatest(mm.modseq, f.modseq) AS modseq, f.seen, f.answered, f.flagged, f.deleted, f.draft, nullif(f.keywords, '{}') AS keywords
			FROM mailbox_messages mm JOIN message_flags f ON f.message_id = mm.message_id
			WHERE mm.mailbox_id = $1 AND mm.modseq > $2
			UNION
			SELECT mm.uid, greatest(mm.modseq, f.modseq), f.seen, f.answered, f.flagged, f.deleted, f.draft, nullif(f.keywords, '{}')
			FROM message_flags f JOIN mailbox_messages mm ON mm.message_id = f.message_id AND mm.mailbox_id = $1
			WHERE f.user_id = (SELECT user_id FROM mailboxes WHERE id = $1) AND f.modseq > $2
				AND NOT f.modseq BETWEEN $4 AND $5)
		SELECT 0 AS kind, uidvalidity AS uid, 0::bigint, false, false, false, false, false, '{}'::text[], false
			FROM mailboxes WHERE id = $1
		UNION ALL
		SELECT 1, ch.uid, ch.modseq, ch.seen, ch.answered, ch.flagged, ch.deleted, ch.draft, ch.keywords, claim.uid IS NOT NULL
			FROM ch LEFT JOIN claim ON claim.uid = ch.uid
		UNION ALL
		SELECT 2, u.uid, e.modseq, false, false, false, false, false, '{}'::text[], false
			FROM mailbox_expunges e, unnest(e.uids) AS u(uid) WHERE e.mailbox_id = $1 AND e.modseq > $2
		ORDER BY 1, 2`, mailboxID, since, claimRecent, lo, hi)
	if err != nil {
		return nil, wrap("changes", err)
	}
	defer rows.Close()
	ch := &Changes{ModSeq: max(since, hi)}
	found := false
	for rows.Next() {
		var kind int32
		var uid, ms int64
		var c Change
		if err := rows.Scan(&kind, &uid, &ms, &c.Flags.Seen, &c.Flags.Answered, &c.Flags.Flagged, &c.Flags.Deleted,
			&c.Flags.Draft, &c.Flags.Keywords, &c.Recent); err != nil {
			return nil, wrap("changes", err)
		}
		switch kind {
		case 0:
			found, ch.UIDValidity = true, uint32(uid)
		case 1:
			c.UID, c.ModSeq = uint32(uid), ms
			ch.Changed = append(ch.Changed, c)
		case 2:
			ch.Expunged = append(ch.Expunged, uint32(uid))
		}
		ch.ModSeq = max(ch.ModSeq, ms)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("changes", err)
	}
	if !found {
		return nil, ErrNotFound
	}
	return ch, nil
}
