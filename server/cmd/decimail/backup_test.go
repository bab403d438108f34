package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"decimail/internal/imaptest"
	"decimail/server/pgrun"
)

// mailboxState is what a client sees of a mailbox.
type mailboxState struct {
	UIDValidity, UIDNext string
	Messages             map[string]string // UID -> sorted flags, size and bytes
}

// imapState logs in as user and reads every mailbox LIST shows.
func imapState(t *testing.T, addr, user string) map[string]mailboxState {
	t.Helper()
	ic, err := imaptest.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer ic.Close()
	if err := ic.Login(user, "pw"); err != nil {
		t.Fatal(err)
	}
	untagged, _, err := ic.Command(`LIST "" "*"`)
	if err != nil {
		t.Fatal(err)
	}
	state := map[string]mailboxState{}
	for _, r := range untagged {
		if r.Name() != "LIST" || len(r.Data) < 4 {
			continue
		}
		name := r.Data[3].S
		untagged, _, err := ic.Command(fmt.Sprintf("EXAMINE %q", name))
		if err != nil {
			t.Fatalf("%s: EXAMINE %s: %v", user, name, err)
		}
		mb := mailboxState{Messages: map[string]string{}}
		for _, r := range untagged {
			if len(r.Code) == 2 && r.CodeName() == "UIDVALIDITY" {
				mb.UIDValidity = r.Code[1].S
			}
			if len(r.Code) == 2 && r.CodeName() == "UIDNEXT" {
				mb.UIDNext = r.Code[1].S
			}
		}
		untagged, _, err = ic.Command("UID FETCH 1:* (FLAGS RFC822.SIZE BODY.PEEK[])")
		if err != nil {
			t.Fatalf("%s: FETCH in %s: %v", user, name, err)
		}
		for _, r := range untagged {
			a := r.Attrs()
			if a == nil {
				continue
			}
			var flags []string
			for _, f := range a["FLAGS"].L {
				if f.S != `\Recent` { // a session's, not the mailbox's
					flags = append(flags, f.S)
				}
			}
			sort.Strings(flags)
			mb.Messages[a["UID"].S] = fmt.Sprintf("(%s) %s %q", strings.Join(flags, " "), a["RFC822.SIZE"].S, a["BODY[]"].S)
		}
		state[name] = mb
	}
	return state
}

// Issue 18: `decimail backup` and `decimail restore` carry every user's
// mail over to an empty database: the mailboxes (folders and views), their
// UIDVALIDITY and UIDNEXT, every message's UID, flags, keywords and bytes,
// and the spool files. restore refuses a database that is not empty.
func TestBackupRestore(t *testing.T) {
	ctx := context.Background()
	dsn := pgrun.TestDB(t)
	spool := t.TempDir()
	env := append(dbEnv(t, dsn), "DECIMAIL_SPOOL="+spool)
	run := cli(t, env)
	must := func(out string, err error) string {
		t.Helper()
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		return out
	}
	for _, u := range []string{"alice", "bob"} {
		must(run("user", "add", u, "-password", "pw"))
		must(run("address", "add", u+"@example.test", u))
	}
	must(run("mailbox", "define", "alice", "Work", "KEYWORD Work"))

	d := startDaemon(t, dsn, spool)
	for i := range 3 {
		if err := sendMail(d.smtp, fmt.Sprintf("delivered %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	for _, u := range []string{"alice", "bob"} {
		ic, err := imaptest.Dial(d.imap)
		if err != nil {
			t.Fatal(err)
		}
		if err := ic.Login(u, "pw"); err != nil {
			t.Fatal(err)
		}
		for _, c := range []string{
			"CREATE Old", "CREATE Projects/2026",
			appendCmd("INBOX", `\Seen $Label1 Work`, "Subject: one of "+u+"\r\n\r\nbody\r\n"),
			appendCmd("Old", `\Flagged \Answered`, "Subject: old\r\n\r\nold\r\n"),
			appendCmd("Projects/2026", "", "Subject: plan\r\n\r\nplan of "+u+"\r\n"),
			"SELECT INBOX", `UID STORE 1 +FLAGS (\Deleted)`, "EXPUNGE", // a gap in the UIDs
			`UID STORE 2 +FLAGS (\Draft Urgent)`, "UID COPY 2:* Old",
		} {
			if _, _, err := ic.Command(c); err != nil {
				t.Fatalf("%s: %q: %v", u, c, err)
			}
		}
		ic.Close()
	}
	before := map[string]map[string]mailboxState{}
	for _, u := range []string{"alice", "bob"} {
		before[u] = imapState(t, d.imap, u)
	}
	if len(before["alice"]) < 7 || len(before["alice"]["INBOX"].Messages) < 3 || len(before["alice"]["Work"].Messages) != 1 {
		t.Fatalf("alice's mail before the backup is not what the test made: %v", before["alice"])
	}
	d.kill9()

	dir := filepath.Join(t.TempDir(), "backup")
	out := must(run("backup", dir))
	if !strings.Contains(out, "spool files") {
		t.Errorf("backup said %q", out)
	}
	if out, err := run("backup", dir); err == nil || !strings.Contains(out, "not empty") {
		t.Errorf("a second backup into the same directory: %v\n%s", err, out)
	}

	// Not into a database with anything in it, nor into a spool with files.
	emptySpool := append(dbEnv(t, dsn), "DECIMAIL_SPOOL="+t.TempDir())
	if out, err := cli(t, emptySpool)("restore", dir); err == nil || !strings.Contains(out, "database ") || !strings.Contains(out, "is not empty") {
		t.Errorf("restore into the backed-up database: %v\n%s", err, out)
	}
	if out, err := run("restore", dir); err == nil || !strings.Contains(out, "is not empty") {
		t.Errorf("restore into a database and spool with mail: %v\n%s", err, out)
	}

	inst, _, err := pgrun.Shared(ctx)
	if err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("t_restore_%d", os.Getpid())
	dsn2, err := pgrun.CloneDB(ctx, inst.DSN, "template0", name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pgrun.DropDB(context.Background(), inst.DSN, name) })
	spool2 := t.TempDir()
	env2 := append(dbEnv(t, dsn2), "DECIMAIL_SPOOL="+spool2)
	must(cli(t, env2)("restore", dir))

	d2 := startDaemon(t, dsn2, spool2)
	for _, u := range []string{"alice", "bob"} {
		after := imapState(t, d2.imap, u)
		if diff := cmp.Diff(before[u], after); diff != "" {
			t.Errorf("%s's mail after restore (-before +after):\n%s", u, diff)
		}
	}

	// The spool came along, and the rows name the files where they are now.
	files := func(root string) []string {
		var fs []string
		filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
			if err == nil && fi.Mode().IsRegular() {
				rel, _ := filepath.Rel(root, p)
				fs = append(fs, rel)
			}
			return nil
		})
		sort.Strings(fs)
		return fs
	}
	if a, b := files(spool), files(spool2); len(a) == 0 || !cmp.Equal(a, b) {
		t.Errorf("spool files: before %v, after restore %v", a, b)
	}
	st := openTestStore(t, dsn2)
	var elsewhere, total int
	if err := st.Pool().QueryRow(ctx, `SELECT count(*) FILTER (WHERE spool_path NOT LIKE $1 || '/%'), count(*) FROM messages`,
		spool2).Scan(&elsewhere, &total); err != nil {
		t.Fatal(err)
	}
	if elsewhere != 0 || total == 0 {
		t.Errorf("%d of %d restored messages have a spool_path outside %s", elsewhere, total, spool2)
	}
}

func appendCmd(mailbox, flags, msg string) string {
	return fmt.Sprintf("APPEND %s (%s) {%d}\r\n%s", mailbox, flags, len(msg), msg)
}
