// Package schema holds Decimail's SQL migrations (numbered files NNNN_name.sql,
// embedded into the binary) and applies them: all pending migrations in one
// transaction, serialised across processes by an advisory lock, each recorded
// in schema_migrations. Applied migrations are never edited; add a new file.
// A migration may have a Go step (fold.go: steps), run right after its SQL
// in the same transaction, for data only Go can compute.
package schema

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

//go:embed *.sql
var files embed.FS

// Migration is one numbered SQL file.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// All returns the migrations in version order.
func All() ([]Migration, error) {
	names, err := fs.Glob(files, "*.sql")
	if err != nil {
		return nil, err
	}
	var ms []Migration
	for _, n := range names {
		v, err := strconv.Atoi(strings.SplitN(n, "_", 2)[0])
		if err != nil {
			return nil, fmt.Errorf("schema: %s: name must start with a number", n)
		}
		b, err := files.ReadFile(n)
		if err != nil {
			return nil, err
		}
		ms = append(ms, Migration{Version: v, Name: n, SQL: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Version < ms[j].Version })
	for i := 1; i < len(ms); i++ {
		if ms[i].Version == ms[i-1].Version {
			return nil, fmt.Errorf("schema: two migrations numbered %d", ms[i].Version)
		}
	}
	return ms, nil
}

// Migrate applies every pending migration in one transaction and returns the
// names applied.
func Migrate(ctx context.Context, conn *pgx.Conn) ([]string, error) { return MigrateTo(ctx, conn, 0) }

// MigrateTo is Migrate up to and including version upto (0: all); tests use
// it to make a database as an older version left it.
func MigrateTo(ctx context.Context, conn *pgx.Conn, upto int) ([]string, error) {
	ms, err := All()
	if err != nil {
		return nil, err
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(7406153)`); err != nil {
		return nil, err
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return nil, err
	}
	done := map[int]bool{}
	rows, err := tx.Query(ctx, `SELECT version FROM schema_migrations`)
	if err != nil {
		return nil, err
	}
	vs, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return nil, err
	}
	for _, v := range vs {
		done[int(v)] = true
	}
	var applied []string
	for _, m := range ms {
		if done[m.Version] || (upto > 0 && m.Version > upto) {
			continue
		}
		if _, err := tx.Exec(ctx, m.SQL); err != nil {
			return nil, fmt.Errorf("schema: %s: %w", m.Name, err)
		}
		if step := steps[m.Version]; step != nil {
			if err := step(ctx, tx); err != nil {
				return nil, fmt.Errorf("schema: %s: %w", m.Name, err)
			}
		}
		if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, m.Version, m.Name); err != nil {
			return nil, err
		}
		applied = append(applied, m.Name)
	}
	return applied, tx.Commit(ctx)
}

// State is a migration and whether it is applied.
type State struct {
	Migration
	Applied   bool
	AppliedAt time.Time
	GoStep    bool // the migration runs Go code after its SQL (fold.go)
	Unknown   bool // applied, but this binary does not have it (a newer version migrated the database)
}

// Status returns every migration with its state, in version order: this
// binary's migrations, and any applied one it does not know.
func Status(ctx context.Context, conn *pgx.Conn) ([]State, error) {
	ms, err := All()
	if err != nil {
		return nil, err
	}
	applied := map[int]State{}
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT to_regclass('schema_migrations') IS NOT NULL`).Scan(&exists); err != nil {
		return nil, err
	}
	if exists {
		rows, err := conn.Query(ctx, `SELECT version, name, applied_at FROM schema_migrations`)
		if err != nil {
			return nil, err
		}
		var v int32
		var name string
		var at time.Time
		if _, err := pgx.ForEachRow(rows, []any{&v, &name, &at}, func() error {
			applied[int(v)] = State{Migration: Migration{Version: int(v), Name: name}, Applied: true, AppliedAt: at, Unknown: true}
			return nil
		}); err != nil {
			return nil, err
		}
	}
	var out []State
	for _, m := range ms {
		st := State{Migration: m, GoStep: steps[m.Version] != nil}
		if a, ok := applied[m.Version]; ok {
			st.Applied, st.AppliedAt = true, a.AppliedAt
			delete(applied, m.Version)
		}
		out = append(out, st)
	}
	for _, a := range applied {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}
