package store

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Class names the work a store call does for, and so the connection pool it
// uses. Each class has its own pool, so that a full house of IMAP sessions
// never holds up a delivery, and neither holds up the indexer's or the delete
// daemon's connection. The notifier's LISTEN connection is separate from all
// three (notify.go).
type Class int

const (
	ClassSessions   Class = iota // IMAP sessions and the admin commands (the default)
	ClassDelivery                // SMTP inbound and submission, the relay worker
	ClassBackground              // the text indexer and the delete daemon
)

type classKey struct{}

// WithClass marks ctx: store calls made with it use the class's pool.
func WithClass(ctx context.Context, c Class) context.Context {
	return context.WithValue(ctx, classKey{}, c)
}

func classOf(ctx context.Context) Class {
	c, _ := ctx.Value(classKey{}).(Class)
	return c
}

// Errors a daemon maps to a temporary reply. Both say "not now", never "bug".
var (
	// ErrBusy: no database connection became free within the acquire
	// timeout (every connection of the class's pool was in use).
	ErrBusy = errors.New("store: database busy, no connection free")
	// ErrTooSlow: a statement ran past the statement timeout and was
	// cancelled by Postgres (SQLSTATE 57014 without the caller cancelling).
	ErrTooSlow = errors.New("store: statement timeout")
)

// db is the store's access to Postgres: one pool per class, chosen by the
// context (WithClass), each acquire bounded by acquireTimeout. Its methods
// mirror pgxpool.Pool's, so store code reads s.pool.Query(ctx, …) whatever
// the class; a connection goes back to its pool when the rows are read or
// closed, the row scanned, the batch or transaction ended.
type db struct {
	pools          [3]*pgxpool.Pool
	acquireTimeout time.Duration
}

func (d *db) pool(ctx context.Context) *pgxpool.Pool { return d.pools[classOf(ctx)] }

// Config is the sessions pool's configuration (tests open more stores on it).
func (d *db) Config() *pgxpool.Config { return d.pools[ClassSessions].Config() }

func (d *db) Close() { d.closeOpen() }

func (d *db) closeOpen() {
	for _, p := range d.pools {
		if p != nil {
			p.Close()
		}
	}
}

func (d *db) acquire(ctx context.Context) (*pgxpool.Conn, error) {
	actx, cancel := context.WithTimeout(ctx, d.acquireTimeout)
	defer cancel()
	c, err := d.pool(ctx).Acquire(actx)
	if err != nil && ctx.Err() == nil && actx.Err() != nil {
		return nil, ErrBusy
	}
	return c, err
}

// Acquire takes a connection of the context's class; release it.
func (d *db) Acquire(ctx context.Context) (*pgxpool.Conn, error) { return d.acquire(ctx) }

func (d *db) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	c, err := d.acquire(ctx)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	defer c.Release()
	tag, err := c.Exec(ctx, sql, args...)
	return tag, classify(ctx, err)
}

func (d *db) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	c, err := d.acquire(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := c.Query(ctx, sql, args...)
	if err != nil {
		c.Release()
		return nil, classify(ctx, err)
	}
	return &connRows{Rows: rows, ctx: ctx, release: sync.OnceFunc(c.Release)}, nil
}

func (d *db) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	c, err := d.acquire(ctx)
	if err != nil {
		return errRow{err}
	}
	return &connRow{row: c.QueryRow(ctx, sql, args...), ctx: ctx, c: c}
}

func (d *db) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	c, err := d.acquire(ctx)
	if err != nil {
		return errBatch{err}
	}
	return &connBatch{BatchResults: c.SendBatch(ctx, b), ctx: ctx, release: sync.OnceFunc(c.Release)}
}

func (d *db) Begin(ctx context.Context) (pgx.Tx, error) { return d.BeginTx(ctx, pgx.TxOptions{}) }

func (d *db) BeginTx(ctx context.Context, o pgx.TxOptions) (pgx.Tx, error) {
	c, err := d.acquire(ctx)
	if err != nil {
		return nil, err
	}
	tx, err := c.BeginTx(ctx, o)
	if err != nil {
		c.Release()
		return nil, classify(ctx, err)
	}
	return &connTx{Tx: tx, ctx: ctx, release: sync.OnceFunc(c.Release)}, nil
}

// classify turns a statement timeout into ErrTooSlow (keeping the cause).
func classify(ctx context.Context, err error) error {
	var pe *pgconn.PgError
	if err != nil && ctx.Err() == nil && errors.As(err, &pe) && pe.Code == "57014" {
		return errors.Join(ErrTooSlow, err)
	}
	return err
}

type connRows struct {
	pgx.Rows
	ctx     context.Context
	release func()
}

func (r *connRows) Next() bool {
	if r.Rows.Next() {
		return true
	}
	r.release() // pgx closed the rows at their end
	return false
}

func (r *connRows) Close() { r.Rows.Close(); r.release() }

func (r *connRows) Err() error { return classify(r.ctx, r.Rows.Err()) }

type connRow struct {
	row pgx.Row
	ctx context.Context
	c   *pgxpool.Conn
}

func (r *connRow) Scan(dest ...any) error {
	defer r.c.Release()
	return classify(r.ctx, r.row.Scan(dest...))
}

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

type connBatch struct {
	pgx.BatchResults
	ctx     context.Context
	release func()
}

func (b *connBatch) Close() error {
	defer b.release()
	return classify(b.ctx, b.BatchResults.Close())
}

type errBatch struct{ err error }

func (b errBatch) Exec() (pgconn.CommandTag, error) { return pgconn.CommandTag{}, b.err }
func (b errBatch) Query() (pgx.Rows, error)         { return nil, b.err }
func (b errBatch) QueryRow() pgx.Row                { return errRow(b) }
func (b errBatch) Close() error                     { return b.err }
func (b errBatch) Tx() pgx.Tx                       { return nil }

// connTx gives its connection back when the transaction ends.
type connTx struct {
	pgx.Tx
	ctx     context.Context
	release func()
}

func (t *connTx) Commit(ctx context.Context) error {
	defer t.release()
	return classify(t.ctx, t.Tx.Commit(ctx))
}

func (t *connTx) Rollback(ctx context.Context) error {
	defer t.release()
	return t.Tx.Rollback(ctx)
}
