package schema_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"decimail/schema"
	"decimail/server/pgrun"
)

func TestMain(m *testing.M) { os.Exit(pgrun.RunTests(m)) }

// emptyDB returns a connection to a new, empty database (no migrations).
func emptyDB(t *testing.T) *pgx.Conn {
	t.Helper()
	ctx := context.Background()
	inst, _, err := pgrun.Shared(ctx)
	if err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("t_schema_%d", os.Getpid())
	dsn, err := pgrun.CloneDB(ctx, inst.DSN, "template0", name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pgrun.DropDB(context.Background(), inst.DSN, name) })
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// TestMigrateKeepsTexts: a database with mail at version 1 (text in
// messages) migrates to message_texts without losing a message's text, and
// that text is indexed and searchable at once; deleting the message deletes it.
func TestMigrateKeepsTexts(t *testing.T) {
	ctx := context.Background()
	c := emptyDB(t)
	ms, err := schema.All()
	if err != nil {
		t.Fatal(err)
	}
	if ms[0].Version != 1 || ms[1].Version != 2 {
		t.Fatalf("migrations %v: want 0001 and 0002 first", ms)
	}
	// Version 1, applied as Migrate would have, and two messages in it.
	for _, q := range []string{
		`CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`,
		ms[0].SQL,
		`INSERT INTO schema_migrations (version, name) VALUES (1, '0001_init.sql')`,
		`INSERT INTO users (name, password_hash) VALUES ('u', 'x')`,
		`INSERT INTO messages (user_id, internal_date, internal_day, size, header, body, envelope, bodystructure, body_simple,
			thread_id, header_text, body_text)
		 SELECT 1, now(), current_date, 10, '', '', '', '', '', 1, 'Subject: old ' || i || E'\n', 'kept body ' || i
		 FROM generate_series(1, 2) i`,
	} {
		if _, err := c.Exec(ctx, q); err != nil {
			t.Fatalf("%.60s…: %v", q, err)
		}
	}
	applied, err := schema.Migrate(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(applied, "0002_message_texts.sql") {
		t.Fatalf("applied %v", applied)
	}
	type text struct {
		ID      int64
		Indexed bool
		Header  string
		Body    string
	}
	rows, _ := c.Query(ctx, `SELECT message_id, indexed, header_text, body_text FROM message_texts ORDER BY 1`)
	got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[text])
	if err != nil {
		t.Fatal(err)
	}
	want := []text{{1, true, "Subject: old 1\n", "kept body 1"}, {2, true, "Subject: old 2\n", "kept body 2"}}
	if !slices.Equal(got, want) {
		t.Fatalf("message_texts after the migration:\n got %v\nwant %v", got, want)
	}
	// The indexed half of a search finds it through the trigram index.
	if _, err := c.Exec(ctx, `SET enable_seqscan = off`); err != nil {
		t.Fatal(err)
	}
	const q = `SELECT message_id FROM message_texts WHERE indexed AND body_text ILIKE '%body 2%'`
	rows, _ = c.Query(ctx, `EXPLAIN `+q)
	plan, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || !strings.Contains(strings.Join(plan, "\n"), "message_texts_body_trgm") {
		t.Fatalf("plan of %s: %v %v", q, plan, err)
	}
	var id int64
	if err := c.QueryRow(ctx, q).Scan(&id); err != nil || id != 2 {
		t.Fatalf("%s: %d, %v", q, id, err)
	}
	if _, err := c.Exec(ctx, `DELETE FROM messages WHERE id = 1`); err != nil {
		t.Fatal(err)
	}
	var n int
	c.QueryRow(ctx, `SELECT count(*) FROM message_texts`).Scan(&n)
	if n != 1 {
		t.Fatalf("%d texts after deleting one of two messages, want 1", n)
	}
}
