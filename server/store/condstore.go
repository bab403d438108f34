package store

import (
	"context"
	"errors"

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
	err := s.pool.QueryRow(ctx, `SELECT highest_modseq FROM mailboxes WHERE id = $1`, b.id).Scan(&hm)
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
