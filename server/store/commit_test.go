package store_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"golang.org/x/crypto/bcrypt"

	"decimail/server/pgrun"
	"decimail/server/store"
)

// TestCommitDurability pins the durability rule (store/gate.go): what
// stores a message or gives out UIDs commits durably (synchronous_commit
// on: on disk before the caller says OK), other flag changes, expunges and
// \Recent claims lazily (synchronous_commit off). Deferred triggers record
// the setting in force at each writing transaction's COMMIT; the
// database's default is on, as on a production cluster (the test
// cluster's is off).
func TestCommitDurability(t *testing.T) {
	ctx := context.Background()
	dsn := pgrun.TestDB(t)
	cfg, err := pgx.ParseConfig(dsn)
	must(t, err)
	admin, err := pgx.Connect(ctx, dsn)
	must(t, err)
	defer admin.Close(ctx)
	for _, q := range []string{
		"ALTER DATABASE " + pgx.Identifier{cfg.Database}.Sanitize() + " SET synchronous_commit = on",
		`CREATE TABLE commit_modes (what text, mode text)`,
		`CREATE FUNCTION note_commit_mode() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			INSERT INTO commit_modes VALUES (TG_TABLE_NAME || ' ' || TG_OP, current_setting('synchronous_commit'));
			RETURN NULL;
		END $$`,
		`CREATE CONSTRAINT TRIGGER note_mode AFTER INSERT OR UPDATE OR DELETE ON messages
			DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION note_commit_mode()`,
		`CREATE CONSTRAINT TRIGGER note_mode AFTER UPDATE ON message_flags
			DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION note_commit_mode()`,
		`CREATE CONSTRAINT TRIGGER note_mode AFTER INSERT OR UPDATE OR DELETE ON mailbox_messages
			DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION note_commit_mode()`,
	} {
		if _, err := admin.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	s, err := store.Open(ctx, dsn, store.Options{SpoolDir: t.TempDir(), PasswordCost: bcrypt.MinCost})
	must(t, err)
	defer s.Close()
	u, err := s.CreateUser(ctx, "u", "pw")
	must(t, err)

	// modes runs op and returns the settings its statements ran under.
	modes := func(what string, op func() error) []string {
		t.Helper()
		if _, err := admin.Exec(ctx, `DELETE FROM commit_modes`); err != nil {
			t.Fatal(err)
		}
		if err := op(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		rows, err := admin.Query(ctx, `SELECT DISTINCT what || ': ' || mode FROM commit_modes`)
		must(t, err)
		got, err := pgx.CollectRows(rows, pgx.RowTo[string])
		must(t, err)
		if len(got) == 0 {
			t.Fatalf("%s wrote nothing", what)
		}
		return got
	}
	expect := func(what, mode string, op func() error) {
		t.Helper()
		for _, m := range modes(what, op) {
			if !strings.HasSuffix(m, ": "+mode) {
				t.Errorf("%s: %s, want synchronous_commit %s", what, m, mode)
			}
		}
	}
	var a, b store.Delivered
	expect("Deliver", "on", func() (err error) {
		a, err = s.Deliver(ctx, u.ID, msg("a", "x"), store.DeliverOptions{})
		return err
	})
	expect("Deliver", "on", func() (err error) {
		b, err = s.Deliver(ctx, u.ID, msg("b", "y"), store.DeliverOptions{})
		return err
	})
	var snap *store.Snapshot
	expect("Select (claims \\Recent)", "off", func() (err error) {
		snap, err = s.Select(ctx, u.ID, "INBOX", false)
		return err
	})
	if len(snap.Recent) != 2 {
		t.Fatalf("SELECT claimed %v as recent, want both", snap.Recent)
	}
	c := deliver(t, s, u, msg("c", "z"), store.DeliverOptions{})
	expect("ChangesSince (claims \\Recent)", "off", func() error {
		ch, err := s.ChangesSince(ctx, a.Box(), snap.ModSeq, true)
		if err == nil && !slices.ContainsFunc(ch.Changed, func(x store.Change) bool { return x.UID == c.UID && x.Recent }) {
			err = fmt.Errorf("the new message was not claimed: %+v", ch.Changed)
		}
		return err
	})
	expect("StoreFlags +\\Seen $Foo (leaves Unread)", "off", func() error {
		_, err := s.StoreFlags(ctx, a.Box(), []uint32{a.UID}, store.FlagsAdd, store.Flags{Seen: true, Keywords: []string{"$Foo"}})
		return err
	})
	expect("StoreFlags -\\Seen (enters Unread)", "on", func() error {
		_, err := s.StoreFlags(ctx, a.Box(), []uint32{a.UID}, store.FlagsDel, store.Flags{Seen: true})
		return err
	})
	expect("AddRemoveFlags +\\Seen +\\Deleted (leaves Unread)", "off", func() error {
		_, _, _, err := s.AddRemoveFlags(ctx, a.Box(), []uint32{b.UID}, true, store.Flags{Seen: true, Deleted: true})
		return err
	})
	expect("AddRemoveFlags +\\Flagged (enters Flagged)", "on", func() error {
		_, _, _, err := s.AddRemoveFlags(ctx, a.Box(), []uint32{b.UID}, true, store.Flags{Flagged: true})
		return err
	})
	expect("AddRemoveFlags -$Foo", "off", func() error {
		_, _, _, err := s.AddRemoveFlags(ctx, a.Box(), []uint32{a.UID}, false, store.Flags{Keywords: []string{"$foo"}})
		return err
	})
	expect("Copy", "on", func() error {
		_, err := s.Copy(ctx, a.Box(), []uint32{a.UID}, "Archive")
		return err
	})
	expect("Move", "on", func() error {
		_, err := s.Move(ctx, a.Box(), []uint32{c.UID}, "Trash")
		return err
	})
	expect("Expunge", "off", func() error {
		gone, err := s.Expunge(ctx, a.Box(), nil)
		if err == nil && !slices.Equal(gone, []uint32{b.UID}) {
			err = fmt.Errorf("expunged %v, want [%d]", gone, b.UID)
		}
		return err
	})
	expect("DefineMailbox", "on", func() error {
		_, err := s.DefineMailbox(ctx, u.ID, "From Alice", "FROM alice")
		return err
	})
}

// TestModseqsMoveOnAfterRestart: lazy changes lost in a crash may have drawn
// modseqs that sessions saw, and the sequence could give them out again
// (gate.go, afterRestart): the first connection after Postgres started
// again moves modseq_seq a million on, once. A restart is simulated by
// another start time remembered in the configuration table.
func TestModseqsMoveOnAfterRestart(t *testing.T) {
	ctx := context.Background()
	dsn := pgrun.TestDB(t)
	open := func() *store.Store {
		s, err := store.Open(ctx, dsn, store.Options{PasswordCost: bcrypt.MinCost})
		must(t, err)
		return s
	}
	last := func(s *store.Store) (v int64) {
		must(t, s.Pool().QueryRow(ctx, `SELECT last_value FROM modseq_seq`).Scan(&v))
		return v
	}
	s := open()
	before := last(s)
	s.Close()
	s = open() // new connections, same start: no move
	if v := last(s); v != before {
		t.Fatalf("modseq_seq moved from %d to %d without a restart", before, v)
	}
	if _, err := s.Pool().Exec(ctx, `UPDATE configuration SET value = 'an earlier start' WHERE key = 'modseq_epoch'`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = open()
	defer s.Close()
	if v := last(s); v < before+1000000 {
		t.Fatalf("after a restart modseq_seq is %d, was %d: not moved past the modseqs a crash may give out again", v, before)
	}
}
