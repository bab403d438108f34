package store

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// sqlTracer counts the round trips to Postgres (a statement or a batch:
// RoundTrips) and, when DECIMAIL_SQL_TRACE is set (print), prints every
// statement with its duration to stderr: the quickest way to see where a
// command's time goes (then EXPLAIN ANALYZE the slow statement).
type sqlTracer struct {
	print bool
	n     *atomic.Int64
}

// RoundTrips is the number of statements and batches this store's
// connections have sent to Postgres: tests use it to prove a command
// answered without one (issue 15).
func (s *Store) RoundTrips() int64 { return s.trips.Load() }

// WithRoundTrips returns a context whose statements and batches sent to
// Postgres are also counted in n: a test counts one call's round trips, not
// those of the store's background work (the indexer) meanwhile.
func WithRoundTrips(ctx context.Context, n *atomic.Int64) context.Context {
	return context.WithValue(ctx, countKey{}, n)
}

type countKey struct{}

// counted adds a round trip to the counter of ctx, if it has one.
func counted(ctx context.Context) {
	if n, ok := ctx.Value(countKey{}).(*atomic.Int64); ok {
		n.Add(1)
	}
}

type traceKey struct{}

type traceStart struct {
	sql   string
	start time.Time
}

func (t sqlTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	t.n.Add(1)
	counted(ctx)
	if !t.print {
		return ctx
	}
	return context.WithValue(ctx, traceKey{}, traceStart{d.SQL, time.Now()})
}

func (t sqlTracer) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryEndData) {
	if !t.print {
		return
	}
	st, _ := ctx.Value(traceKey{}).(traceStart)
	traceLine(st.start, d.Err, "", st.sql)
}

// traceLine prints one statement: time since start, success, the SQL on one
// line (shortened).
func traceLine(start time.Time, err error, prefix, sql string) {
	q := strings.Join(strings.Fields(sql), " ")
	if len(q) > 160 {
		q = q[:160] + "…"
	}
	fmt.Fprintf(os.Stderr, "sql %8.2fms %-6v %s%s\n", float64(time.Since(start).Microseconds())/1000, err == nil, prefix, q)
}

func (t sqlTracer) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	t.n.Add(1)
	counted(ctx)
	if !t.print {
		return ctx
	}
	return context.WithValue(ctx, traceKey{}, traceStart{"batch", time.Now()})
}

// TraceBatchQuery prints each statement of a batch as its result is read
// (durations are since the batch was sent: cumulative).
func (t sqlTracer) TraceBatchQuery(ctx context.Context, _ *pgx.Conn, d pgx.TraceBatchQueryData) {
	if !t.print {
		return
	}
	st, _ := ctx.Value(traceKey{}).(traceStart)
	traceLine(st.start, d.Err, "batch: ", d.SQL)
}

func (sqlTracer) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}
