package store_test

import (
	"context"
	"slices"
	"testing"

	"decimail/server/store"
)

// TestPendingViewNotFedToFollowers (issue 15): another process's large
// STORE leaves Unread pending (no session of that process follows it);
// a change made here afterwards reads Unread's changes for this process's
// session, but that read predates the catch-up and must not be published
// as the session's record: the session's next poll catches Unread up and
// sees the messages leave.
func TestPendingViewNotFedToFollowers(t *testing.T) {
	s, u := newStore(t)
	other := secondStore(t, s)
	other.SetDeferViewsFrom(1)
	ctx := context.Background()
	for _, subj := range []string{"one", "two", "three"} {
		deliver(t, s, u, msg(subj, "x"), store.DeliverOptions{})
	}
	inbox, err := s.Mailbox(ctx, u.ID, "INBOX")
	must(t, err)
	snap := follow(t, s, u, "Unread")
	if len(snap.UIDs) != 3 {
		t.Fatalf("Unread holds %v, want 3 messages", snap.UIDs)
	}
	unread := snap.Mailbox.Box()
	if _, _, _, err := other.AddRemoveFlags(ctx, inbox.Box(), []uint32{1, 2, 3}, true, store.Flags{Seen: true}); err != nil {
		t.Fatal(err)
	}
	var pending bool
	must(t, s.Pool().QueryRow(ctx, `SELECT flags_pending IS NOT NULL FROM mailboxes WHERE id = $1`, unread.ID()).Scan(&pending))
	if !pending {
		t.Fatal("the other process's STORE moved Unread's messages itself; the test needs it left pending")
	}
	must(t, s.Barrier(ctx)) // its notification has come
	catchUps := s.CatchUps()
	// A change of this process: its feed reads Unread while pending.
	if _, _, _, err := s.AddRemoveFlags(ctx, inbox.Box(), []uint32{1}, true, store.Flags{Flagged: true}); err != nil {
		t.Fatal(err)
	}
	got, err := s.ChangesSince(ctx, unread, snap.ModSeq, false)
	must(t, err)
	if !slices.Equal(got.Expunged, snap.UIDs) {
		t.Fatalf("the session's poll after the other process's +FLAGS (\\Seen): expunged %v, want %v (changed %+v)",
			got.Expunged, snap.UIDs, got.Changed)
	}
	if s.CatchUps() != catchUps+1 {
		t.Fatalf("%d catch-ups, want 1", s.CatchUps()-catchUps)
	}
	st, err := s.Status(ctx, u.ID, "Unread")
	must(t, err)
	if st.Messages != 0 || st.Unseen != 0 {
		t.Fatalf("STATUS Unread: MESSAGES %d UNSEEN %d, want 0 0", st.Messages, st.Unseen)
	}
}

// follow selects name for a session of s that follows it (subscribed until
// the test ends) and reads its changes once, so that the process keeps a
// record of the mailbox that writers continue (sharedpoll.go).
func follow(t *testing.T, s *store.Store, u store.User, name string) *store.Snapshot {
	t.Helper()
	ctx := context.Background()
	snap, err := s.Select(ctx, u.ID, name, true)
	must(t, err)
	n := s.Notifier()
	sub := n.Subscribe(u.ID, snap.Mailbox.ID, n.Gen())
	t.Cleanup(sub.Close)
	must(t, s.Barrier(ctx))
	if _, err := s.ChangesSince(ctx, snap.Mailbox.Box(), snap.ModSeq, false); err != nil {
		t.Fatal(err)
	}
	return snap
}

// TestPendingOnlyUnfollowedLargeChanges: a change leaves a view pending
// only when it targets at least the threshold and no session of the
// process follows the view; otherwise it moves the messages itself.
func TestPendingOnlyUnfollowedLargeChanges(t *testing.T) {
	s, u := newStore(t)
	ctx := context.Background()
	for _, subj := range []string{"one", "two", "three"} {
		deliver(t, s, u, msg(subj, "x"), store.DeliverOptions{})
	}
	inbox, err := s.Mailbox(ctx, u.ID, "INBOX")
	must(t, err)
	unread, err := s.Mailbox(ctx, u.ID, "Unread")
	must(t, err)
	pending := func() bool {
		var p bool
		must(t, s.Pool().QueryRow(ctx, `SELECT flags_pending IS NOT NULL FROM mailboxes WHERE id = $1`, unread.ID).Scan(&p))
		return p
	}
	members := func() int {
		var n int
		must(t, s.Pool().QueryRow(ctx, `SELECT count(*) FROM mailbox_messages WHERE mailbox_id = $1`, unread.ID).Scan(&n))
		return n
	}
	store3 := func(add bool) {
		if _, _, _, err := s.AddRemoveFlags(ctx, inbox.Box(), []uint32{1, 2, 3}, add, store.Flags{Seen: true}); err != nil {
			t.Fatal(err)
		}
	}
	store3(true) // below the default threshold
	if pending() || members() != 0 {
		t.Fatalf("a 3-message STORE: pending %v, %d members; want it applied", pending(), members())
	}
	s.SetDeferViewsFrom(3)
	store3(false)
	if !pending() || members() != 0 {
		t.Fatalf("a STORE at the threshold: pending %v, %d members; want it left pending", pending(), members())
	}
	store3(true) // leaves and comes back before anyone reads: the same UIDs
	store3(false)
	snap, err := s.Select(ctx, u.ID, "Unread", true)
	must(t, err)
	if pending() || len(snap.UIDs) != 3 {
		t.Fatalf("SELECT of the pending view: pending %v after, UIDs %v", pending(), snap.UIDs)
	}
	sub := s.Notifier().Subscribe(u.ID, unread.ID, s.Notifier().Gen())
	defer sub.Close()
	store3(true) // followed here: applied at once
	if pending() || members() != 0 {
		t.Fatalf("a STORE with Unread followed: pending %v, %d members; want it applied", pending(), members())
	}
}

// TestLargeChangeMakesNoFeed: a flag change at the threshold of pending
// views (pending.go) reads no changes for the process's sessions under the
// lock (gate.go: skipFeeds); a session following the mailbox still sees
// every change at its next poll, and the session that made it none of its
// own. A small change still feeds its sessions.
func TestLargeChangeMakesNoFeed(t *testing.T) {
	s, u := newStore(t)
	ctx := context.Background()
	for _, subj := range []string{"one", "two", "three"} {
		deliver(t, s, u, msg(subj, "x"), store.DeliverOptions{})
	}
	snap := follow(t, s, u, "INBOX")
	box := snap.Mailbox.Box()
	s.SetDeferViewsFrom(3)
	feeds := s.Feeds()
	_, lo, hi, err := s.AddRemoveFlags(ctx, box, []uint32{1, 2, 3}, true, store.Flags{Flagged: true})
	must(t, err)
	if s.Feeds() != feeds {
		t.Fatalf("a change of 3 messages at a threshold of 3 published %d feeds", s.Feeds()-feeds)
	}
	other, err := s.ChangesSince(ctx, box, snap.ModSeq, false)
	must(t, err)
	if len(other.Changed) != 3 || !other.Changed[2].Flags.Flagged {
		t.Fatalf("another session's poll: %+v, want the 3 flagged", other.Changed)
	}
	own, err := s.ChangesSinceExcept(ctx, box, snap.ModSeq, false, lo, hi)
	must(t, err)
	if len(own.Changed) != 0 || own.ModSeq < hi {
		t.Fatalf("the changing session's poll: %+v at %d, want nothing and a cursor at least %d", own.Changed, own.ModSeq, hi)
	}
	if _, _, _, err := s.AddRemoveFlags(ctx, box, []uint32{1}, false, store.Flags{Flagged: true}); err != nil {
		t.Fatal(err)
	}
	if s.Feeds() != feeds+1 {
		t.Fatalf("a change of 1 message published %d feeds, want 1", s.Feeds()-feeds)
	}
}
