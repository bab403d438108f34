package store_test

import (
	"context"
	"slices"
	"testing"

	"decimail/server/store"
)

// TestMoveToTrashLeavesAllMail (issue 14 item 2): All Mail (ALL) leaves out
// what only Trash holds, so a MOVE to Trash from All Mail takes the message
// out at once (a tombstone, no new UID), and a move back out of Trash brings
// it back with a new UID.
func TestMoveToTrashLeavesAllMail(t *testing.T) {
	s, u := newStore(t)
	ctx := context.Background()
	deliver(t, s, u, msg("a", "x"), store.DeliverOptions{})
	all := mailbox(t, s, u, "All Mail")
	snap, err := s.Select(ctx, u.ID, "All Mail", true)
	must(t, err)
	if _, err := s.Move(ctx, all.Box(), []uint32{1}, "Trash"); err != nil {
		t.Fatal(err)
	}
	ch, err := s.ChangesSince(ctx, all.Box(), snap.ModSeq, false)
	must(t, err)
	if len(ch.Changed) != 0 || !slices.Equal(ch.Expunged, []uint32{1}) {
		t.Fatalf("All Mail after MOVE to Trash: changed %+v, expunged %v; want only UID 1 expunged", ch.Changed, ch.Expunged)
	}
	for _, name := range []string{"All Mail", "Unread", "INBOX"} {
		if got := uids(t, s, u, name); len(got) != 0 {
			t.Errorf("%s after MOVE to Trash: %v", name, got)
		}
	}
	tr := mailbox(t, s, u, "Trash")
	if _, err := s.Move(ctx, tr.Box(), []uint32{1}, "Archive"); err != nil {
		t.Fatal(err)
	}
	if got := uids(t, s, u, "All Mail"); !slices.Equal(got, []uint32{2}) {
		t.Errorf("All Mail after MOVE out of Trash: %v, want [2]", got)
	}
	// A delivery into Junk (a spam filter's) does not enter the views.
	deliver(t, s, u, msg("spam", "x"), store.DeliverOptions{Mailbox: "Junk"})
	if got := uids(t, s, u, "Unread"); !slices.Equal(got, []uint32{2}) {
		t.Errorf("Unread after delivery into Junk: %v, want [2]", got)
	}
	// COPY out of Junk brings it in; EXPUNGE of the copy takes it out again.
	junk := mailbox(t, s, u, "Junk")
	c, err := s.Copy(ctx, junk.Box(), []uint32{1}, "INBOX")
	must(t, err)
	if got := uids(t, s, u, "Unread"); !slices.Equal(got, []uint32{2, 3}) {
		t.Errorf("Unread after COPY out of Junk: %v, want [2 3]", got)
	}
	ib := mailbox(t, s, u, "INBOX")
	_, err = s.StoreFlags(ctx, ib.Box(), c.Dst, store.FlagsAdd, store.Flags{Deleted: true})
	must(t, err)
	gone, err := s.Expunge(ctx, ib.Box(), nil)
	must(t, err)
	if !slices.Equal(gone, c.Dst) {
		t.Fatalf("EXPUNGE INBOX: %v, want %v", gone, c.Dst)
	}
	if got := uids(t, s, u, "All Mail"); !slices.Equal(got, []uint32{2}) {
		t.Errorf("All Mail after EXPUNGE from INBOX of a message Junk holds: %v, want [2]", got)
	}
	if got := uids(t, s, u, "Junk"); len(got) != 1 {
		t.Errorf("Junk lost the message: %v", got)
	}
}

// TestExpungeInViewMovesToTrash (issue 14 item 3): neomutt's d + $ in Unread
// on a message INBOX and Lists/golang hold moves it to Trash (\Deleted
// cleared), out of both folders and out of the views; nothing is deleted.
// With view_expunge = delete for the user, the message is deleted at once.
func TestExpungeInViewMovesToTrash(t *testing.T) {
	s, u := newStore(t)
	ctx := context.Background()
	a := deliver(t, s, u, msg("a", "x"), store.DeliverOptions{})
	_, err := s.CreateMailbox(ctx, u.ID, "Lists/golang", "", "")
	must(t, err)
	ib := mailbox(t, s, u, "INBOX")
	_, err = s.Copy(ctx, ib.Box(), []uint32{1}, "Lists/golang")
	must(t, err)
	unread := mailbox(t, s, u, "Unread")
	_, err = s.StoreFlags(ctx, unread.Box(), []uint32{1}, store.FlagsAdd, store.Flags{Deleted: true})
	must(t, err)
	gone, err := s.Expunge(ctx, unread.Box(), nil)
	must(t, err)
	if !slices.Equal(gone, []uint32{1}) {
		t.Fatalf("EXPUNGE in Unread: %v", gone)
	}
	for name, want := range map[string]int{"INBOX": 0, "Lists/golang": 0, "Unread": 0, "All Mail": 0, "Trash": 1} {
		if got := uids(t, s, u, name); len(got) != want {
			t.Errorf("%s after EXPUNGE in Unread: %v, want %d messages", name, got, want)
		}
	}
	snap, err := s.Select(ctx, u.ID, "Trash", true)
	must(t, err)
	if len(snap.Flags) != 1 || snap.Flags[0].Deleted {
		t.Errorf("in Trash: flags %+v, want \\Deleted cleared", snap.Flags)
	}
	var logged int
	must(t, s.Pool().QueryRow(ctx, `SELECT count(*) FROM delete_log WHERE message_id = $1`, a.MessageID).Scan(&logged))
	if logged != 0 {
		t.Fatalf("delete_log rows: %d, want 0", logged)
	}

	// The per-user setting restores the immediate delete.
	must(t, s.SetConfig(ctx, store.ViewExpungeKey+":"+u.Name, store.ViewExpungeDelete))
	b := deliver(t, s, u, msg("b", "x"), store.DeliverOptions{Mailbox: "Archive"})
	_, err = s.StoreFlags(ctx, unread.Box(), []uint32{2}, store.FlagsAdd, store.Flags{Deleted: true})
	must(t, err)
	gone, err = s.Expunge(ctx, unread.Box(), nil)
	must(t, err)
	if !slices.Equal(gone, []uint32{2}) {
		t.Fatalf("EXPUNGE in Unread (delete): %v", gone)
	}
	must(t, s.Pool().QueryRow(ctx, `SELECT count(*) FROM delete_log WHERE message_id = $1`, b.MessageID).Scan(&logged))
	if logged != 1 || len(uids(t, s, u, "Archive")) != 0 || len(uids(t, s, u, "Trash")) != 1 {
		t.Fatalf("view_expunge=delete: delete_log %d, Archive %v, Trash %v", logged, uids(t, s, u, "Archive"), uids(t, s, u, "Trash"))
	}
}

// TestFolderTermViews: a user-written definition with folder terms gets no
// default rule and follows the folders: COPY, MOVE, EXPUNGE, RENAME.
func TestFolderTermViews(t *testing.T) {
	s, u := newStore(t)
	ctx := context.Background()
	deliver(t, s, u, msg("a", "x"), store.DeliverOptions{})
	deliver(t, s, u, msg("b", "x"), store.DeliverOptions{Mailbox: "Trash"})
	_, err := s.DefineMailbox(ctx, u.ID, "Binned", `ONLYFOLDER (Trash Junk)`)
	must(t, err)
	_, err = s.DefineMailbox(ctx, u.ID, "Everything", `OR FOLDER Trash NOT ONLYFOLDER Trash`)
	must(t, err)
	if got := uids(t, s, u, "Binned"); !slices.Equal(got, []uint32{1}) {
		t.Errorf("Binned = %v, want [1]", got)
	}
	if got := uids(t, s, u, "Everything"); !slices.Equal(got, []uint32{1, 2}) {
		t.Errorf("Everything = %v, want [1 2]", got)
	}
	ib := mailbox(t, s, u, "INBOX")
	if _, err := s.Move(ctx, ib.Box(), []uint32{1}, "Junk"); err != nil {
		t.Fatal(err)
	}
	if got := uids(t, s, u, "Binned"); !slices.Equal(got, []uint32{1, 2}) {
		t.Errorf("Binned after MOVE to Junk = %v, want [1 2]", got)
	}
	if got := uids(t, s, u, "Everything"); !slices.Equal(got, []uint32{1, 2}) {
		t.Errorf("Everything after MOVE to Junk = %v, want [1 2] (unchanged)", got)
	}
	// Renaming Junk makes its message kept again.
	must(t, s.RenameMailbox(ctx, u.ID, "Junk", "Spam"))
	if got := uids(t, s, u, "Binned"); !slices.Equal(got, []uint32{1}) {
		t.Errorf("Binned after RENAME Junk Spam = %v, want [1]", got)
	}
	if got := uids(t, s, u, "All Mail"); len(got) != 1 {
		t.Errorf("All Mail after RENAME Junk Spam = %v, want one message", got)
	}
	if _, err := s.DefineMailbox(ctx, u.ID, "Bad", `FOLDER`); err == nil {
		t.Error("FOLDER without a name accepted")
	}
}

func TestSetUserSetting(t *testing.T) {
	s, u := newStore(t)
	ctx := context.Background()
	must(t, s.SetUserSetting(ctx, u.Name, store.ViewExpungeKey, store.ViewExpungeDelete))
	if v, _ := s.Config(ctx, "view_expunge:u", ""); v != "delete" {
		t.Fatalf("view_expunge:u = %q", v)
	}
	must(t, s.SetUserSetting(ctx, u.Name, store.ViewExpungeKey, ""))
	if v, _ := s.Config(ctx, "view_expunge:u", "unset"); v != "unset" {
		t.Fatalf("view_expunge:u after reset = %q", v)
	}
	for _, bad := range [][3]string{{"u", "view_expunge", "later"}, {"u", "colour", "blue"}, {"nobody", "view_expunge", "delete"}} {
		if err := s.SetUserSetting(ctx, bad[0], bad[1], bad[2]); err == nil {
			t.Errorf("SetUserSetting%v accepted", bad)
		}
	}
}
