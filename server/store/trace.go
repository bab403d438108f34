package store

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// sqlTracer prints every statement with its duration to stderr when
// DECIMAIL_SQL_TRACE is set: the quickest way to see where a command's time
// goes (then EXPLAIN ANALYZE the slow statement).
type sqlTracer struct{}

type traceKey struct{}

type traceStart struct {
	sql   string
	start time.Time
}

func (sqlTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	return context.WithValue(ctx, traceKey{}, traceStart{d.SQL, time.Now()})
}

func (sqlTracer) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryEndData) {
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

func (sqlTracer) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	return context.WithValue(ctx, traceKey{}, traceStart{"batch", time.Now()})
}

// TraceBatchQuery prints each statement of a batch as its result is read
// (durations are since the batch was sent: cumulative).
func (sqlTracer) TraceBatchQuery(ctx context.Context, _ *pgx.Conn, d pgx.TraceBatchQueryData) {
	st, _ := ctx.Value(traceKey{}).(traceStart)
	traceLine(st.start, d.Err, "batch: ", d.SQL)
}

func (sqlTracer) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}
