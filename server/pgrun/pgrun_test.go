package pgrun

import (
	"context"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { os.Exit(RunTests(m)) }

// The fresh database is migrated and isolated from the next one.
func TestTestDBIsMigratedAndIsolated(t *testing.T) {
	ctx := context.Background()
	a, b := TestDB(t), TestDB(t)
	ca, err := pgx.Connect(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close(ctx)
	if _, err := ca.Exec(ctx, `INSERT INTO users (name, password_hash) VALUES ('x', 'h')`); err != nil {
		t.Fatal(err)
	}
	cb, err := pgx.Connect(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	defer cb.Close(ctx)
	var n int
	if err := cb.QueryRow(ctx, `SELECT count(*) FROM users`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("second database sees %d users of the first", n)
	}
	var ext string
	if err := cb.QueryRow(ctx, `SELECT extname FROM pg_extension WHERE extname = 'pg_trgm'`).Scan(&ext); err != nil {
		t.Fatalf("pg_trgm not installed: %v", err)
	}
}

// Without Docker the testcontainers path must fail fast and cleanly.
func TestContainerPathFallsBack(t *testing.T) {
	inst, err := startContainer(context.Background())
	if err == nil {
		inst.Stop() // a Docker engine answered: fine too
		return
	}
	if inst != nil {
		t.Fatal("error with a non-nil instance")
	}
}

func TestWithDatabase(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://u:p@h:5/postgres?sslmode=disable": "postgres://u:p@h:5/x?sslmode=disable",
		"postgres://u@h/":                  "postgres://u@h/x",
		"host=/tmp port=5 dbname=postgres": "host=/tmp port=5 dbname=postgres dbname=x",
	} {
		got, err := WithDatabase(in, "x")
		if err != nil || got != want {
			t.Errorf("WithDatabase(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}
