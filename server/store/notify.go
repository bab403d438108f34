package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// Notifier holds the process's ONE listening connection (LISTEN decimail) and
// fans notifications out to subscribed sessions by mailbox id. Sessions hold
// no database connection.
//
// A session may skip reading the store when its subscription was not
// signalled since its last read (issue 15: NOOP, CHECK and FETCH of kept
// data answered without a round trip). That is exact because every change
// that a session's view must show is signalled before anyone can act on it:
//   - a change made through this process's store (every change of a user's
//     mail passes the user's gate, gate.go) signals the user's subscriptions
//     when it leaves the gate, after COMMIT and before the command that made
//     it answers (Touch);
//   - a change by another process arrives through LISTEN; Postgres sends the
//     NOTIFY of the mailbox-changing triggers at COMMIT (this process's own
//     come back too, and are skipped: schema 0024, Notifier.origin);
//   - while the listening connection is down, Listening is false and
//     sessions read the store every time; a reconnect signals everyone
//     (notifications sent while disconnected are lost);
//   - a subscription made after a snapshot (SELECT) is signalled at once
//     when a notification for its mailbox or user arrived after Gen was
//     taken, before the snapshot (Subscribe's since).
type Notifier struct {
	conn *pgx.ConnConfig // its own connection, drawn from no pool
	log  *slog.Logger
	// origin names this process's store in its changes' notifications
	// (schema 0024): the listener skips those, as every such change
	// signalled the user's sessions when it left the user's gate (Touch),
	// or changed nothing they show (a \Recent claim, marked for Fresh).
	origin  string
	skipped atomic.Int64 // own notifications skipped

	mu        sync.Mutex
	subs      map[int64]map[*Subscription]struct{}
	byUser    map[int64]map[int64]struct{} // user -> the mailboxes in subs: Touch and mailboxesOf read one user's
	cfgSubs   map[chan struct{}]struct{}   // notify_config.go
	started   bool
	listening bool
	cancel    context.CancelFunc
	done      chan struct{}
	ready     chan struct{}
	// gen counts signals; lastMB and lastUser hold the gen of the last
	// signal of a mailbox and of a user (Touch); floor is the gen below
	// which nothing is known (the listener's last (re)connect, or when the
	// maps were cleared at maxRemembered entries).
	gen, floor       uint64
	lastMB, lastUser map[int64]uint64
	lastRecent       map[int64]uint64         // mark: \Recent claims, by mailbox
	barriers         map[string]chan struct{} // Barrier's waiters by token
	barrierSeq       atomic.Int64
}

// maxRemembered bounds lastMB and lastUser: past it they are cleared and
// floor raised, which only makes new subscriptions read once more.
const maxRemembered = 100_000

// Subscription receives a signal (capacity 1, never blocks the notifier).
type Subscription struct {
	C                 chan struct{}
	n                 *Notifier
	mailboxID, userID int64
}

func newNotifier(conn *pgx.ConnConfig, log *slog.Logger) *Notifier {
	var r [8]byte
	rand.Read(r[:])
	return &Notifier{conn: conn.Copy(), log: log, subs: map[int64]map[*Subscription]struct{}{}, byUser: map[int64]map[int64]struct{}{},
		ready:  make(chan struct{}),
		lastMB: map[int64]uint64{}, lastUser: map[int64]uint64{}, lastRecent: map[int64]uint64{}, origin: hex.EncodeToString(r[:])}
}

// Notifier returns the store's notifier.
func (s *Store) Notifier() *Notifier { return s.notif }

// Gen is the notifier's signal count: taken before a snapshot of a mailbox,
// it is Subscribe's since.
func (n *Notifier) Gen() uint64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.gen
}

// Listening reports whether the listening connection is up: while it is
// not, changes by other processes are not signalled.
func (n *Notifier) Listening() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.listening
}

// Subscribe signals the subscription whenever mailbox (of user) changes, and
// at once when it may have changed after since (a Gen taken before the
// caller's snapshot). The first subscription starts the listener and waits
// (briefly) until it is listening.
func (n *Notifier) Subscribe(userID, mailboxID int64, since uint64) *Subscription {
	return n.SubscribeTo(userID, mailboxID, since, make(chan struct{}, 1))
}

// SubscribeTo is Subscribe signalling ch (capacity 1), which several
// subscriptions may share (NOTIFY watches many mailboxes).
func (n *Notifier) SubscribeTo(userID, mailboxID int64, since uint64, ch chan struct{}) *Subscription {
	sub := &Subscription{C: ch, n: n, mailboxID: mailboxID, userID: userID}
	n.mu.Lock()
	if n.subs[mailboxID] == nil {
		n.subs[mailboxID] = map[*Subscription]struct{}{}
	}
	n.subs[mailboxID][sub] = struct{}{}
	if n.byUser[userID] == nil {
		n.byUser[userID] = map[int64]struct{}{}
	}
	n.byUser[userID][mailboxID] = struct{}{}
	ready := n.startLocked()
	n.mu.Unlock()
	select {
	case <-ready:
	case <-time.After(5 * time.Second):
	}
	n.mu.Lock()
	if n.floor > since || n.lastMB[mailboxID] > since || n.lastUser[userID] > since {
		select {
		case sub.C <- struct{}{}:
		default: // signalled already
		}
	}
	n.mu.Unlock()
	return sub
}

// startLocked starts the listener once (under mu) and returns the channel
// closed when it first listens.
func (n *Notifier) startLocked() (ready chan struct{}) {
	if !n.started {
		n.started = true
		ctx, cancel := context.WithCancel(context.Background())
		n.cancel, n.done = cancel, make(chan struct{})
		go n.run(ctx)
	}
	return n.ready
}

// barrierChannel carries Barrier's tokens.
const barrierChannel = "decimail_barrier"

// Barrier returns once every notification committed before it was called
// has been dispatched to this process's subscriptions: it sends a token on
// barrierChannel and waits for the listener to receive it (Postgres
// delivers notifications in commit order). A reconnect of the listener
// releases waiters too (it signals every subscription). For tests and
// tools that must know a session has been told what another process did;
// sessions themselves never wait for it.
func (s *Store) Barrier(ctx context.Context) error {
	n := s.notif
	token := strconv.FormatInt(n.barrierSeq.Add(1), 10) + "." + strconv.Itoa(os.Getpid()) + "." + strconv.FormatInt(time.Now().UnixNano(), 36)
	ch := make(chan struct{})
	n.mu.Lock()
	ready := n.startLocked()
	if n.barriers == nil {
		n.barriers = map[string]chan struct{}{}
	}
	n.barriers[token] = ch
	n.mu.Unlock()
	defer func() {
		n.mu.Lock()
		delete(n.barriers, token)
		n.mu.Unlock()
	}()
	select {
	case <-ready:
	case <-ctx.Done():
		return ctx.Err()
	}
	if _, err := s.pool.Exec(ctx, `SELECT pg_notify($1, $2)`, barrierChannel, token); err != nil {
		return err
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// releaseBarriers releases the waiters of token, or all (under mu).
func (n *Notifier) releaseBarriers(token string, all bool) {
	for k, ch := range n.barriers {
		if all || k == token {
			close(ch)
			delete(n.barriers, k)
		}
	}
}

// Touch signals every subscription of the user's mailboxes: a change of the
// user's mail committed by this process (the user's gate calls it on leaving).
func (n *Notifier) Touch(userID int64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.touchLocked(userID)
}

// touchLocked is Touch under mu.
func (n *Notifier) touchLocked(userID int64) {
	n.gen++
	n.remember(n.lastUser, userID)
	for id := range n.byUser[userID] {
		for s := range n.subs[id] {
			select {
			case s.C <- struct{}{}:
			default:
			}
		}
	}
}

// Fresh reports whether nothing of the user's or of the mailbox may have
// changed since gen (a Gen taken before a read of the mailbox): the
// listener is up, was up when gen was taken, and neither was signalled
// since. The status cache relies on it (statuscache.go).
func (n *Notifier) Fresh(userID, mailboxID int64, gen uint64) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.freshLocked(userID, mailboxID, gen) && n.lastRecent[mailboxID] <= gen
}

// freshLocked is Fresh (under mu) leaving out \Recent claims (mark): what
// a read of a mailbox's changes (sharedpoll.go) depends on, as a claim
// changes none of them.
func (n *Notifier) freshLocked(userID, mailboxID int64, gen uint64) bool {
	return n.listening && n.floor <= gen && n.lastMB[mailboxID] <= gen && n.lastUser[userID] <= gen
}

// mailboxesOf returns up to limit mailboxes of the user that sessions of
// this process subscribe to.
// hasUser reports whether a session of the process follows a mailbox of
// the user.
func (n *Notifier) hasUser(userID int64) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.byUser[userID]) > 0
}

func (n *Notifier) mailboxesOf(userID int64, limit int) []int64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	var ids []int64
	for id := range n.byUser[userID] {
		if len(ids) == limit {
			break
		}
		ids = append(ids, id)
	}
	return ids
}

// Start starts the listener if it is not running, without waiting.
func (n *Notifier) Start() {
	n.mu.Lock()
	n.startLocked()
	n.mu.Unlock()
}

// mark records a change of mailbox made by this process outside a user's
// gate (a \Recent claim) for Fresh, without signalling subscriptions: its
// NOTIFY reaches them.
func (n *Notifier) mark(mailboxID int64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.gen++
	n.remember(n.lastRecent, mailboxID)
}

// remember records n.gen for id in m (under mu).
func (n *Notifier) remember(m map[int64]uint64, id int64) {
	if len(m) >= maxRemembered {
		clear(n.lastMB)
		clear(n.lastUser)
		clear(n.lastRecent)
		n.floor = n.gen
	}
	m[id] = n.gen
}

// Close unsubscribes.
func (s *Subscription) Close() {
	n := s.n
	n.mu.Lock()
	delete(n.subs[s.mailboxID], s)
	if len(n.subs[s.mailboxID]) == 0 {
		delete(n.subs, s.mailboxID)
		delete(n.byUser[s.userID], s.mailboxID)
		if len(n.byUser[s.userID]) == 0 {
			delete(n.byUser, s.userID)
		}
	}
	n.mu.Unlock()
}

func (n *Notifier) signal(mailboxID int64, all bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.gen++
	if all {
		n.floor = n.gen
	} else {
		n.remember(n.lastMB, mailboxID)
	}
	for id, set := range n.subs {
		if !all && id != mailboxID {
			continue
		}
		for s := range set {
			select {
			case s.C <- struct{}{}:
			default:
			}
		}
	}
}

func (n *Notifier) run(ctx context.Context) {
	defer close(n.done)
	first := true
	for ctx.Err() == nil {
		conn, err := pgx.ConnectConfig(ctx, n.conn.Copy())
		if err == nil {
			_, err = conn.Exec(ctx, "LISTEN decimail; LISTEN "+barrierChannel+"; LISTEN "+ConfigChannel)
		}
		if err != nil {
			if conn != nil {
				conn.Close(context.Background())
			}
			n.log.Warn("notifier: cannot listen, retrying", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		n.mu.Lock()
		n.listening = true
		n.releaseBarriers("", true) // their tokens may have been sent while down
		n.mu.Unlock()
		// Everyone reads again: after a reconnect notifications were lost;
		// before the first, sessions that subscribed meanwhile missed some.
		n.signal(0, true)
		if first {
			close(n.ready)
			first = false
		} else {
			n.signalConfig() // a change may have been missed
		}
		for {
			nt, err := conn.WaitForNotification(ctx)
			if err != nil {
				break
			}
			if nt.Channel == barrierChannel {
				n.mu.Lock()
				n.releaseBarriers(nt.Payload, false)
				n.mu.Unlock()
				continue
			}
			if nt.Channel == ConfigChannel {
				n.signalConfig()
				continue
			}
			payload, origin, _ := strings.Cut(nt.Payload, "/")
			if origin == n.origin {
				n.skipped.Add(1)
				continue
			}
			id, _ := strconv.ParseInt(payload, 10, 64)
			n.signal(id, false)
		}
		n.mu.Lock()
		n.listening = false
		n.mu.Unlock()
		conn.Close(context.Background())
		if ctx.Err() == nil {
			n.log.Warn("notifier: connection lost, reconnecting")
		}
	}
}

func (n *Notifier) close() {
	n.mu.Lock()
	cancel, done := n.cancel, n.done
	n.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

// follows returns the mailboxes of the user this process's sessions follow.
func (n *Notifier) follows(userID int64) map[int64]bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make(map[int64]bool, len(n.byUser[userID]))
	for id := range n.byUser[userID] {
		out[id] = true
	}
	return out
}
