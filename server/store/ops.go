package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// What an operator's monitoring reads (server/metrics): the state of the
// connection pools, the work waiting in the database, and whether the
// database answers. Each call is cheap enough for a scrape every few
// seconds; none changes anything.

// String names the class as the metrics label it ("sessions", "delivery", "background").
func (c Class) String() string {
	switch c {
	case ClassSessions:
		return "sessions"
	case ClassDelivery:
		return "delivery"
	case ClassBackground:
		return "background"
	}
	return "unknown"
}

// Classes lists the pool classes, in order.
var Classes = []Class{ClassSessions, ClassDelivery, ClassBackground}

// PoolStat is the pgxpool statistics of class c's pool.
func (s *Store) PoolStat(c Class) *pgxpool.Stat { return s.pool.pools[c].Stat() }

// Backlog is the work waiting in the database.
type Backlog struct {
	Queued         int64         // messages in the outbound queue
	OldestQueued   time.Duration // age of the oldest of them; 0 when none
	UnindexedTexts int64         // message_texts not yet indexed (indexer.go)
}

// Backlog reads the outbound queue's depth and age and the indexer's
// backlog in one statement (the count of unindexed texts reads the partial
// index message_texts_unindexed). It uses the background pool: a scrape
// never takes a connection from a session or a delivery.
func (s *Store) Backlog(ctx context.Context) (Backlog, error) {
	var b Backlog
	var oldest float64
	err := s.pool.QueryRow(WithClass(ctx, ClassBackground), `SELECT
		(SELECT count(*) FROM outbound_queue),
		coalesce((SELECT extract(epoch FROM now() - min(created_at)) FROM outbound_queue), 0)::float8,
		(SELECT count(*) FROM message_texts WHERE NOT indexed)`).Scan(&b.Queued, &oldest, &b.UnindexedTexts)
	b.OldestQueued = time.Duration(oldest * float64(time.Second))
	return b, wrap("backlog", err)
}

// Ping runs SELECT 1 on a sessions connection: it fails when the database
// is gone, or when no connection for a session can be had (ErrBusy), which
// is what the users would meet too.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	return wrap("ping", s.pool.QueryRow(ctx, `SELECT 1`).Scan(&one))
}
