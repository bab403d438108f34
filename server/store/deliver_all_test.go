package store_test

import (
	"context"
	"path/filepath"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"decimail/server/pgrun"
	"decimail/server/store"
)

// TestDeliverAllAtomic: MULTIAPPEND's messages are stored in ONE
// transaction, "no partial appending is permitted" (rfc3502.txt:143-146): when the second one fails inside
// Postgres, the first is not stored either, no UID is used up and no
// spool file is left; otherwise they get consecutive UIDs in order.
func TestDeliverAllAtomic(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	spool := t.TempDir()
	s, err := store.Open(ctx, pgrun.TestDB(t), store.Options{SpoolDir: spool, PasswordCost: bcrypt.MinCost})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	a := newUser(t, s, "a")
	_, err = s.Pool().Exec(ctx, `CREATE FUNCTION fail() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'disk on fire'; END $$;
		CREATE TRIGGER fail BEFORE INSERT ON messages FOR EACH ROW WHEN (NEW.subject = 'fail')
		EXECUTE FUNCTION fail()`)
	if err != nil {
		t.Fatal(err)
	}
	msg := func(subject string) *store.Incoming {
		return store.IncomingBytes([]byte("Subject: " + subject + "\r\n\r\nbody\r\n"))
	}
	opts := []store.DeliverOptions{{Mailbox: "INBOX"}, {Mailbox: "INBOX", Flags: store.Flags{Seen: true}}}
	if _, err := s.DeliverAll(ctx, a.ID, []*store.Incoming{msg("ok"), msg("fail")}, opts); err == nil {
		t.Fatal("DeliverAll with a failing second message succeeded")
	}
	var n int
	if err := s.Pool().QueryRow(ctx, `SELECT count(*) FROM messages WHERE user_id = $1`, a.ID).Scan(&n); err != nil || n != 0 {
		t.Fatalf("messages stored after a failed DeliverAll: %d (%v)", n, err)
	}
	inbox, err := s.Mailbox(ctx, a.ID, "INBOX")
	if err != nil || inbox.UIDNext != 1 {
		t.Fatalf("INBOX uidnext %d after a failed DeliverAll (%v)", inbox.UIDNext, err)
	}
	if left, _ := filepath.Glob(filepath.Join(spool, "*", "*.eml")); len(left) != 0 {
		t.Fatalf("spool files left: %v", left)
	}
	ds, err := s.DeliverAll(ctx, a.ID, []*store.Incoming{msg("one"), msg("two"), msg("three")}, append(opts, opts[0]))
	if err != nil {
		t.Fatal(err)
	}
	for i, d := range ds {
		if d.UID != uint32(i+1) || d.MailboxID != inbox.ID || d.UIDValidity != inbox.UIDValidity {
			t.Errorf("message %d: %+v", i+1, d)
		}
	}
	var seen []bool
	rows, _ := s.Pool().Query(ctx, `SELECT f.seen FROM mailbox_messages mm JOIN message_flags f USING (message_id)
		WHERE mm.mailbox_id = $1 ORDER BY mm.uid`, inbox.ID)
	for rows.Next() {
		var b bool
		rows.Scan(&b)
		seen = append(seen, b)
	}
	if rows.Err() != nil || len(seen) != 3 || seen[0] || !seen[1] || seen[2] {
		t.Fatalf("flags by UID: %v (%v)", seen, rows.Err())
	}
}
