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
	return s.texts.used()
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

// GateDeliveries is the number of deliveries waiting at the user's gate.
func (s *Store) GateDeliveries(userID int64) int {
	e, release := s.gates.ref(userID)
	defer release()
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.deliveries)
}

// Combined is the number of combined transactions so far.
func (s *Store) Combined() int64 { return s.combined.Load() }

// Joined is the number of transactions that stored several deliveries.
func (s *Store) Joined() int64 { return s.joined.Load() }

// SharedPolls is the number of reads of changes answered from another
// session's read (sharedpoll.go).
func (s *Store) SharedPolls() int64 { return s.polls.hits.Load() }

// OwnSkipped is the number of this process's own notifications its
// listener skipped (schema 0024).
func (n *Notifier) OwnSkipped() int64 { return n.skipped.Load() }

// Feeds is the number of records of changes writers continued
// (sharedpoll.go: touchFeeds).
func (s *Store) Feeds() int64 { return s.polls.feeds.Load() }

// BeforeTouch sets a func called when a change leaves the user's gate,
// after its COMMIT and before it signals (nil: none).
func (s *Store) BeforeTouch(f func()) {
	if f == nil {
		s.beforeTouch.Store(nil)
		return
	}
	s.beforeTouch.Store(&f)
}

// FixSCRAMNonce makes every SCRAM exchange's server nonce n (the RFC 7677
// example's).
func (s *Store) FixSCRAMNonce(n string) { s.scramNonce = func() string { return n } }

// SetSCRAMVerifier stores the verifier of password with salt and iters for
// name (the RFC 7677 example's), or removes it (salt nil), as an account
// made before schema 0027 has none.
func (s *Store) SetSCRAMVerifier(ctx context.Context, name, password string, salt []byte, iters int) error {
	v := scramVerifier{}
	if salt != nil {
		v, _ = deriveSCRAM(password, salt, iters)
	}
	_, err := s.pool.Exec(ctx, `UPDATE users SET scram_salt = $2, scram_iters = $3, scram_stored_key = $4,
		scram_server_key = $5 WHERE name = $1`, append([]any{name}, v.args()...)...)
	return err
}

// SCRAMVerifier returns name's stored verifier (nil salt: none).
func (s *Store) SCRAMVerifier(ctx context.Context, name string) (salt []byte, iters int, storedKey, serverKey []byte, err error) {
	var it *int32
	err = s.pool.QueryRow(ctx, `SELECT scram_salt, scram_iters, scram_stored_key, scram_server_key FROM users WHERE name = $1`,
		name).Scan(&salt, &it, &storedKey, &serverKey)
	if it != nil {
		iters = int(*it)
	}
	return
}

// DeriveSCRAM exposes the verifier derivation.
func DeriveSCRAM(password string, salt []byte, iters int) (storedKey, serverKey []byte, ok bool) {
	v, ok := deriveSCRAM(password, salt, iters)
	return v.storedKey, v.serverKey, ok
}

// SetDeferViewsFrom sets the smallest flag change (in targeted UIDs) that
// leaves views pending for their readers (pending.go); 0 restores the
// default.
func (s *Store) SetDeferViewsFrom(n int) { s.deferViews.Store(int64(n)) }

// CatchUps is how many times a reader brought pending views up to date.
func (s *Store) CatchUps() int64 { return s.catchUps.Load() }

// FlagsSinceSQL is flagsSinceSQL: the flags rows of user u changed since,
// passing over logged statements within lo..hi.
func FlagsSinceSQL(u, since, lo, hi string) string { return flagsSinceSQL(u, since, lo, hi) }

// IndexQuiet is how long deliveries pause before the indexer runs.
const IndexQuiet = indexQuiet
