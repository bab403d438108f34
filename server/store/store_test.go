package store_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/crypto/bcrypt"

	"decimail/server/pgrun"
	"decimail/server/query"
	"decimail/server/store"
)

func TestMain(m *testing.M) { os.Exit(pgrun.RunTests(m)) }

// newStore opens a Store on a fresh database with one user "u".
func newStore(t testing.TB) (*store.Store, store.User) {
	t.Helper()
	ctx := context.Background()
	s, err := store.Open(ctx, pgrun.TestDB(t), store.Options{SpoolDir: t.TempDir(), PasswordCost: bcrypt.MinCost})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	u, err := s.CreateUser(ctx, "u", "pw")
	if err != nil {
		t.Fatal(err)
	}
	return s, u
}

func msg(subject, body string) []byte {
	return []byte("From: Alice <alice@example.com>\r\nTo: u@example.test\r\nSubject: " + subject +
		"\r\nMessage-ID: <" + subject + "@example.com>\r\nDate: Mon, 2 Nov 2026 10:00:00 +0100\r\n\r\n" + body + "\r\n")
}

func deliver(t testing.TB, s *store.Store, u store.User, raw []byte, o store.DeliverOptions) store.Delivered {
	t.Helper()
	d, err := s.Deliver(context.Background(), u.ID, raw, o)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// uids returns a mailbox's UIDs in order.
func uids(t testing.TB, s *store.Store, u store.User, name string) []uint32 {
	t.Helper()
	snap, err := s.Select(context.Background(), u.ID, name, true)
	if err != nil {
		t.Fatal(err)
	}
	return snap.UIDs
}

func mailbox(t testing.TB, s *store.Store, u store.User, name string) store.Mailbox {
	t.Helper()
	m, err := s.Mailbox(context.Background(), u.ID, name)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestNewUserHasDefaultFoldersAndViews(t *testing.T) {
	s, u := newStore(t)
	ms, err := s.Mailboxes(context.Background(), u.ID)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, m := range ms {
		got[m.Name] = m.SpecialUse + "|" + m.Definition
		if !m.Subscribed {
			t.Errorf("%s not subscribed", m.Name)
		}
	}
	want := map[string]string{"INBOX": "|", "Sent": `\Sent|`, "Drafts": `\Drafts|`, "Trash": `\Trash|`, "Junk": `\Junk|`,
		"Archive": `\Archive|`, "All Mail": `\All|ALL`, "Flagged": `\Flagged|FLAGGED`, "Unread": "|UNSEEN"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("mailboxes = %v\nwant %v", got, want)
	}
}

func TestAuthenticate(t *testing.T) {
	s, u := newStore(t)
	ctx := context.Background()
	if got, err := s.Authenticate(ctx, "u", "pw"); err != nil || got.ID != u.ID {
		t.Fatalf("good password: %v %v", got, err)
	}
	for _, c := range [][2]string{{"u", "bad"}, {"nobody", "pw"}, {"u", ""}} {
		if _, err := s.Authenticate(ctx, c[0], c[1]); !errors.Is(err, store.ErrAuthFailed) {
			t.Errorf("Authenticate(%q, %q) = %v, want ErrAuthFailed", c[0], c[1], err)
		}
	}
	if err := s.SetPassword(ctx, "u", "new"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, "u", "pw"); !errors.Is(err, store.ErrAuthFailed) {
		t.Fatal("old password still works")
	}
}

func TestAddressLookupExactThenCatchAll(t *testing.T) {
	s, u := newStore(t)
	ctx := context.Background()
	v, err := s.CreateUser(ctx, "v", "pw")
	if err != nil {
		t.Fatal(err)
	}
	must(t, s.AddAddress(ctx, "Boss@Example.com", "u"))
	must(t, s.AddAddress(ctx, "@example.com", "v"))
	for addr, want := range map[string]int64{"boss@example.com": u.ID, "BOSS@example.COM": u.ID, "anyone@example.com": v.ID} {
		got, err := s.LookupAddress(ctx, addr)
		if err != nil || got.ID != want {
			t.Errorf("LookupAddress(%q) = %v, %v; want user %d", addr, got, err, want)
		}
	}
	if _, err := s.LookupAddress(ctx, "x@elsewhere.org"); !errors.Is(err, store.ErrNoUser) {
		t.Errorf("unknown domain: %v", err)
	}
	if err := s.AddAddress(ctx, "boss@example.com", "v"); !errors.Is(err, store.ErrExists) {
		t.Errorf("duplicate address: %v", err)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestDeliverGoesToInboxAndMatchingViews(t *testing.T) {
	s, u := newStore(t)
	d := deliver(t, s, u, msg("hello", "body"), store.DeliverOptions{})
	if d.UID != 1 {
		t.Fatalf("first UID = %d", d.UID)
	}
	for name, want := range map[string]int{"INBOX": 1, "All Mail": 1, "Unread": 1, "Flagged": 0, "Sent": 0} {
		if got := len(uids(t, s, u, name)); got != want {
			t.Errorf("%s has %d messages, want %d", name, got, want)
		}
	}
	// The spool copy is byte-exact.
	var path string
	must(t, s.Pool().QueryRow(context.Background(), `SELECT spool_path FROM messages WHERE id = $1`, d.MessageID).Scan(&path))
	b, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(b, msg("hello", "body")) {
		t.Fatalf("spool file %s: %v", path, err)
	}
}

// UIDs are strictly ascending and never reused, including for a message that
// enters a query mailbox late (RFC 3501 §2.3.1.1).
func TestUIDsAscendingNeverReused(t *testing.T) {
	s, u := newStore(t)
	ctx := context.Background()
	_, err := s.CreateMailbox(ctx, u.ID, "Important", "OR FLAGGED OR SUBJECT urgent SUBJECT important", "")
	must(t, err)
	a := deliver(t, s, u, msg("a", "x"), store.DeliverOptions{})
	b := deliver(t, s, u, msg("urgent-b", "x"), store.DeliverOptions{})
	if got := uids(t, s, u, "Important"); !slices.Equal(got, []uint32{1}) {
		t.Fatalf("Important = %v, want [1] (only b)", got)
	}
	// a enters late, when flagged: it gets a UID above b's.
	ib := mailbox(t, s, u, "INBOX")
	_, err = s.StoreFlags(ctx, ib.Box(), []uint32{a.UID}, store.FlagsAdd, store.Flags{Flagged: true})
	must(t, err)
	if got := uids(t, s, u, "Important"); !slices.Equal(got, []uint32{1, 2}) {
		t.Fatalf("Important after flagging a = %v, want [1 2]", got)
	}
	// a leaves when unflagged, and re-enters with a new UID 3 (2 is never reused).
	_, err = s.StoreFlags(ctx, ib.Box(), []uint32{a.UID}, store.FlagsDel, store.Flags{Flagged: true})
	must(t, err)
	if got := uids(t, s, u, "Important"); !slices.Equal(got, []uint32{1}) {
		t.Fatalf("Important after unflagging = %v, want [1]", got)
	}
	_, err = s.StoreFlags(ctx, ib.Box(), []uint32{a.UID}, store.FlagsSet, store.Flags{Flagged: true, Seen: true})
	must(t, err)
	if got := uids(t, s, u, "Important"); !slices.Equal(got, []uint32{1, 3}) {
		t.Fatalf("Important after re-flagging = %v, want [1 3]", got)
	}
	// Expunged UIDs in INBOX are not reused either.
	_, err = s.StoreFlags(ctx, ib.Box(), []uint32{b.UID}, store.FlagsAdd, store.Flags{Deleted: true})
	must(t, err)
	gone, err := s.Expunge(ctx, ib.Box(), nil)
	must(t, err)
	if !slices.Equal(gone, []uint32{b.UID}) {
		t.Fatalf("expunged %v, want [%d]", gone, b.UID)
	}
	c := deliver(t, s, u, msg("c", "x"), store.DeliverOptions{})
	if c.UID != 3 {
		t.Fatalf("next INBOX UID = %d, want 3", c.UID)
	}
}

// Flag changes move messages in and out of a flag-based view, and every
// session can learn it by modseq: tombstones for leaving, new rows for entering.
func TestFlagChangesMoveMessagesThroughViews(t *testing.T) {
	s, u := newStore(t)
	ctx := context.Background()
	var ds []store.Delivered
	for i := range 4 {
		ds = append(ds, deliver(t, s, u, msg(fmt.Sprint("m", i), "x"), store.DeliverOptions{}))
	}
	unread := mailbox(t, s, u, "Unread")
	snap, err := s.Select(ctx, u.ID, "Unread", false)
	must(t, err)
	if !slices.Equal(snap.UIDs, []uint32{1, 2, 3, 4}) || !slices.Equal(snap.Recent, []uint32{1, 2, 3, 4}) {
		t.Fatalf("Unread snapshot %v recent %v", snap.UIDs, snap.Recent)
	}
	ib := mailbox(t, s, u, "INBOX")
	ch, err := s.StoreFlags(ctx, ib.Box(), []uint32{ds[1].UID, ds[2].UID}, store.FlagsAdd, store.Flags{Seen: true})
	must(t, err)
	if len(ch) != 2 || !ch[0].Flags.Seen || ch[0].ModSeq <= snap.ModSeq {
		t.Fatalf("StoreFlags returned %+v", ch)
	}
	got, err := s.ChangesSince(ctx, unread.Box(), snap.ModSeq, true)
	must(t, err)
	if !slices.Equal(got.Expunged, []uint32{2, 3}) || len(got.Changed) != 0 {
		t.Fatalf("Unread changes: %+v", got)
	}
	// Marking one unread again: it re-enters with UID 5.
	_, err = s.StoreFlags(ctx, ib.Box(), []uint32{ds[2].UID}, store.FlagsDel, store.Flags{Seen: true})
	must(t, err)
	got2, err := s.ChangesSince(ctx, unread.Box(), got.ModSeq, true)
	must(t, err)
	if len(got2.Changed) != 1 || got2.Changed[0].UID != 5 || !got2.Changed[0].Recent || len(got2.Expunged) != 0 {
		t.Fatalf("Unread changes after re-entry: %+v", got2)
	}
	// INBOX sessions see the flag changes as changed rows, not expunges.
	ibch, err := s.ChangesSince(ctx, ib.Box(), snap.ModSeq, false)
	must(t, err)
	if len(ibch.Changed) != 2 || len(ibch.Expunged) != 0 {
		t.Fatalf("INBOX changes: %+v", ibch)
	}
	// A no-op STORE changes no modseq.
	before := ibch.ModSeq
	_, err = s.StoreFlags(ctx, ib.Box(), []uint32{ds[1].UID}, store.FlagsAdd, store.Flags{Seen: true})
	must(t, err)
	if c, _ := s.ChangesSince(ctx, ib.Box(), before, false); len(c.Changed) != 0 {
		t.Fatalf("no-op STORE produced changes %+v", c)
	}
}

func TestKeywordsCaseInsensitive(t *testing.T) {
	s, u := newStore(t)
	ctx := context.Background()
	d := deliver(t, s, u, msg("k", "x"), store.DeliverOptions{Flags: store.Flags{Keywords: []string{"$Forwarded"}}})
	ib := mailbox(t, s, u, "INBOX")
	ch, err := s.StoreFlags(ctx, ib.Box(), []uint32{d.UID}, store.FlagsAdd, store.Flags{Keywords: []string{"$forwarded", "Work"}})
	must(t, err)
	if !slices.Equal(ch[0].Flags.Keywords, []string{"$Forwarded", "Work"}) {
		t.Fatalf("keywords %v", ch[0].Flags.Keywords)
	}
	ch, err = s.StoreFlags(ctx, ib.Box(), []uint32{d.UID}, store.FlagsDel, store.Flags{Keywords: []string{"WORK"}})
	must(t, err)
	if !slices.Equal(ch[0].Flags.Keywords, []string{"$Forwarded"}) {
		t.Fatalf("keywords after removal %v", ch[0].Flags.Keywords)
	}
}

// Eight goroutines deliver to one user at once: nothing lost, nothing doubled,
// UIDs dense and unique in INBOX and in the view.
func TestConcurrentDeliveries(t *testing.T) {
	s, u := newStore(t)
	const workers, each = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if _, err := s.Deliver(context.Background(), u.ID, msg(fmt.Sprintf("w%d-%d", w, i), "x"), store.DeliverOptions{}); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, name := range []string{"INBOX", "All Mail", "Unread"} {
		got := uids(t, s, u, name)
		if len(got) != workers*each {
			t.Fatalf("%s has %d messages, want %d", name, len(got), workers*each)
		}
		for i, uid := range got {
			if uid != uint32(i+1) {
				t.Fatalf("%s UIDs not dense and ascending at %d: %d", name, i, uid)
			}
		}
	}
	var subjects int
	must(t, s.Pool().QueryRow(context.Background(), `SELECT count(DISTINCT subject) FROM messages`).Scan(&subjects))
	if subjects != workers*each {
		t.Fatalf("%d distinct messages stored", subjects)
	}
}

// A corrupt or truncated message is stored byte-exact and still listable.
func TestCorruptMessageStoredExactly(t *testing.T) {
	s, u := newStore(t)
	ctx := context.Background()
	raws := [][]byte{
		[]byte("Content-Type: multipart/mixed; boundary=zz\r\nSubject: cut\r\n\r\n--zz\r\nContent-Type: text/plain\r\n\r\nhalf a mess"),
		[]byte("no header colon at all\x00\xff\xfe binary"),
		[]byte(""),
		[]byte("Subject: =?utf-8?B?broken\r\n"),
	}
	ib := mailbox(t, s, u, "INBOX")
	for _, raw := range raws {
		d := deliver(t, s, u, raw, store.DeliverOptions{})
		var got []byte
		err := s.Fetch(ctx, ib.Box(), []uint32{d.UID}, store.FetchCols{Header: true, Body: true, Envelope: true, BodyStructure: true, Size: true},
			func(r *store.FetchRow) error {
				got = append(append([]byte{}, r.Header...), r.Body...)
				if r.Size != len(raw) || len(r.Envelope) == 0 || len(r.BodyStructure) == 0 {
					return fmt.Errorf("row %+v", r)
				}
				return nil
			})
		must(t, err)
		if !bytes.Equal(got, raw) {
			t.Errorf("stored %q, want %q", got, raw)
		}
	}
	if n := len(uids(t, s, u, "INBOX")); n != len(raws) {
		t.Fatalf("INBOX lists %d of %d", n, len(raws))
	}
}

// EXPUNGE in a folder removes membership; the message is deleted (delete_log)
// only when no folder holds it. EXPUNGE in a view moves the message to
// Trash (issue 14), where EXPUNGE deletes it.
func TestExpungeSemantics(t *testing.T) {
	s, u := newStore(t)
	ctx := context.Background()
	a := deliver(t, s, u, msg("a", "x"), store.DeliverOptions{})
	b := deliver(t, s, u, msg("b", "x"), store.DeliverOptions{})
	ib := mailbox(t, s, u, "INBOX")
	c, err := s.Copy(ctx, ib.Box(), []uint32{a.UID, b.UID}, "Archive")
	must(t, err)
	if !slices.Equal(c.Src, []uint32{1, 2}) || !slices.Equal(c.Dst, []uint32{1, 2}) {
		t.Fatalf("copy %+v", c)
	}
	_, err = s.StoreFlags(ctx, ib.Box(), []uint32{a.UID}, store.FlagsAdd, store.Flags{Deleted: true})
	must(t, err)
	_, err = s.Expunge(ctx, ib.Box(), nil)
	must(t, err)
	if got := uids(t, s, u, "Archive"); len(got) != 2 {
		t.Fatalf("Archive lost a message held there: %v", got)
	}
	if got := uids(t, s, u, "All Mail"); len(got) != 2 {
		t.Fatalf("All Mail = %v", got)
	}
	var logged int
	must(t, s.Pool().QueryRow(ctx, `SELECT count(*) FROM delete_log`).Scan(&logged))
	if logged != 0 {
		t.Fatalf("delete_log has %d rows, want 0", logged)
	}
	// Expunge from the view moves the message to Trash, out of Archive.
	all := mailbox(t, s, u, "All Mail")
	gone, err := s.Expunge(ctx, all.Box(), nil) // a still \Deleted
	must(t, err)
	if !slices.Equal(gone, []uint32{1}) {
		t.Fatalf("view expunge removed %v", gone)
	}
	if got := uids(t, s, u, "Archive"); len(got) != 1 {
		t.Fatalf("Archive after view expunge: %v", got)
	}
	if got := uids(t, s, u, "Trash"); len(got) != 1 {
		t.Fatalf("Trash after view expunge: %v", got)
	}
	if got := uids(t, s, u, "All Mail"); !slices.Equal(got, []uint32{2}) {
		t.Fatalf("All Mail after view expunge: %v", got)
	}
	must(t, s.Pool().QueryRow(ctx, `SELECT count(*) FROM delete_log WHERE message_id = $1`, a.MessageID).Scan(&logged))
	if logged != 0 {
		t.Fatalf("delete_log rows for a: %d", logged)
	}
	// In Trash it is not \Deleted any more; EXPUNGE there deletes it.
	trash := mailbox(t, s, u, "Trash")
	if gone, err := s.Expunge(ctx, trash.Box(), nil); err != nil || len(gone) != 0 {
		t.Fatalf("Trash expunge without Deleted: %v %v", gone, err)
	}
	_, err = s.StoreFlags(ctx, trash.Box(), []uint32{1}, store.FlagsAdd, store.Flags{Deleted: true})
	must(t, err)
	_, err = s.Expunge(ctx, trash.Box(), nil)
	must(t, err)
	must(t, s.Pool().QueryRow(ctx, `SELECT count(*) FROM delete_log WHERE message_id = $1`, a.MessageID).Scan(&logged))
	if logged != 1 {
		t.Fatalf("delete_log rows for a after Trash expunge: %d", logged)
	}
	// UID EXPUNGE only touches the given UIDs.
	arch := mailbox(t, s, u, "Archive")
	_, err = s.StoreFlags(ctx, arch.Box(), []uint32{2}, store.FlagsAdd, store.Flags{Deleted: true})
	must(t, err)
	gone, err = s.Expunge(ctx, arch.Box(), []uint32{1})
	must(t, err)
	if len(gone) != 0 {
		t.Fatalf("UID EXPUNGE 1 removed %v", gone)
	}
}

func TestCopyMoveIntoViewRefused(t *testing.T) {
	s, u := newStore(t)
	ctx := context.Background()
	a := deliver(t, s, u, msg("a", "x"), store.DeliverOptions{})
	ib := mailbox(t, s, u, "INBOX")
	if _, err := s.Copy(ctx, ib.Box(), []uint32{a.UID}, "Flagged"); !errors.Is(err, store.ErrCannot) {
		t.Fatalf("copy into view: %v", err)
	}
	if _, err := s.Deliver(ctx, u.ID, msg("b", "x"), store.DeliverOptions{Mailbox: "Unread"}); !errors.Is(err, store.ErrCannot) {
		t.Fatalf("append into view: %v", err)
	}
	if _, err := s.Copy(ctx, ib.Box(), []uint32{a.UID}, "Nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("copy into missing: %v", err)
	}
	m, err := s.Move(ctx, ib.Box(), []uint32{a.UID}, "Trash")
	must(t, err)
	if !slices.Equal(m.Dst, []uint32{1}) || len(uids(t, s, u, "INBOX")) != 0 || len(uids(t, s, u, "Trash")) != 1 {
		t.Fatalf("move: %+v", m)
	}
	// Only Trash holds it: it left the views (issue 14) ...
	if got := uids(t, s, u, "Unread"); len(got) != 0 {
		t.Fatalf("Unread after move to Trash: %v", got)
	}
	// ... and is back, with a new UID, when it leaves Trash.
	tr := mailbox(t, s, u, "Trash")
	_, err = s.Move(ctx, tr.Box(), []uint32{1}, "INBOX")
	must(t, err)
	if got := uids(t, s, u, "Unread"); !slices.Equal(got, []uint32{2}) {
		t.Fatalf("Unread after move out of Trash: %v", got)
	}
	// Moving from a view takes the message out of its folders into the target.
	unread := mailbox(t, s, u, "Unread")
	m, err = s.Move(ctx, unread.Box(), []uint32{2}, "Archive")
	must(t, err)
	if len(uids(t, s, u, "INBOX")) != 0 || len(uids(t, s, u, "Archive")) != 1 || !slices.Equal(uids(t, s, u, "Unread"), []uint32{3}) {
		t.Fatalf("move from view: %+v", m)
	}
}

func TestMailboxHierarchyRenameDelete(t *testing.T) {
	s, u := newStore(t)
	ctx := context.Background()
	_, err := s.CreateMailbox(ctx, u.ID, "Lists/golang/nuts", "", "")
	must(t, err)
	for _, n := range []string{"Lists", "Lists/golang", "Lists/golang/nuts"} {
		mailbox(t, s, u, n)
	}
	if _, err := s.CreateMailbox(ctx, u.ID, "lists/golang", "", ""); err != nil {
		t.Fatalf("names are case-sensitive except INBOX: %v", err)
	}
	if _, err := s.CreateMailbox(ctx, u.ID, "inbox", "", ""); !errors.Is(err, store.ErrExists) {
		t.Fatalf("create inbox: %v", err)
	}
	before := mailbox(t, s, u, "Lists/golang")
	must(t, s.RenameMailbox(ctx, u.ID, "Lists", "Mail/Lists"))
	after := mailbox(t, s, u, "Mail/Lists/golang")
	if after.ID != before.ID || after.UIDValidity != before.UIDValidity {
		t.Fatal("rename changed id or UIDVALIDITY")
	}
	mailbox(t, s, u, "Mail/Lists/golang/nuts")
	if err := s.DeleteMailbox(ctx, u.ID, "Mail/Lists"); !errors.Is(err, store.ErrHasChildren) {
		t.Fatalf("delete with children: %v", err)
	}
	must(t, s.DeleteMailbox(ctx, u.ID, "Mail/Lists/golang/nuts"))
	if err := s.DeleteMailbox(ctx, u.ID, "INBOX"); !errors.Is(err, store.ErrSpecialFolder) {
		t.Fatalf("delete INBOX: %v", err)
	}
	// Renaming INBOX moves its messages and leaves it empty (RFC 3501 §6.3.5).
	deliver(t, s, u, msg("a", "x"), store.DeliverOptions{})
	deliver(t, s, u, msg("b", "x"), store.DeliverOptions{})
	must(t, s.RenameMailbox(ctx, u.ID, "inbox", "Old"))
	if n := len(uids(t, s, u, "INBOX")); n != 0 {
		t.Fatalf("INBOX has %d after rename", n)
	}
	if got := uids(t, s, u, "Old"); !slices.Equal(got, []uint32{1, 2}) {
		t.Fatalf("Old = %v", got)
	}
	if n := len(uids(t, s, u, "All Mail")); n != 2 {
		t.Fatalf("All Mail = %d", n)
	}
}

// Changing a definition recomputes membership under a new UIDVALIDITY.
func TestDefineMailboxNewUIDValidity(t *testing.T) {
	s, u := newStore(t)
	ctx := context.Background()
	deliver(t, s, u, msg("golang news", "x"), store.DeliverOptions{})
	deliver(t, s, u, msg("rust news", "x"), store.DeliverOptions{})
	m1, err := s.DefineMailbox(ctx, u.ID, "Go", "SUBJECT golang")
	must(t, err)
	if got := uids(t, s, u, "Go"); !slices.Equal(got, []uint32{1}) {
		t.Fatalf("Go = %v", got)
	}
	m2, err := s.DefineMailbox(ctx, u.ID, "Go", "OR SUBJECT golang SUBJECT rust")
	must(t, err)
	if m2.UIDValidity <= m1.UIDValidity || m2.ID != m1.ID {
		t.Fatalf("UIDVALIDITY %d -> %d", m1.UIDValidity, m2.UIDValidity)
	}
	if got := uids(t, s, u, "Go"); !slices.Equal(got, []uint32{1, 2}) {
		t.Fatalf("Go after redefinition = %v", got)
	}
	for _, bad := range []string{"UID 1:5", "SUBJECT", "NOSUCHKEY x", "RECENT"} {
		if _, err := s.DefineMailbox(ctx, u.ID, "Bad", bad); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("definition %q: %v", bad, err)
		}
	}
	if _, err := s.DefineMailbox(ctx, u.ID, "INBOX", "ALL"); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("defining a folder: %v", err)
	}
}

// A change another process commits reaches this process's subscribers of
// that mailbox only, through LISTEN.
func TestNotifierSignalsAfterCommit(t *testing.T) {
	s, u := newStore(t)
	other := secondStore(t, s)
	ib := mailbox(t, s, u, "INBOX")
	tr := mailbox(t, s, u, "Trash")
	sub := s.Notifier().Subscribe(u.ID, ib.ID, s.Notifier().Gen())
	defer sub.Close()
	trash := s.Notifier().Subscribe(u.ID, tr.ID, s.Notifier().Gen())
	defer trash.Close()
	drain(sub, trash) // the listener's first connect signals everyone
	deliver(t, other, u, msg("n", "x"), store.DeliverOptions{})
	select {
	case <-sub.C:
	case <-time.After(5 * time.Second):
		t.Fatal("no notification for INBOX")
	}
	// The listener dispatches notifications in commit order: once a later
	// change's has arrived, a signal for Trash from the INBOX delivery
	// would be there already.
	sent := s.Notifier().Subscribe(u.ID, mailbox(t, s, u, "Sent").ID, s.Notifier().Gen())
	defer sent.Close()
	drain(sent)
	deliver(t, other, u, msg("later", "x"), store.DeliverOptions{Mailbox: "Sent"})
	select {
	case <-sent.C:
	case <-time.After(5 * time.Second):
		t.Fatal("no notification for Sent")
	}
	select {
	case <-trash.C:
		t.Fatal("Trash subscriber signalled for an INBOX delivery")
	default:
	}
}

// A change made through this process's store signals every subscription of
// its user before the store call returns (Touch, from the user's gate), and
// no other user's: a session may skip its read when not signalled.
func TestNotifierTouchesBeforeReturn(t *testing.T) {
	s, u := newStore(t)
	ctx := context.Background()
	v, err := s.CreateUser(ctx, "v", "pw")
	must(t, err)
	n := s.Notifier()
	tr := n.Subscribe(u.ID, mailbox(t, s, u, "Trash").ID, n.Gen())
	defer tr.Close()
	vin := n.Subscribe(v.ID, mailbox(t, s, v, "INBOX").ID, n.Gen())
	defer vin.Close()
	drain(tr, vin)
	deliver(t, s, u, msg("t", "x"), store.DeliverOptions{})
	select {
	case <-tr.C:
	default:
		t.Fatal("the user's subscription was not signalled when Deliver returned")
	}
	ib := mailbox(t, s, u, "INBOX")
	_, err = s.StoreFlags(ctx, ib.Box(), []uint32{1}, store.FlagsAdd, store.Flags{Seen: true})
	must(t, err)
	select {
	case <-tr.C:
	default:
		t.Fatal("not signalled when StoreFlags returned")
	}
	select {
	case <-vin.C:
		t.Fatal("another user's subscription was signalled")
	default:
	}
}

// A subscription made after a snapshot is signalled at once when its
// mailbox was notified after the Gen taken before the snapshot.
func TestNotifierSubscribeSince(t *testing.T) {
	s, u := newStore(t)
	other := secondStore(t, s)
	n := s.Notifier()
	ib := mailbox(t, s, u, "INBOX")
	watch := n.Subscribe(u.ID, ib.ID, n.Gen()) // starts the listener
	defer watch.Close()
	drain(watch)
	gen := n.Gen()
	deliver(t, other, u, msg("s", "x"), store.DeliverOptions{}) // to INBOX, by another process
	select {
	case <-watch.C:
	case <-time.After(5 * time.Second):
		t.Fatal("no notification for INBOX")
	}
	late := n.Subscribe(u.ID, ib.ID, gen)
	defer late.Close()
	select {
	case <-late.C:
	default:
		t.Fatal("a subscription after a notified snapshot was not signalled")
	}
	fresh := n.Subscribe(u.ID, ib.ID, n.Gen())
	defer fresh.Close()
	select {
	case <-fresh.C:
		t.Fatal("a subscription with a current Gen was signalled")
	default:
	}
}

// secondStore opens another store on s's database: another server process
// as far as notifications go (its own listener, its own gates).
// A change made through this process signals its sessions once, when it
// leaves the user's gate; its NOTIFY, coming back through the listener,
// must not signal them again (schema 0024: it names its origin). Nor does a
// \Recent claim's. Another process's change still signals.
func TestOwnNotificationsSkipped(t *testing.T) {
	s, u := newStore(t)
	other := secondStore(t, s)
	ctx := context.Background()
	n := s.Notifier()
	ib := mailbox(t, s, u, "INBOX")
	watch := n.Subscribe(u.ID, ib.ID, n.Gen())
	defer watch.Close()
	must(t, s.Barrier(ctx))
	drain(watch)
	signalled := func(what string) {
		t.Helper()
		select {
		case <-watch.C:
		default:
			t.Fatalf("%s: not signalled when it returned", what)
		}
	}
	deliver(t, s, u, msg("own", "x"), store.DeliverOptions{})
	signalled("delivery")
	_, err := s.StoreFlags(ctx, ib.Box(), []uint32{1}, store.FlagsAdd, store.Flags{Flagged: true})
	must(t, err)
	signalled("flag change")
	ch, err := s.ChangesSince(ctx, ib.Box(), 0, true)
	must(t, err)
	if len(ch.Changed) != 1 || !ch.Changed[0].Recent {
		t.Fatalf("the poll did not claim the new message: %+v", ch.Changed)
	}
	must(t, s.Barrier(ctx)) // every notification committed before it has come back
	select {
	case <-watch.C:
		t.Fatal("the process's own notification signalled its session again")
	default:
	}
	if n.OwnSkipped() == 0 {
		t.Fatal("no own notification was skipped")
	}
	deliver(t, other, u, msg("theirs", "x"), store.DeliverOptions{})
	select {
	case <-watch.C:
	case <-time.After(5 * time.Second):
		t.Fatal("another process's delivery did not signal")
	}
}

func secondStore(t *testing.T, s *store.Store) *store.Store {
	t.Helper()
	o, err := store.Open(context.Background(), s.Pool().Config().ConnString(), store.Options{SpoolDir: t.TempDir(), PasswordCost: bcrypt.MinCost})
	must(t, err)
	t.Cleanup(o.Close)
	return o
}

// drain empties the subscriptions' channels.
func drain(subs ...*store.Subscription) {
	for _, s := range subs {
		select {
		case <-s.C:
		default:
		}
	}
}

func TestRecentClaimedOnce(t *testing.T) {
	s, u := newStore(t)
	ctx := context.Background()
	deliver(t, s, u, msg("r", "x"), store.DeliverOptions{})
	ro, err := s.Select(ctx, u.ID, "INBOX", true)
	must(t, err)
	rw, err := s.Select(ctx, u.ID, "INBOX", false)
	must(t, err)
	rw2, err := s.Select(ctx, u.ID, "INBOX", false)
	must(t, err)
	if len(ro.Recent) != 1 || len(rw.Recent) != 1 || len(rw2.Recent) != 0 {
		t.Fatalf("recent: examine %v, first select %v, second select %v", ro.Recent, rw.Recent, rw2.Recent)
	}
}

func TestSpoolDirIsPerUser(t *testing.T) {
	s, u := newStore(t)
	d := deliver(t, s, u, msg("s", "x"), store.DeliverOptions{})
	var path string
	must(t, s.Pool().QueryRow(context.Background(), `SELECT spool_path FROM messages WHERE id = $1`, d.MessageID).Scan(&path))
	if filepath.Base(filepath.Dir(path)) != fmt.Sprint(u.ID) || filepath.Base(path) != fmt.Sprint(d.MessageID, ".eml") {
		t.Fatalf("spool path %s", path)
	}
}

// BenchmarkDeliver measures delivery throughput with 8 concurrent deliverers
// to one user (b.N messages in all); see msgs/s.
func BenchmarkDeliver(b *testing.B) {
	s, u := newStore(b)
	raw := bytes.Repeat([]byte("a line of body text for the benchmark message\r\n"), 180) // ~8.8 KB
	body := msg("bench", string(raw))
	b.SetParallelism(4) // 2 cores x 4 = 8 goroutines
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.Deliver(context.Background(), u.ID, body, store.DeliverOptions{}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}

// COPY into a folder that already holds the message makes a real copy with
// its own flags and spool file (RFC 3501 §6.4.7); MOVE does not duplicate.
func TestCopyIntoHolderMakesRealCopy(t *testing.T) {
	s, u := newStore(t)
	ctx := context.Background()
	a := deliver(t, s, u, msg("a", "x"), store.DeliverOptions{})
	ib := mailbox(t, s, u, "INBOX")
	c, err := s.Copy(ctx, ib.Box(), []uint32{a.UID}, "INBOX")
	must(t, err)
	if !slices.Equal(c.Src, []uint32{1}) || !slices.Equal(c.Dst, []uint32{2}) {
		t.Fatalf("copy to self: %+v", c)
	}
	_, err = s.StoreFlags(ctx, ib.Box(), []uint32{2}, store.FlagsAdd, store.Flags{Flagged: true})
	must(t, err)
	ch, err := s.StoreFlags(ctx, ib.Box(), []uint32{1, 2}, store.FlagsAdd, store.Flags{})
	must(t, err)
	if ch[0].Flags.Flagged || !ch[1].Flags.Flagged {
		t.Fatalf("copy shares flags with the original: %+v", ch)
	}
	if n := len(uids(t, s, u, "All Mail")); n != 2 {
		t.Fatalf("All Mail has %d, want the original and the copy", n)
	}
	var paths []string
	rows, _ := s.Pool().Query(ctx, `SELECT spool_path FROM messages ORDER BY id`)
	for rows.Next() {
		var p string
		rows.Scan(&p)
		paths = append(paths, p)
	}
	if len(paths) != 2 || paths[0] == paths[1] || paths[1] == "" {
		t.Fatalf("spool paths %q", paths)
	}
	if b, err := os.ReadFile(paths[1]); err != nil || !bytes.Equal(b, msg("a", "x")) {
		t.Fatalf("copy's spool file: %v", err)
	}
	// MOVE of a message the destination holds leaves one copy there.
	_, err = s.Copy(ctx, ib.Box(), []uint32{1}, "Archive")
	must(t, err)
	all := mailbox(t, s, u, "All Mail")
	m, err := s.Move(ctx, all.Box(), []uint32{1}, "Archive")
	must(t, err)
	if !slices.Equal(m.Dst, []uint32{1}) || len(uids(t, s, u, "Archive")) != 1 {
		t.Fatalf("move into holder: %+v, Archive %v", m, uids(t, s, u, "Archive"))
	}
}

func TestCreateDoesNotSubscribeAndInboxRenamesIntoItself(t *testing.T) {
	s, u := newStore(t)
	ctx := context.Background()
	_, err := s.CreateMailbox(ctx, u.ID, "Projects/x", "", "")
	must(t, err)
	subs, err := s.Subscriptions(ctx, u.ID)
	must(t, err)
	if slices.Contains(subs, "Projects") || slices.Contains(subs, "Projects/x") {
		t.Fatalf("CREATE subscribed: %v", subs)
	}
	deliver(t, s, u, msg("a", "x"), store.DeliverOptions{})
	must(t, s.RenameMailbox(ctx, u.ID, "INBOX", "INBOX/old"))
	if got := uids(t, s, u, "INBOX/old"); len(got) != 1 || len(uids(t, s, u, "INBOX")) != 0 {
		t.Fatalf("INBOX/old %v", got)
	}
}

// TestDeletesLeaveNothingBehind: memberships and tombstones have no foreign
// keys (schema comment); the parents' delete triggers must remove what
// pointed at a deleted message, mailbox or user, and the counters must stay
// right on the way.
func TestDeletesLeaveNothingBehind(t *testing.T) {
	s, u := newStore(t)
	ctx := context.Background()
	dangling := func(when string) {
		t.Helper()
		var mm, ex, fl int
		must(t, s.Pool().QueryRow(ctx, `SELECT
			(SELECT count(*) FROM mailbox_messages mm WHERE NOT EXISTS (SELECT 1 FROM mailboxes b WHERE b.id = mm.mailbox_id)
				OR NOT EXISTS (SELECT 1 FROM messages m WHERE m.id = mm.message_id)),
			(SELECT count(*) FROM mailbox_expunges e WHERE NOT EXISTS (SELECT 1 FROM mailboxes b WHERE b.id = e.mailbox_id)),
			(SELECT count(*) FROM message_flags f WHERE NOT EXISTS (SELECT 1 FROM messages m WHERE m.id = f.message_id))`).Scan(&mm, &ex, &fl))
		if mm+ex+fl != 0 {
			t.Fatalf("%s: %d memberships, %d tombstones, %d flag rows point at nothing", when, mm, ex, fl)
		}
		ms, err := s.Mailboxes(ctx, u.ID)
		must(t, err)
		for _, mb := range ms {
			checkCounters(ctx, t, s, mb)
		}
	}
	var ds []store.Delivered
	for i := range 4 {
		ds = append(ds, deliver(t, s, u, msg(fmt.Sprintf("golang %d", i), "body"), store.DeliverOptions{}))
	}
	_, err := s.DefineMailbox(ctx, u.ID, "Go", "SUBJECT golang")
	must(t, err)
	_, err = s.CreateMailbox(ctx, u.ID, "Keep", "", "")
	must(t, err)
	ib, err := s.Mailbox(ctx, u.ID, "INBOX")
	must(t, err)
	_, err = s.Copy(ctx, ib.Box(), []uint32{ds[0].UID, ds[1].UID}, "Keep")
	must(t, err)
	dangling("after copy")
	// Expunge from a view deletes the message everywhere (messages trigger).
	gomb, err := s.Mailbox(ctx, u.ID, "Go")
	must(t, err)
	goUIDs := uids(t, s, u, "Go")
	_, err = s.StoreFlags(ctx, gomb.Box(), goUIDs[3:], store.FlagsAdd, store.Flags{Deleted: true})
	must(t, err)
	_, err = s.Expunge(ctx, gomb.Box(), nil)
	must(t, err)
	dangling("after expunge in a view")
	// A message deleted behind the store's back (an admin's DELETE).
	_, err = s.Pool().Exec(ctx, `DELETE FROM messages WHERE id = (SELECT message_id FROM mailbox_messages WHERE mailbox_id = $1 AND uid = $2)`, ib.ID, ds[2].UID)
	must(t, err)
	dangling("after DELETE FROM messages")
	must(t, s.DeleteMailbox(ctx, u.ID, "Keep"))
	dangling("after DELETE of a folder")
	must(t, s.DeleteMailbox(ctx, u.ID, "Go"))
	dangling("after DELETE of a view")
	must(t, s.DeleteUser(ctx, "u"))
	dangling("after deleting the user")
}

// TestDeliverWhileRedefining: Deliver matches views before taking the user's
// lock and checks under it that they did not change (else it starts over).
// Views redefined during concurrent deliveries must still hold exactly what
// their final definition matches. The race is timing-dependent: three rounds.
func TestDeliverWhileRedefining(t *testing.T) {
	for round := range 3 {
		t.Run(fmt.Sprint(round), deliverWhileRedefining)
	}
}

func deliverWhileRedefining(t *testing.T) {
	s, u := newStore(t)
	ctx := context.Background()
	_, err := s.DefineMailbox(ctx, u.ID, "V", "SUBJECT golang")
	must(t, err)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 15 {
				subj := []string{"golang", "rust"}[(g+i)%2]
				if _, err := s.Deliver(ctx, u.ID, msg(fmt.Sprintf("%s %d %d", subj, g, i), "x"), store.DeliverOptions{}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	final := ""
	wg.Go(func() {
		for i := range 12 {
			final = []string{"SUBJECT rust", "SUBJECT golang"}[i%2]
			if _, err := s.DefineMailbox(ctx, u.ID, "V", final); err != nil {
				t.Error(err)
				return
			}
		}
	})
	wg.Wait()
	want := 30 // half of the 60 messages have each subject
	if got := len(uids(t, s, u, "V")); got != want {
		t.Fatalf("V (%s) holds %d messages, want %d", final, got, want)
	}
	if got := len(uids(t, s, u, "INBOX")); got != 60 {
		t.Fatalf("INBOX holds %d messages, want 60", got)
	}
	ms, err := s.Mailboxes(ctx, u.ID)
	must(t, err)
	for _, mb := range ms {
		checkCounters(ctx, t, s, mb)
	}
}

// TestTextsIndexedInBackground: a delivery stores its text unindexed; once
// deliveries pause, the indexer (indexer.go) indexes it and merges the
// trigram indexes' pending lists, so no later delivery stalls merging them
// and searches do not scan them. A search finds the text before and after.
func TestTextsIndexedInBackground(t *testing.T) {
	s, u := newStore(t)
	ctx := context.Background()
	if _, err := s.Pool().Exec(ctx, `CREATE EXTENSION IF NOT EXISTS pgstattuple`); err != nil {
		t.Fatalf("pgstattuple (PostgreSQL contrib) is needed to read the pending lists: %v", err)
	}
	passes := make(chan int, 100)
	s.OnIndexPass(func(n int) {
		select {
		case passes <- n:
		default: // the test has stopped reading
		}
	})
	for i := range 40 {
		deliver(t, s, u, msg(fmt.Sprintf("burst %d", i), strings.Repeat("lorem ipsum dolor sit amet ", 40)+fmt.Sprintf("token%03d", i)), store.DeliverOptions{})
	}
	inbox, err := s.Mailbox(ctx, u.ID, "INBOX")
	must(t, err)
	search := func() []uint32 {
		t.Helper()
		n, err := query.ParseDefinition("BODY token017")
		must(t, err)
		uids, err := s.Search(ctx, inbox.Box(), n, &query.Env{})
		must(t, err)
		return uids
	}
	var unindexed int
	must(t, s.Pool().QueryRow(ctx, `SELECT count(*) FROM message_texts WHERE NOT indexed`).Scan(&unindexed))
	if unindexed == 0 {
		t.Fatal("the texts of 40 deliveries in a row were indexed during the burst (want: after it)")
	}
	if got := search(); !slices.Equal(got, []uint32{18}) {
		t.Fatalf("BODY token017 before indexing: %v, want [18]", got)
	}
	// After each pass of the indexer: done once nothing is left unindexed
	// and the pending list is merged.
	timeout := time.After(10 * time.Second)
	for indexed := 0; ; {
		var pending int64
		must(t, s.Pool().QueryRow(ctx, `SELECT pending_tuples FROM pgstatginindex('message_texts_body_trgm')`).Scan(&pending))
		must(t, s.Pool().QueryRow(ctx, `SELECT count(*) FROM message_texts WHERE NOT indexed`).Scan(&unindexed))
		if pending == 0 && unindexed == 0 {
			break
		}
		select {
		case n := <-passes:
			indexed += n
		case <-timeout:
			t.Fatalf("10 s after 40 deliveries: %d texts unindexed, %d tuples in the body index's pending list (the indexer's passes indexed %d)", unindexed, pending, indexed)
		}
	}
	if got := search(); !slices.Equal(got, []uint32{18}) {
		t.Fatalf("BODY token017 after indexing: %v, want [18]", got)
	}
}

// TestSearchPlanUsesTextIndexes pins that a compiled text condition can use
// the partial trigram indexes and the index of unindexed texts
// (query: compiler.text). Written as (indexed AND x) OR (NOT indexed AND
// x), the planner factors x out and no index applies: SEARCH TEXT read
// every text (775 ms on 10,000 messages instead of 11 ms).
func TestSearchPlanUsesTextIndexes(t *testing.T) {
	s, u := newStore(t)
	ctx := context.Background()
	for i := range 20 {
		deliver(t, s, u, msg(fmt.Sprintf("plan %d", i), "some words xylophone"), store.DeliverOptions{})
	}
	conn, err := s.Pool().Acquire(ctx)
	must(t, err)
	defer conn.Release()
	if _, err := conn.Exec(ctx, `ANALYZE message_texts`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `SET enable_seqscan = off`); err != nil {
		t.Fatal(err)
	}
	defer conn.Exec(ctx, `RESET enable_seqscan`)
	for prog, want := range map[string][]string{
		"TEXT xylophone":          {"message_texts_header_trgm", "message_texts_body_trgm", "message_texts_unindexed"},
		"BODY xylophone":          {"message_texts_body_trgm", "message_texts_unindexed"},
		`HEADER Subject "plan 1"`: {"message_texts_header_trgm", "message_texts_unindexed"},
		// Non-ASCII values are folded (query.Fold) and searched the same way.
		"TEXT MÜNCHEN": {"message_texts_header_trgm", "message_texts_body_trgm", "message_texts_unindexed"},
		"BODY Straße":  {"message_texts_body_trgm", "message_texts_unindexed"},
	} {
		n, err := query.ParseDefinition(prog)
		must(t, err)
		env := &query.Env{Msg: "m", Texts: "mt"}
		pred, err := query.Compile(n, env)
		must(t, err)
		rows, _ := conn.Query(ctx, `EXPLAIN SELECT mt.message_id FROM message_texts mt WHERE `+pred, env.Args...)
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		must(t, err)
		plan := strings.Join(lines, "\n")
		for _, ix := range want {
			if !strings.Contains(plan, ix) {
				t.Errorf("%s: the plan does not use %s:\n%s\n%s", prog, ix, pred, plan)
			}
		}
	}
}

// TestIndexerRefreshesStatistics: after a bulk load the planner's statistics
// say most texts are unindexed, and a search plans a scan of every text; a
// large indexing pass analyses message_texts.indexed again (indexer.go).
func TestIndexerRefreshesStatistics(t *testing.T) {
	s, u := newStore(t)
	ctx := context.Background()
	// Texts alone (message_texts has no foreign key): a bulk load's worth.
	if _, err := s.Pool().Exec(ctx, `INSERT INTO message_texts (message_id, user_id, header_text, body_text)
		SELECT g, $1, 'Subject: bulk', 'text ' || g FROM generate_series(1000001, 1000800) g`, u.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Pool().Exec(ctx, `ANALYZE message_texts`); err != nil {
		t.Fatal(err)
	}
	estimate := func() float64 {
		t.Helper()
		var plan []map[string]any
		must(t, s.Pool().QueryRow(ctx, `EXPLAIN (FORMAT JSON) SELECT 1 FROM message_texts WHERE NOT indexed`).Scan(&plan))
		return plan[0]["Plan"].(map[string]any)["Plan Rows"].(float64)
	}
	if e := estimate(); e < 400 {
		t.Fatalf("before indexing the planner estimates %v unindexed texts, want about 800", e)
	}
	n, err := s.IndexTexts(ctx)
	must(t, err)
	if n < 800 {
		t.Fatalf("indexed %d texts, want 800", n)
	}
	if e := estimate(); e > 50 {
		t.Fatalf("after indexing 800 texts the planner still estimates %v unindexed", e)
	}
	// The tables a search joins were analysed with them (a bulk load came
	// with the texts).
	for _, tbl := range []string{"messages", "mailbox_messages", "message_flags"} {
		var analysed bool
		must(t, s.Pool().QueryRow(ctx, `SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables WHERE relname = $1`, tbl).Scan(&analysed))
		if !analysed {
			t.Errorf("%s not analysed after a large indexing pass", tbl)
		}
	}
}

// TestTextIndexCostIgnoresOtherUsers: a user's text search reads the trigram
// index in proportion to their own mail, not to how common the string is in
// other users' mail (issue 13: 14.5 ms against 1.3 ms told one user that a
// string occurs 5,000 times in someone else's mailbox). The indexes lead
// with the user (schema 0006), and searches name the user (Search, msgJoins).
func TestTextIndexCostIgnoresOtherUsers(t *testing.T) {
	s, a := newStore(t)
	ctx := context.Background()
	b, err := s.CreateUser(ctx, "b", "pw")
	must(t, err)
	for i := range 20 {
		deliver(t, s, a, msg(fmt.Sprintf("mine %d", i), "nothing to see"), store.DeliverOptions{})
	}
	conn, err := s.Pool().Acquire(ctx)
	must(t, err)
	defer conn.Release()
	// blocks is what user a's search for the word reads, index and table.
	blocks := func() int {
		t.Helper()
		_, err := conn.Exec(ctx, `UPDATE message_texts SET indexed = true WHERE NOT indexed`)
		must(t, err)
		_, err = conn.Exec(ctx, `SELECT gin_clean_pending_list('message_texts_body_trgm'::regclass)`)
		must(t, err)
		_, err = conn.Exec(ctx, `ANALYZE message_texts`)
		must(t, err)
		_, err = conn.Exec(ctx, `SET enable_seqscan = off`)
		must(t, err)
		defer conn.Exec(ctx, `RESET enable_seqscan`)
		var plan string
		must(t, conn.QueryRow(ctx, `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) SELECT message_id FROM message_texts mt
			WHERE mt.user_id = $1 AND mt.indexed AND mt.body_text ILIKE '%quixotic%'`, a.ID).Scan(&plan))
		var doc []map[string]any
		must(t, json.Unmarshal([]byte(plan), &doc))
		top := doc[0]["Plan"].(map[string]any) // its buffers include its children's
		return int(top["Shared Hit Blocks"].(float64) + top["Shared Read Blocks"].(float64))
	}
	if os.Getenv("DECIMAIL_OLD_TEXT_INDEX") != "" { // the index before schema 0006, to compare
		_, err := conn.Exec(ctx, `DROP INDEX message_texts_body_trgm;
			CREATE INDEX message_texts_body_trgm ON message_texts USING gin (body_text gin_trgm_ops) WHERE indexed`)
		must(t, err)
	}
	// b's mailbox fills with the word: texts alone (message_texts has no
	// foreign key), 5,000 and then 40,000 of them.
	fill := func(from, to int) {
		_, err = conn.Exec(ctx, `INSERT INTO message_texts (message_id, user_id, indexed, header_text, body_text)
			SELECT g, $1, true, 'Subject: x', 'a quixotic quest ' || g FROM generate_series($2::bigint, $3) g`, b.ID, from, to)
		must(t, err)
	}
	none := blocks()
	fill(1000001, 1005000)
	few := blocks()
	fill(1005001, 1040000)
	many := blocks()
	t.Logf("blocks read by a's search: %d with no hit in b's mail, %d with 5,000, %d with 40,000", none, few, many)
	// The posting lists of the word's 6 trigrams are trees: stepping past
	// b's entries to a's costs a few blocks per trigram however many b has
	// (the index before schema 0006 read 125-153 here, with
	// DECIMAIL_OLD_TEXT_INDEX=1).
	if few > none+4*6 || many > none+4*6 {
		t.Errorf("a's search read %d blocks with no hit in b's mail, %d with 5,000, %d with 40,000: its cost follows b's mail", none, few, many)
	}
}

// Calls on a mailbox's messages take a store.Box, which only the store
// makes, from a mailbox row it read for its owner: a mailbox id alone does
// not compile, and the zero Box (not from the store) is refused before any
// SQL runs.
func TestZeroBoxRefused(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	var b store.Box
	errs := map[string]error{}
	_, errs["Search"] = s.Search(ctx, b, query.All{}, &query.Env{})
	errs["Fetch"] = s.Fetch(ctx, b, []uint32{1}, store.FetchCols{Flags: true}, func(*store.FetchRow) error { return nil })
	_, errs["StoreFlags"] = s.StoreFlags(ctx, b, []uint32{1}, store.FlagsAdd, store.Flags{Seen: true})
	_, _, _, errs["AddRemoveFlags"] = s.AddRemoveFlags(ctx, b, []uint32{1}, true, store.Flags{Seen: true})
	_, errs["Expunge"] = s.Expunge(ctx, b, nil)
	_, errs["Copy"] = s.Copy(ctx, b, []uint32{1}, "INBOX")
	_, errs["Move"] = s.Move(ctx, b, []uint32{1}, "INBOX")
	_, errs["ChangesSince"] = s.ChangesSince(ctx, b, 0, false)
	for name, err := range errs {
		if !errors.Is(err, store.ErrNoBox) {
			t.Errorf("%s with the zero Box: %v, want ErrNoBox", name, err)
		}
	}
}

// TestIndexerWaitsForDeliveryInProgress: a delivery in progress is not a
// pause, however long it waits. A burst's delivery that waited 300 ms (here:
// behind a lock on the user, as behind a slow commit) let the indexer start
// a pass, half a second of Postgres CPU, inside the burst. The indexer
// indexes once the delivery is done and the quiet time has passed.
func TestIndexerWaitsForDeliveryInProgress(t *testing.T) {
	s, u := newStore(t)
	ctx := context.Background()
	passes := make(chan int, 100)
	s.OnIndexPass(func(n int) {
		select {
		case passes <- n:
		default:
		}
	})
	unindexed := func() int {
		var n int
		must(t, s.Pool().QueryRow(ctx, `SELECT count(*) FROM message_texts WHERE NOT indexed`).Scan(&n))
		return n
	}
	for attempt := 0; ; attempt++ {
		deliver(t, s, u, msg(fmt.Sprintf("first %d", attempt), "lorem ipsum"), store.DeliverOptions{})
		// The next delivery waits on the user's row until tx ends.
		tx, err := s.Pool().Begin(ctx)
		must(t, err)
		_, err = tx.Exec(ctx, `SELECT 1 FROM users WHERE id = $1 FOR UPDATE`, u.ID)
		must(t, err)
		done := make(chan error, 1)
		go func() {
			_, err := s.Deliver(ctx, u.ID, msg(fmt.Sprintf("held %d", attempt), "dolor sit amet"), store.DeliverOptions{})
			done <- err
		}()
		// On failure too: the lock goes, the delivery ends, then the store
		// can close.
		release := sync.OnceValue(func() error {
			tx.Rollback(ctx)
			return <-done
		})
		defer release()
		// Until the held delivery waits on the lock.
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			var waiting bool
			must(t, s.Pool().QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database())`).Scan(&waiting))
			if waiting {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the second delivery never waited on the user's lock")
			}
		}
		if unindexed() == 0 {
			// The indexer passed before the second delivery began (a
			// stalled machine): that says nothing; again.
			must(t, release())
			if attempt == 3 {
				t.Fatal("the indexer passed between two deliveries 4 times (the machine is too slow for this test)")
			}
			continue
		}
		// Four quiet times while the delivery is in progress.
		time.Sleep(4 * store.IndexQuiet)
		if n := unindexed(); n == 0 {
			t.Fatalf("the indexer indexed the first text while a delivery was in progress")
		}
		must(t, release())
		timeout := time.After(10 * time.Second)
		for unindexed() > 0 {
			select {
			case <-passes:
			case <-timeout:
				t.Fatalf("10 s after the held delivery: %d texts unindexed", unindexed())
			}
		}
		return
	}
}
