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
	"decimail/server/query"
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

// TestMigrateFoldsTexts: texts stored before 0008 are folded by its Go step
// (query.Fold), so a search, which folds its value, finds them; rows of
// ASCII text are left as they are (ILIKE folds ASCII); more rows than one
// batch are all reached.
func TestMigrateFoldsTexts(t *testing.T) {
	ctx := context.Background()
	c := emptyDB(t)
	if _, err := schema.MigrateTo(ctx, c, 7); err != nil { // as version 7 left it
		t.Fatal(err)
	}
	// 600 messages (more than a batch): odd ones with German and Greek text.
	for _, q := range []string{
		`INSERT INTO users (name, password_hash) VALUES ('u', 'x')`,
		`INSERT INTO messages (user_id, internal_date, internal_day, size, header, body, envelope, bodystructure, body_simple,
			thread_id, subject, from_addr)
		 SELECT 1, now(), current_date, 10, '', '', '', '', '', 1,
			CASE WHEN i % 2 = 1 THEN 'Flug nach MÜNCHEN ' || i ELSE 'Plain ASCII ' || i END,
			CASE WHEN i % 2 = 1 THEN 'Jürgen <J@X.DE>' ELSE 'Juergen <J@X.DE>' END
		 FROM generate_series(1, 600) i`,
		`INSERT INTO message_texts (message_id, indexed, header_text, body_text)
		 SELECT id, id % 3 = 0, 'Subject: ' || subject || E'\n', CASE WHEN id % 2 = 1 THEN 'ΟΔΥΣΣΕΥΣ grüßt' ELSE 'Hello WORLD' END
		 FROM messages`,
	} {
		if _, err := c.Exec(ctx, q); err != nil {
			t.Fatalf("%.60s…: %v", q, err)
		}
	}
	applied, err := schema.Migrate(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(applied, "0008_text_fold.sql") {
		t.Fatalf("applied %v", applied)
	}
	count := counter(t, c)
	like := func(s string) string { return "%" + query.Fold(s) + "%" }
	for _, tc := range []struct {
		q    string
		args []any
		want int
	}{
		{`SELECT count(*) FROM messages WHERE subject ILIKE $1`, []any{like("münchen")}, 300},
		{`SELECT count(*) FROM messages WHERE subject ILIKE $1`, []any{like("MÜNCHEN 599")}, 1},
		{`SELECT count(*) FROM messages WHERE from_addr ILIKE $1`, []any{like("JÜRGEN")}, 300},
		{`SELECT count(*) FROM messages WHERE from_addr ILIKE $1`, []any{like("j@x.de")}, 600},
		{`SELECT count(*) FROM message_texts WHERE body_text ILIKE $1`, []any{like("Οδυσσευς GRÜSST")}, 300},
		{`SELECT count(*) FROM message_texts WHERE header_text ILIKE $1`, []any{like("SUBJECT: flug nach münchen")}, 300},
		{`SELECT count(*) FROM message_texts WHERE body_text ILIKE $1`, []any{like("hello world")}, 300},
		// ASCII rows are not rewritten.
		{`SELECT count(*) FROM messages WHERE subject LIKE 'Plain ASCII %'`, nil, 300},
		{`SELECT count(*) FROM message_texts WHERE body_text = 'Hello WORLD'`, nil, 300},
		// Non-ASCII rows hold exactly their Fold.
		{`SELECT count(*) FROM messages WHERE subject = $1`, []any{query.Fold("Flug nach MÜNCHEN 1")}, 1},
		{`SELECT count(*) FROM message_texts WHERE body_text = $1`, []any{query.Fold("ΟΔΥΣΣΕΥΣ grüßt")}, 300},
	} {
		if got := count(tc.q, tc.args...); got != tc.want {
			t.Errorf("%s %v: %d, want %d", tc.q, tc.args, got, tc.want)
		}
	}
}

// TestMigrateViewsLeaveTrash (issue 14): migration 0010 gives existing views
// the default rule: a message only Trash and Junk hold leaves them, with a
// tombstone (open sessions get EXPUNGE); the others stay.
func TestMigrateViewsLeaveTrash(t *testing.T) {
	ctx := context.Background()
	c := emptyDB(t)
	if _, err := schema.MigrateTo(ctx, c, 7); err != nil { // as version 7 left it
		t.Fatal(err)
	}
	for _, q := range []string{
		`INSERT INTO users (id, name, password_hash) VALUES (1, 'u', 'x')`,
		`INSERT INTO mailboxes (id, user_id, name, definition) VALUES (1, 1, 'INBOX', NULL), (2, 1, 'Trash', NULL),
			(3, 1, 'Junk', NULL), (4, 1, 'All Mail', 'ALL'), (5, 1, 'Unread', 'UNSEEN')`,
		`INSERT INTO messages (id, user_id, internal_date, internal_day, size, header, body, envelope, bodystructure, body_simple, thread_id)
			SELECT i, 1, now(), current_date, 10, '', '', '', '', '', i FROM generate_series(1, 3) i`,
		`INSERT INTO message_flags (message_id, user_id, size, internal_day, modseq)
			SELECT i, 1, 10, current_date, nextval('modseq_seq') FROM generate_series(1, 3) i`,
		// 1 in INBOX and Trash, 2 in Trash, 3 in Trash and Junk; all in both views.
		`INSERT INTO mailbox_messages (mailbox_id, uid, message_id, modseq) VALUES
			(1, 1, 1, 1), (2, 1, 1, 1), (2, 2, 2, 1), (2, 3, 3, 1), (3, 1, 3, 1),
			(4, 1, 1, 1), (4, 2, 2, 1), (4, 3, 3, 1), (5, 1, 1, 1), (5, 2, 2, 1), (5, 3, 3, 1)`,
	} {
		if _, err := c.Exec(ctx, q); err != nil {
			t.Fatalf("%.60s…: %v", q, err)
		}
	}
	if _, err := schema.Migrate(ctx, c); err != nil {
		t.Fatal(err)
	}
	for _, view := range []int64{4, 5} {
		var members, tomb []int64
		if err := c.QueryRow(ctx, `SELECT coalesce(array_agg(message_id ORDER BY message_id), '{}') FROM mailbox_messages WHERE mailbox_id = $1`,
			view).Scan(&members); err != nil {
			t.Fatal(err)
		}
		if err := c.QueryRow(ctx, `SELECT coalesce(array_agg(u ORDER BY u), '{}') FROM mailbox_expunges, unnest(uids) u WHERE mailbox_id = $1`,
			view).Scan(&tomb); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(members, []int64{1}) || !slices.Equal(tomb, []int64{2, 3}) {
			t.Errorf("view %d after 0010: members %v, expunged UIDs %v; want [1], [2 3]", view, members, tomb)
		}
	}
}

// TestMigrateAutoAddresses (issue 18): migration 0011 makes the auto
// addresses and the per-correspondent addresses handed out before it
// addresses of their user, so replies to them are delivered; an address
// that is already another user's stays theirs.
func TestMigrateAutoAddresses(t *testing.T) {
	ctx := context.Background()
	c := emptyDB(t)
	if _, err := schema.MigrateTo(ctx, c, 10); err != nil { // as version 10 left it
		t.Fatal(err)
	}
	for _, q := range []string{
		`INSERT INTO users (id, name, password_hash) VALUES (1, 'u', 'x'), (2, 'v', 'x')`,
		`INSERT INTO addresses (address, user_id) VALUES ('u@a.test', 1), ('taken@a.test', 2)`,
		`INSERT INTO auto_users (address, user_id, template) VALUES ('auto@a.test', 1, '%s@a.test')`,
		`INSERT INTO random_addrs (auto_address, correspondent, address) VALUES
			('auto@a.test', 'bob@x.test', 'r1xxxxxx@a.test'), ('auto@a.test', 'eve@x.test', 'taken@a.test')`,
		`INSERT INTO explicit_addrs (auto_address, correspondent, address) VALUES ('auto@a.test', 'carol@x.test', 'for-carol@a.test')`,
	} {
		if _, err := c.Exec(ctx, q); err != nil {
			t.Fatalf("%.60s…: %v", q, err)
		}
	}
	if _, err := schema.Migrate(ctx, c); err != nil {
		t.Fatal(err)
	}
	var got []string
	if err := c.QueryRow(ctx, `SELECT array_agg(address || '=' || user_id ORDER BY address) FROM addresses`).Scan(&got); err != nil {
		t.Fatal(err)
	}
	want := []string{"auto@a.test=1", "for-carol@a.test=1", "r1xxxxxx@a.test=1", "taken@a.test=2", "u@a.test=1"}
	if !slices.Equal(got, want) {
		t.Errorf("addresses after 0011: %v, want %v", got, want)
	}
}

// counter returns a reader of one integer (a count) from c; a failed query
// fails the test.
func counter(t *testing.T, c *pgx.Conn) func(q string, args ...any) int {
	return func(q string, args ...any) int {
		t.Helper()
		var n int
		if err := c.QueryRow(context.Background(), q, args...).Scan(&n); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return n
	}
}

// TestMigrateSaveDateAndQuota (issue 17): migration 0020 gives memberships
// stored before it their message's internal date as save date (new ones
// take the time they are inserted); 0021 counts each user's stored
// messages once, however many mailboxes show them.
func TestMigrateSaveDateAndQuota(t *testing.T) {
	ctx := context.Background()
	c := emptyDB(t)
	if _, err := schema.MigrateTo(ctx, c, 19); err != nil { // as version 19 left it
		t.Fatal(err)
	}
	for _, q := range []string{
		`INSERT INTO users (id, name, password_hash) VALUES (1, 'u', 'x'), (2, 'v', 'x')`,
		`INSERT INTO mailboxes (id, user_id, name, definition) VALUES (1, 1, 'INBOX', NULL), (2, 1, 'All Mail', 'ALL')`,
		`INSERT INTO messages (id, user_id, internal_date, internal_day, size, header, body, envelope, bodystructure, body_simple, thread_id)
			SELECT i, 1, ('2020-01-0' || i || ' 12:00Z')::timestamptz, '2020-01-01', 100 * i, '', '', '', '', '', i FROM generate_series(1, 3) i`,
		`INSERT INTO message_flags (message_id, user_id, size, internal_day, modseq)
			SELECT i, 1, 100 * i, current_date, nextval('modseq_seq') FROM generate_series(1, 3) i`,
		`INSERT INTO mailbox_messages (mailbox_id, uid, message_id, modseq) VALUES
			(1, 1, 1, 1), (1, 2, 2, 1), (1, 3, 3, 1), (2, 1, 1, 1), (2, 2, 2, 1), (2, 3, 3, 1)`,
	} {
		if _, err := c.Exec(ctx, q); err != nil {
			t.Fatalf("%.60s…: %v", q, err)
		}
	}
	if _, err := schema.Migrate(ctx, c); err != nil {
		t.Fatal(err)
	}
	count := counter(t, c)
	if n := count(`SELECT count(*) FROM mailbox_messages mm JOIN messages m ON m.id = mm.message_id WHERE mm.saved_at = m.internal_date`); n != 6 {
		t.Errorf("memberships with the internal date as save date: %d, want 6", n)
	}
	if n := count(`SELECT count(*) FROM users WHERE (id, used_bytes, used_messages) IN ((1, 600, 3), (2, 0, 0))`); n != 2 {
		t.Errorf("usage after 0021 not (600 octets, 3 messages) and (0, 0)")
	}
}

// TestMigrateFillsCandidates (issue 15): migration 0023 writes the
// candidates of the views that exist (the messages the flag-free part of
// the definition matches), and none for a view of flags only.
func TestMigrateFillsCandidates(t *testing.T) {
	ctx := context.Background()
	c := emptyDB(t)
	if _, err := schema.MigrateTo(ctx, c, 22); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`INSERT INTO users (id, name, password_hash) VALUES (1, 'u', 'x'), (2, 'v', 'x')`,
		`INSERT INTO mailboxes (id, user_id, name, definition, uses_flags) VALUES (1, 1, 'INBOX', NULL, false),
			(2, 1, 'Big unread', 'UNSEEN LARGER 15', true), (3, 1, 'Unread', 'UNSEEN', true), (4, 2, 'Big', 'FLAGGED LARGER 15', true)`,
		`INSERT INTO messages (id, user_id, internal_date, internal_day, size, header, body, envelope, bodystructure, body_simple, thread_id)
			SELECT i, 1 + i / 4, now(), current_date, 10 * (i % 4), '', '', '', '', '', i FROM generate_series(1, 6) i`,
		`INSERT INTO message_flags (message_id, user_id, size, internal_day, seen, modseq)
			SELECT i, 1 + i / 4, 10 * (i % 4), current_date, i = 3, nextval('modseq_seq') FROM generate_series(1, 6) i`,
	} {
		if _, err := c.Exec(ctx, q); err != nil {
			t.Fatalf("%.60s…: %v", q, err)
		}
	}
	if _, err := schema.Migrate(ctx, c); err != nil {
		t.Fatal(err)
	}
	// Sizes: messages 1-3 (user 1) 10, 20, 30; 4-6 (user 2) 0, 10, 20.
	for view, want := range map[int64][]int64{2: {2, 3}, 3: {}, 4: {6}} {
		var got []int64
		if err := c.QueryRow(ctx, `SELECT coalesce(array_agg(message_id ORDER BY message_id), '{}') FROM view_candidates WHERE mailbox_id = $1`,
			view).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("view %d after 0023: candidates %v, want %v", view, got, want)
		}
	}
}

// TestMigrateThreadKeys (issue 17): migration 0026 fills thread_keys from
// the messages stored before it (normalized Message-ID, In-Reply-To and
// References: message.ThreadKeys), past one batch: per user and msg-id
// the least thread_id of the messages with it. Every thread_id stays as
// it was: a THREADID once reported must not change (rfc8474.txt:332).
func TestMigrateThreadKeys(t *testing.T) {
	ctx := context.Background()
	c := emptyDB(t)
	if _, err := schema.MigrateTo(ctx, c, 25); err != nil {
		t.Fatal(err)
	}
	// 1,200 messages (more than a batch) of two users: every third
	// without a valid msg-id, the others replies quoting their parent's
	// id; thread_id 7 times the id, less 8,000 for every fifth message.
	for _, q := range []string{
		`INSERT INTO users (id, name, password_hash) VALUES (1, 'u', 'x'), (2, 'v', 'x')`,
		`INSERT INTO messages (id, user_id, internal_date, internal_day, size, header, body, envelope, bodystructure, body_simple,
			thread_id, message_id, in_reply_to, refs)
			SELECT i, 1 + i / 1000, now(), current_date, 10, '', '', '', '', '', CASE WHEN i % 5 = 0 THEN 7 * i - 8000 ELSE 7 * i END,
				CASE WHEN i % 3 = 0 THEN 'not-an-id' ELSE '<m' || i || '@x>' END,
				CASE WHEN i % 3 = 0 THEN '' ELSE '<"m' || i / 2 || '"@x>' END,
				CASE WHEN i % 3 = 1 THEN ARRAY['<m' || i / 4 || '@x>', '<m' || i / 2 || '@x>'] ELSE '{}' END
			FROM generate_series(1, 1200) i`,
	} {
		if _, err := c.Exec(ctx, q); err != nil {
			t.Fatalf("%.60s…: %v", q, err)
		}
	}
	applied, err := schema.Migrate(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(applied, "0026_thread_keys.sql") {
		t.Fatalf("applied %v", applied)
	}
	type key struct {
		user int64
		key  string
	}
	want := map[key]int64{}
	for i := int64(1); i <= 1200; i++ {
		thread := 7 * i
		if i%5 == 0 {
			thread -= 8000
		}
		var ids []int64
		switch i % 3 {
		case 1:
			ids = []int64{i, i / 2, i / 4}
		case 2:
			ids = []int64{i, i / 2}
		}
		for _, id := range ids {
			k := key{1 + i/1000, fmt.Sprintf("<m%d@x>", id)}
			if w, ok := want[k]; !ok || thread < w {
				want[k] = thread
			}
		}
	}
	rows, err := c.Query(ctx, `SELECT user_id, key, thread_id FROM thread_keys`)
	if err != nil {
		t.Fatal(err)
	}
	var k key
	var thread int64
	got := map[key]int64{}
	if _, err := pgx.ForEachRow(rows, []any{&k.user, &k.key, &thread}, func() error { got[k] = thread; return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Errorf("%d thread_keys rows, want %d", len(got), len(want))
	}
	for k, w := range want {
		if g, ok := got[k]; !ok || g != w {
			t.Errorf("thread_keys %v: thread %d (%v), want %d", k, g, ok, w)
		}
	}
	var changed int
	if err := c.QueryRow(ctx, `SELECT count(*) FROM messages WHERE thread_id <> CASE WHEN id % 5 = 0 THEN 7 * id - 8000 ELSE 7 * id END`).
		Scan(&changed); err != nil || changed != 0 {
		t.Errorf("%d thread_ids changed by the migration (%v), want none", changed, err)
	}
}
