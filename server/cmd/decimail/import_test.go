package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"decimail/server/pgrun"
	"decimail/server/store"
)

func TestMain(m *testing.M) { os.Exit(pgrun.RunTests(m)) }

func write(t *testing.T, path, s string) {
	t.Helper()
	os.MkdirAll(filepath.Dir(path), 0o755)
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// An mbox file and a Maildir++ tree land in the right folders with their
// flags and bytes (LF made CRLF, mboxrd quoting undone); bad messages are
// reported and skipped, not silently dropped.
func TestImportMboxAndMaildir(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "tree", "Lists.mbox"),
		"From alice@example.com Mon Nov  2 10:00:00 2026\nSubject: one\nStatus: RO\n\nbody\n>From the start\n\n"+
			"From bob@example.com Tue Nov  3 10:00:00 2026\nSubject: two\nX-Status: F\n\nsecond\n\n"+
			"From empty@example.com Tue Nov  3 11:00:00 2026\n\n")
	md := filepath.Join(dir, "tree", "Maildir")
	for _, d := range []string{"cur", "new", "tmp", ".Work.Projects/cur", ".Work.Projects/new", ".Work.Projects/tmp"} {
		os.MkdirAll(filepath.Join(md, d), 0o755)
	}
	write(t, filepath.Join(md, "cur", "1.host:2,FS"), "Subject: inbox\n\nhi\n")
	write(t, filepath.Join(md, ".Work.Projects", "new", "2.host"), "Subject: project\n\nwork\n")

	items, err := scanImport(filepath.Join(dir, "tree"), "")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	s, err := store.Open(ctx, pgrun.TestDB(t), store.Options{PasswordCost: bcrypt.MinCost})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	u, err := s.CreateUser(ctx, "u", "pw")
	if err != nil {
		t.Fatal(err)
	}
	sum, err := importItems(ctx, s, u, items, func(int, int) {})
	if err != nil {
		t.Fatal(err)
	}
	if sum.imported != 4 || len(sum.skipped) != 1 || !strings.Contains(sum.skipped[0], "empty message") {
		t.Fatalf("summary %+v", sum)
	}
	// The import indexes what it stored before it returns (store/indexer.go).
	var texts, unindexed int
	if err := s.Pool().QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE NOT indexed) FROM message_texts`).Scan(&texts, &unindexed); err != nil {
		t.Fatal(err)
	}
	if texts != 4 || unindexed != 0 {
		t.Fatalf("after the import: %d texts, %d of them unindexed; want 4, 0", texts, unindexed)
	}
	want := map[string]int{"Lists": 2, "INBOX": 1, "Work/Projects": 1}
	for name, n := range want {
		if sum.folders[name] != n {
			t.Errorf("folder %s: %d messages, want %d (%v)", name, sum.folders[name], n, sum.folders)
		}
	}
	// The folders the import made are subscribed (issue 14: Thunderbird
	// shows subscribed folders only); the parent Work it made on the way is
	// a container, as a client's CREATE leaves it.
	subs, err := s.Subscriptions(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{"Lists": true, "Work/Projects": true, "Work": false} {
		if slices.Contains(subs, name) != want {
			t.Errorf("%s subscribed: %v, want %v (subscriptions %q)", name, !want, want, subs)
		}
	}
	lists, err := s.Mailbox(ctx, u.ID, "Lists")
	if err != nil {
		t.Fatal(err)
	}
	var got [][]byte
	var flags []store.Flags
	err = s.Fetch(ctx, lists.Box(), []uint32{1, 2}, store.FetchCols{Header: true, Body: true, Flags: true}, func(r *store.FetchRow) error {
		got = append(got, append(append([]byte{}, r.Header...), r.Body...))
		flags = append(flags, r.Flags)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[0], []byte("Subject: one\r\nStatus: RO\r\n\r\nbody\r\nFrom the start\r\n\r\n")) {
		t.Errorf("first message %q", got[0])
	}
	if !flags[0].Seen || !flags[1].Flagged || flags[1].Seen {
		t.Errorf("mbox flags %+v", flags)
	}
	ib, _ := s.Mailbox(ctx, u.ID, "INBOX")
	s.Fetch(ctx, ib.Box(), []uint32{1}, store.FetchCols{Flags: true}, func(r *store.FetchRow) error {
		if !r.Flags.Seen || !r.Flags.Flagged {
			t.Errorf("maildir flags %+v", r.Flags)
		}
		return nil
	})
}

// The binary's admin commands work end to end on a database given by
// DECIMAIL_DATABASE_URL, and every command answers -h.
func TestCLI(t *testing.T) {
	bin := binary(t)
	env := append(os.Environ(), "DECIMAIL_DATABASE_URL="+pgrun.TestDB(t), "DECIMAIL_SPOOL="+t.TempDir())
	run := func(stdin string, args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Env, cmd.Stdin = env, strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("decimail %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	run("", "migrate")
	run("", "user", "add", "alice", "-password", "secret")
	run("", "address", "add", "alice@example.com", "alice")
	if out := run("", "address", "list"); !strings.Contains(out, "alice@example.com") {
		t.Fatalf("address list: %s", out)
	}
	run("Subject: hello golang\r\n\r\nhi\r\n", "deliver", "alice")
	run("", "mailbox", "define", "alice", "Go", "SUBJECT golang")
	if out := run("", "mailbox", "list", "alice"); !strings.Contains(out, "Go") || !strings.Contains(out, "1 msgs") {
		t.Fatalf("mailbox list: %s", out)
	}
	for _, c := range commands {
		args := append(strings.Fields(c.name), "-h")
		if out := run("", args...); !strings.Contains(out, "usage: decimail "+c.name) {
			t.Errorf("%s -h: %s", c.name, out)
		}
	}
	cmd := exec.Command(bin, "mailbox", "define", "alice", "Bad", "NOSUCHKEY")
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "invalid") {
		t.Fatalf("bad definition accepted: %s", out)
	}
}
