package store

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// Changes to one user's mail are serialised by the user's lock in Postgres
// (lockUser), held to COMMIT. Within one server process they are queued
// first, here, in Go, one at a time per user, BEFORE a database connection
// is taken: with 50 sessions of one account changing its mail, the waiters
// otherwise each held a pooled connection while blocked on the row lock,
// 12 of the 20 on average, and the reads of every other session waited for
// a free connection (the many-sessions benchmark, bench/ANALYSIS.md). The
// gate is FIFO (a channel) and honours the context. Postgres's lock stays
// the rule across processes; the gate only makes it uncontended within one.
type userGates struct {
	mu sync.Mutex
	m  map[int64]*userGate
	// touch is called with the user on leaving the gate, before the next
	// writer enters: the change has committed (or failed), before the
	// caller answers (Notifier.Touch), with the reads of changes the
	// committed transaction made for the process's sessions (stash,
	// Store.touchFeeds).
	touch func(userID int64, feeds []*feedRead)
}

type userGate struct {
	ch   chan struct{} // capacity 1: holding = a value in it
	refs int           // holders and waiters (userGates.mu)

	mu         sync.Mutex
	waiting    []*pendingChange   // changeBatch's writers waiting, in order
	deliveries []*pendingDelivery // deliverJoined's, in order
	feeds      []*feedRead        // stash
}

// pendingDelivery is a delivery waiting at the gate, which the delivery
// that enters it may store with its own (deliverJoined).
type pendingDelivery struct {
	ms   []*pending
	done chan error // capacity 1: the result, errAlone: run it alone
}

// maxJoined and joinedBytes bound the deliveries of one transaction and
// the size of their messages (the first is always taken, whatever its size).
// Small, as maxCombined is: every delivery of a group wakes at once.
const (
	maxJoined   = 4
	joinedBytes = 4 << 20
)

// takeDeliveries is take for deliveries: p, if still waiting, then those
// waiting longest, within maxJoined and joinedBytes; nil if another took p.
func (e *userGate) takeDeliveries(p *pendingDelivery) []*pendingDelivery {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !unwait(&e.deliveries, p) {
		return nil
	}
	group := []*pendingDelivery{p}
	size := p.size()
	n := 0
	for n < len(e.deliveries) && len(group) < maxJoined && size+e.deliveries[n].size() <= joinedBytes {
		size += e.deliveries[n].size()
		group = append(group, e.deliveries[n])
		n++
	}
	e.deliveries = slices.Delete(e.deliveries, 0, n)
	return group
}

func (p *pendingDelivery) size() int {
	n := 0
	for _, m := range p.ms {
		n += len(m.content)
	}
	return n
}

// pendingChange is a changeBatch waiting at the gate, which the writer
// that enters it may run for it (changeBatch).
type pendingChange struct {
	queue func(*pgx.Batch, int) (commitMode, error)
	done  chan error // capacity 1: the result, errAlone: run it alone
}

// ref finds the user's gate and counts a user of it; release uncounts.
func (g *userGates) ref(userID int64) (e *userGate, release func()) {
	g.mu.Lock()
	if g.m == nil {
		g.m = map[int64]*userGate{}
	}
	e = g.m[userID]
	if e == nil {
		e = &userGate{ch: make(chan struct{}, 1)}
		g.m[userID] = e
	}
	e.refs++
	g.mu.Unlock()
	return e, func() {
		g.mu.Lock()
		if e.refs--; e.refs == 0 {
			delete(g.m, userID)
		}
		g.mu.Unlock()
	}
}

// enter waits for the user's gate; the returned func leaves it.
func (g *userGates) enter(ctx context.Context, userID int64) (func(), error) {
	e, release := g.ref(userID)
	select {
	case e.ch <- struct{}{}:
		return g.leaver(e, userID, release), nil
	case <-ctx.Done():
		release()
		return func() {}, ctx.Err()
	}
}

// leaver is the func that leaves e, held.
func (g *userGates) leaver(e *userGate, userID int64, release func()) func() {
	return func() {
		e.mu.Lock()
		feeds := e.feeds
		e.feeds = nil
		e.mu.Unlock()
		if g.touch != nil {
			g.touch(userID, feeds)
		}
		<-e.ch
		release()
	}
}

// stash gives the gate of the user, which the caller holds, the reads of
// changes its committed transaction made (queueFeeds), for touch.
func (g *userGates) stash(userID int64, feeds []*feedRead) {
	if len(feeds) == 0 {
		return
	}
	g.mu.Lock()
	e := g.m[userID]
	g.mu.Unlock()
	if e != nil {
		e.mu.Lock()
		e.feeds = feeds
		e.mu.Unlock()
	}
}

// take removes p, if still waiting, and up to maxCombined-1 other
// writers waiting, the longest-waiting first, and returns them, p first;
// nil if another writer took p.
func (e *userGate) take(p *pendingChange) []*pendingChange {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !unwait(&e.waiting, p) {
		return nil
	}
	n := min(len(e.waiting), maxCombined-1)
	group := append([]*pendingChange{p}, e.waiting[:n]...)
	e.waiting = slices.Delete(e.waiting, 0, n)
	return group
}

// unwait removes p from the waiting list (e.waiting, e.deliveries) if
// still there (false: another writer took it); the caller holds e.mu.
func unwait[T comparable](list *[]T, p T) bool {
	i := slices.Index(*list, p)
	if i >= 0 {
		*list = slices.Delete(*list, i, i+1)
	}
	return i >= 0
}

// remove removes p if still waiting (false: another writer took it).
func (e *userGate) remove(p *pendingChange) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return unwait(&e.waiting, p)
}

// removeDelivery is remove for a delivery.
func (e *userGate) removeDelivery(p *pendingDelivery) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return unwait(&e.deliveries, p)
}

// maxCombined bounds the changes of one combined transaction. Every
// writer of a group is woken at once when it commits, and each then
// finishes its command (its poll, its response) on the process's two or
// so threads: a session's read that arrives meanwhile waits behind them
// all. With 32, reads of the many-sessions line waited about 1.6 ms per
// command runnable but not running (FETCH p50 1.5-1.6 ms, p99 8.6-9.2);
// with 8 (and 4 deliveries, maxJoined) 0.7 and 4.8-5.0, for 15% fewer
// commands per second, still far above Dovecot's (bench/ANALYSIS.md).
const maxCombined = 8

// enterAll enters the gates of several users (a delivery to several
// recipients), in id order, as their locks are taken (deliverTx): two
// holders never wait for each other in a circle.
func (g *userGates) enterAll(ctx context.Context, userIDs []int64) (func(), error) {
	ids := slices.Clone(userIDs)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	var leaves []func()
	leave := func() {
		for i := len(leaves) - 1; i >= 0; i-- {
			leaves[i]()
		}
	}
	for _, id := range ids {
		l, err := g.enter(ctx, id)
		if err != nil {
			leave()
			return func() {}, err
		}
		leaves = append(leaves, l)
	}
	return leave, nil
}

// commitMode says how durable a change must be when its COMMIT returns.
//
// The rule (README, "Durability"): a change is on disk before the server
// says OK if it stores a message or gives out a UID; other changes may be
// lost in a crash of Postgres within about a second after their OK, never
// half of one, and never one without the changes committed before it.
type commitMode int

const (
	// durable: on disk at COMMIT (synchronous_commit on). Deliveries and
	// APPEND, copies and moves, definitions, and flag changes that add a
	// message to a query mailbox: whatever gives out UIDs, which a client
	// keeps, and which must not be given out again after a crash.
	durable commitMode = iota
	// lazy: COMMIT returns before its WAL is flushed (synchronous_commit
	// off); Postgres's WAL writer flushes it within 3 × wal_writer_delay
	// (600 ms by default), and any later durable COMMIT flushes it first,
	// since the WAL is flushed in order. Flag changes that add no message
	// to a view, expunges and \Recent claims: a crash can undo them (the
	// flags are back, the message is back with its old UID), as with
	// Dovecot's mail_fsync=optimized, which fsyncs saved mail but not its
	// index updates. The modseqs they drew may be drawn again after such a
	// crash, so the first connection after a restart of Postgres moves
	// modseq_seq past them (afterRestart).
	lazy
)

// beginLazy starts a transaction whose COMMIT does not wait for the WAL
// flush, in the BEGIN's round trip (a simple-protocol query of two
// statements).
const beginLazy = "BEGIN ISOLATION LEVEL READ COMMITTED; SET LOCAL synchronous_commit = off"

// durableNow makes a lazy transaction durable after all (its COMMIT waits
// for the WAL flush): queued in the batch that adds messages to a view.
const durableNow = `SET LOCAL synchronous_commit = on`

// change runs fn as ONE change of the user's mail (package doc): through
// the user's gate, in a transaction that takes the user's lock before fn
// and commits as mode says (fn may queue durableNow); serialization
// failures and deadlocks are retried.
func (s *Store) change(ctx context.Context, userID int64, mode commitMode, fn func(pgx.Tx) error) error {
	leave, err := s.gates.enter(ctx, userID)
	defer leave()
	if err != nil {
		return err
	}
	var o pgx.TxOptions
	if mode == lazy {
		o.BeginQuery = beginLazy
	}
	var feeds []*feedRead
	err = s.txOpts(ctx, o, func(tx pgx.Tx) error {
		if err := lockUser(ctx, tx, userID, s.notif.origin); err != nil {
			return err
		}
		if err := fn(tx); err != nil {
			return err
		}
		// The reads of changes for this process's sessions (sharedpoll.go),
		// one more round trip under the lock: without them every session
		// of the user read the store after this change.
		b := &pgx.Batch{}
		if feeds = s.queueFeeds(b, userID, true); len(feeds) > 0 {
			return tx.SendBatch(ctx, b).Close()
		}
		return nil
	})
	if err == nil {
		s.gates.stash(userID, feeds)
	}
	return err
}

// changeBatch is change for a change whose statements need nothing read
// back before the last one: BEGIN, the lock, the statements queue adds and
// COMMIT go to Postgres in ONE round trip, so the user's lock is held for
// that round trip alone (a change of 5-9 statements took as many round
// trips under the lock, each slow on a busy machine). queue is called
// afresh for each attempt (attempt 0, 1, ...), registers the callbacks that
// read the results and says how the change commits. A failed statement
// makes Postgres skip the rest, COMMIT included, and the transaction is
// rolled back. The COMMIT goes out with the statements, so a change whose
// answer is lost (this process dying meanwhile) may still be committed:
// only for changes a client can repeat (flags, expunges).
//
// Such changes are combined: the writer that enters the user's gate runs
// its own change and those of the changeBatch writers waiting for the gate
// (up to maxCombined), in order, in its one transaction, and hands each
// its result. With 50 sessions of one account the gate was the limit of
// the many-sessions line (bench/ANALYSIS.md): every change paid its round
// trip, its COMMIT and the wake-up of the next writer, about 1.5 ms, while
// its statements took a fifth of that. The statements of one change see
// those of the changes before it, as when they ran one after another
// under the lock; each change's modseqs are above the previous change's.
// If the combined transaction fails, each change runs again alone (its
// queue called afresh), so one writer's failure is its own.
func (s *Store) changeBatch(ctx context.Context, userID int64, queue func(b *pgx.Batch, attempt int) (commitMode, error)) error {
	e, release := s.gates.ref(userID)
	p := &pendingChange{queue: queue, done: make(chan error, 1)}
	e.mu.Lock()
	e.waiting = append(e.waiting, p)
	e.mu.Unlock()
	var err error
	select {
	case err = <-p.done: // another writer ran it
		release()
	case e.ch <- struct{}{}:
		group := e.take(p)
		if group == nil { // taken meanwhile: the writer that took it signals
			<-e.ch // nothing changed here: no signal (it would make every session read)
			release()
			err = <-p.done
			break
		}
		leave := s.gates.leaver(e, userID, release)
		if len(group) == 1 {
			defer leave()
			return s.sendAlone(ctx, userID, queue)
		}
		s.combined.Add(1)
		results := s.sendCombined(ctx, userID, group)
		leave() // and Touch: before anyone answers
		for i, q := range group[1:] {
			q.done <- results[i+1]
		}
		err = results[0]
	case <-ctx.Done():
		if !e.remove(p) { // taken: it runs, or ran
			err = <-p.done
			release()
			break
		}
		release()
		return ctx.Err()
	}
	if err != errAlone {
		return err
	}
	leave, err := s.gates.enter(ctx, userID)
	defer leave()
	if err != nil {
		return err
	}
	return s.sendAlone(ctx, userID, queue)
}

// errAlone: a combined transaction failed; the change runs alone.
var errAlone = errors.New("store: run the change alone")

// sendAlone sends one change, retried after serialization failures and
// deadlocks; the caller holds the gate.
func (s *Store) sendAlone(ctx context.Context, userID int64, queue func(b *pgx.Batch, attempt int) (commitMode, error)) error {
	for attempt := 0; ; attempt++ {
		err := s.sendChange(ctx, userID, attempt, queue)
		if isRetryable(err) && attempt < 8 {
			time.Sleep(time.Duration(attempt+1) * 5 * time.Millisecond)
			continue
		}
		return err
	}
}

// sendCombined sends the changes of group in one transaction (the caller
// holds the gate) and returns each one's result: a change whose queue
// refused (an error, e.g. errSlowPath) gets that error and is left out;
// if the transaction fails, every change gets errAlone. It runs apart from
// the context of the writer that runs it: the others' changes must not
// fail because that writer's client went away.
func (s *Store) sendCombined(ctx context.Context, userID int64, group []*pendingChange) []error {
	results := make([]error, len(group))
	err := s.sendChange(context.WithoutCancel(ctx), userID, 0, func(b *pgx.Batch, _ int) (commitMode, error) {
		mode := lazy
		for i, p := range group {
			one := &pgx.Batch{}
			m, err := p.queue(one, 0)
			if err != nil {
				results[i] = err
				continue
			}
			b.QueuedQueries = append(b.QueuedQueries, one.QueuedQueries...)
			if m == durable {
				mode = durable
			}
		}
		return mode, nil
	})
	for i := range results {
		if err != nil && results[i] == nil {
			results[i] = errAlone
		}
	}
	return results
}

func (s *Store) sendChange(ctx context.Context, userID int64, attempt int, queue func(*pgx.Batch, int) (commitMode, error)) error {
	b := &pgx.Batch{}
	b.Queue(`BEGIN`)
	// The statements are small and shaped alike each time (a few rows by
	// key): one generic plan each, not a new plan per call (the UPDATE of
	// AddRemoveFlags was planned afresh every time, as ChangesSince was).
	b.Queue(`SET LOCAL plan_cache_mode = force_generic_plan`)
	found := false
	b.Queue(`SELECT id FROM users WHERE id = $1 AND set_config('decimail.origin', $2, true) IS NOT NULL
		FOR NO KEY UPDATE`, userID, s.notif.origin).Query(func(rows pgx.Rows) error {
		found = rows.Next()
		rows.Close()
		return rows.Err()
	})
	s.committed.take(userID) // an earlier attempt's
	mode, err := queue(b, attempt)
	if err != nil {
		return err
	}
	if mode == lazy {
		b.Queue(`SET LOCAL synchronous_commit = off`)
	}
	var feeds []*feedRead
	if s.committed.fed(userID) {
		feeds = s.queueFeeds(b, userID, false) // the plan setting is above
	}
	b.Queue(`COMMIT`)
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	// A connection released inside a transaction (a cancelled ctx) is
	// closed by the pool, which rolls the transaction back.
	defer conn.Release()
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		conn.Exec(ctx, `ROLLBACK`) // a no-op (a warning) if COMMIT ran
		return classify(ctx, err)
	}
	if !found {
		return ErrNoUser // nothing was there to change
	}
	for _, f := range s.committed.take(userID) {
		f()
	}
	s.gates.stash(userID, feeds)
	return nil
}

// commitHooks are what the changes of a batch being sent (sendChange)
// do once it committed, before the user's sessions are signalled (when
// the gate is left): a queue func registers them with onCommit. The gate
// lets one batch of a user be sent at a time in the process, so the hooks
// are kept by user.
type commitHooks struct {
	mu    sync.Mutex
	m     map[int64][]func()
	unfed map[int64]bool // skipFeeds
}

// skipFeeds: the user's batch being sent makes no reads of changes for
// the process's sessions (queueFeeds). A large flag change does so: under
// the lock, the read returned every changed row (6,943 for −FLAGS on the
// benchmark's INBOX, 12–16 ms), which the session that made the change
// drops as its own; the sessions read the store instead if they need to.
func (h *commitHooks) skipFeeds(userID int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.unfed == nil {
		h.unfed = map[int64]bool{}
	}
	h.unfed[userID] = true
}

// fed reports whether the user's batch being sent reads changes for the
// sessions (skipFeeds).
func (h *commitHooks) fed(userID int64) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return !h.unfed[userID]
}

// onCommit registers f for the user's batch being sent.
func (h *commitHooks) onCommit(userID int64, f func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.m == nil {
		h.m = map[int64][]func(){}
	}
	h.m[userID] = append(h.m[userID], f)
}

// take removes and returns the user's hooks, and forgets its skipFeeds.
func (h *commitHooks) take(userID int64) []func() {
	h.mu.Lock()
	defer h.mu.Unlock()
	fs := h.m[userID]
	delete(h.m, userID)
	delete(h.unfed, userID)
	return fs
}

// afterRestart runs on every new database connection (pgxpool
// AfterConnect). A lazy change lost in a crash may have drawn modseqs that
// sessions saw (their notifications went out at its COMMIT), and the
// sequence, whose WAL its COMMIT did not wait for, may give them out again;
// a client holding such a modseq would then miss the change that reuses
// it. So the first connection after Postgres (re)started moves modseq_seq
// a million past its value, once per start (pg_postmaster_start_time,
// remembered in the configuration table), under an advisory lock; later
// connections only compare. Modseqs need not be dense.
func afterRestart(ctx context.Context, c *pgx.Conn) error {
	_, err := c.Exec(ctx, `DO $$
	BEGIN
		IF (SELECT value FROM configuration WHERE key = 'modseq_epoch') IS DISTINCT FROM pg_postmaster_start_time()::text THEN
			PERFORM pg_advisory_xact_lock(4242001);
			IF (SELECT value FROM configuration WHERE key = 'modseq_epoch') IS DISTINCT FROM pg_postmaster_start_time()::text THEN
				PERFORM setval('modseq_seq', (SELECT last_value FROM modseq_seq) + 1000000);
				INSERT INTO configuration (key, value) VALUES ('modseq_epoch', pg_postmaster_start_time()::text)
					ON CONFLICT (key) DO UPDATE SET value = excluded.value;
			END IF;
		END IF;
	END $$`)
	return err
}
