package store

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// Notifier holds the process's ONE listening connection (LISTEN decimail) and
// fans notifications out to subscribed sessions by mailbox id. A signal is a
// hint: subscribers re-read changes by modseq, so a lost notification only
// delays. After a reconnect every subscriber is signalled (notifications sent
// while disconnected are lost). Sessions hold no database connection.
type Notifier struct {
	conn *pgx.ConnConfig // its own connection, drawn from no pool
	log  *slog.Logger

	mu      sync.Mutex
	subs    map[int64]map[*Subscription]struct{}
	cfgSubs map[chan struct{}]struct{} // notify_config.go
	started bool
	cancel  context.CancelFunc
	done    chan struct{}
	ready   chan struct{}
}

// Subscription receives a signal (capacity 1, never blocks the notifier).
type Subscription struct {
	C         chan struct{}
	n         *Notifier
	mailboxID int64
}

func newNotifier(conn *pgx.ConnConfig, log *slog.Logger) *Notifier {
	return &Notifier{conn: conn.Copy(), log: log, subs: map[int64]map[*Subscription]struct{}{}, ready: make(chan struct{})}
}

// Notifier returns the store's notifier.
func (s *Store) Notifier() *Notifier { return s.notif }

// Subscribe signals the subscription whenever mailbox changes. The first
// subscription starts the listener and waits (briefly) until it is listening.
func (n *Notifier) Subscribe(mailboxID int64) *Subscription {
	sub := &Subscription{C: make(chan struct{}, 1), n: n, mailboxID: mailboxID}
	n.mu.Lock()
	if n.subs[mailboxID] == nil {
		n.subs[mailboxID] = map[*Subscription]struct{}{}
	}
	n.subs[mailboxID][sub] = struct{}{}
	ready := n.startLocked()
	n.mu.Unlock()
	select {
	case <-ready:
	case <-time.After(5 * time.Second):
	}
	return sub
}

// startLocked starts the listener once; n.mu is held.
func (n *Notifier) startLocked() (ready chan struct{}) {
	if !n.started {
		n.started = true
		ctx, cancel := context.WithCancel(context.Background())
		n.cancel, n.done = cancel, make(chan struct{})
		go n.run(ctx)
	}
	return n.ready
}

// Close unsubscribes.
func (s *Subscription) Close() {
	n := s.n
	n.mu.Lock()
	delete(n.subs[s.mailboxID], s)
	if len(n.subs[s.mailboxID]) == 0 {
		delete(n.subs, s.mailboxID)
	}
	n.mu.Unlock()
}

func (n *Notifier) signal(mailboxID int64, all bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
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
			_, err = conn.Exec(ctx, "LISTEN decimail; LISTEN "+ConfigChannel)
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
		if first {
			close(n.ready)
			first = false
		} else {
			n.signal(0, true) // resync everyone after a reconnect
			n.signalConfig()
		}
		for {
			nt, err := conn.WaitForNotification(ctx)
			if err != nil {
				break
			}
			if nt.Channel == ConfigChannel {
				n.signalConfig()
				continue
			}
			id, _ := strconv.ParseInt(nt.Payload, 10, 64)
			n.signal(id, false)
		}
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
