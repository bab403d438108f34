package imapd

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"decimail/server/pgrun"
	"decimail/server/store"
)

// The database going away is a temporary failure of the mail store, not a
// server bug: commands get NO [UNAVAILABLE] (rfc5530.txt:95), and nothing
// is logged at ERROR level (where FuzzServer looks for bugs).
func TestDatabaseDownIsUnavailableNotServerBug(t *testing.T) {
	e := newEnv(t)
	e.deliver("INBOX", testMsg("one"), store.Flags{})
	logs := &logSink{}
	srv := New(Config{AuthFailDelay: time.Millisecond}, e.st,
		slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn})))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	c := e.dialAddr(ln.Addr().String())
	c.OK("LOGIN u pw")
	c.OK("SELECT INBOX")

	// Take the database away: refuse new connections, end the open ones.
	ctx := context.Background()
	inst, _, err := pgrun.Shared(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var db string
	if err := e.st.Pool().QueryRow(ctx, `SELECT current_database()`).Scan(&db); err != nil {
		t.Fatal(err)
	}
	admin, err := pgx.Connect(ctx, inst.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	name := pgx.Identifier{db}.Sanitize()
	if _, err := admin.Exec(ctx, `ALTER DATABASE `+name+` WITH ALLOW_CONNECTIONS false`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Exec(ctx, `ALTER DATABASE `+name+` WITH ALLOW_CONNECTIONS true`) })
	if _, err := admin.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1`, db); err != nil {
		t.Fatal(err)
	}
	// Until the listener has seen its connection end, the process may
	// answer from what it keeps (NOOP, a cached STATUS) as nothing was
	// signalled: a database that just went away is found by the next
	// command that reads. The test asks once it is known.
	for deadline := time.Now().Add(10 * time.Second); e.st.Notifier().Listening(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the listener did not notice the database going away")
		}
	}

	for _, cmd := range []string{"STATUS INBOX (MESSAGES)", "FETCH 1 (FLAGS BODY.PEEK[])", "NOOP", "SELECT INBOX"} {
		if _, done := c.Do(cmd); done.Status != "NO" || done.CodeName() != "UNAVAILABLE" {
			t.Errorf("%s: %s, want NO [UNAVAILABLE]", cmd, done)
		}
	}
	if l := logs.take(); strings.Contains(l, "level=ERROR") || !strings.Contains(l, "level=WARN msg=\"database unavailable\"") {
		t.Errorf("log:\n%s", l)
	}
}
