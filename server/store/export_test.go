package store

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// OnIndexPass sets a hook the background indexer calls after each pass,
// once the pass's texts are indexed and the trigram indexes' pending lists
// merged, with how many texts it indexed.
func (s *Store) OnIndexPass(f func(indexed int)) { s.indexPassed.Store(&f) }

// TextCacheSize is the bytes the text cache holds and its bound.
func (s *Store) TextCacheSize() (size, max int64) {
	s.texts.mu.Lock()
	defer s.texts.mu.Unlock()
	return s.texts.size, s.texts.max
}

// ChangeSQL runs one statement as a change of the user's mail through
// changeBatch (combined with others waiting at the gate).
func (s *Store) ChangeSQL(ctx context.Context, userID int64, sql string, args ...any) error {
	return s.changeBatch(ctx, userID, func(b *pgx.Batch, _ int) (commitMode, error) {
		b.Queue(sql, args...)
		return lazy, nil
	})
}

// HoldGate enters the user's gate; the returned func leaves it.
func (s *Store) HoldGate(ctx context.Context, userID int64) (func(), error) {
	return s.gates.enter(ctx, userID)
}

// GateWaiting is the number of changeBatch writers waiting at the user's gate.
func (s *Store) GateWaiting(userID int64) int {
	e, release := s.gates.ref(userID)
	defer release()
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.waiting)
}

// Combined is the number of combined transactions so far.
func (s *Store) Combined() int64 { return s.combined.Load() }

// SharedPolls is the number of reads of changes answered from another
// session's read (sharedpoll.go).
func (s *Store) SharedPolls() int64 { return s.polls.hits.Load() }
