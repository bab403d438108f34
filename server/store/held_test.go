package store_test

import (
	"context"
	"slices"
	"testing"

	"decimail/server/query"
	"decimail/server/store"
)

// TestHeld: a message that left a view (here: +\Seen out of Unread) is
// still reached at its old UID through the Held entry points — read,
// searched, changed, its flag changes reported to the holder, moved out of
// its folders — and not through the plain ones (issue 14: a session keeps
// such a message until a sync point).
func TestHeld(t *testing.T) {
	s, u := newStore(t)
	ctx := context.Background()
	a := deliver(t, s, u, msg("alpha", "x"), store.DeliverOptions{})
	deliver(t, s, u, msg("beta", "x"), store.DeliverOptions{})
	snap, err := s.Select(ctx, u.ID, "Unread", false)
	must(t, err)
	i := slices.Index(snap.IDs, a.MessageID)
	if i < 0 || len(snap.IDs) != len(snap.UIDs) {
		t.Fatalf("snapshot ids %v uids %v: no %d", snap.IDs, snap.UIDs, a.MessageID)
	}
	ua, ub := snap.UIDs[i], snap.UIDs[1-i]
	unread := snap.Mailbox.Box()
	if _, _, _, err := s.AddRemoveFlags(ctx, unread, []uint32{ua}, true, store.Flags{Seen: true}); err != nil {
		t.Fatal(err)
	}
	held := store.Held{UIDs: []uint32{ua}, IDs: []int64{a.MessageID}}
	ch, err := s.ChangesSince(ctx, unread, snap.ModSeq, false)
	must(t, err)
	if !slices.Equal(ch.Expunged, []uint32{ua}) {
		t.Fatalf("expunged %v, want [%d]", ch.Expunged, ua)
	}
	cursor := ch.ModSeq

	// Read: in UID order with the members; not through Fetch.
	var got []uint32
	must(t, s.FetchHeld(ctx, unread, []uint32{ua, ub}, held, store.FetchCols{Flags: true, Size: true}, func(r *store.FetchRow) error {
		if r.UID == ua && (!r.Flags.Seen || r.Size == 0) {
			t.Errorf("held row %+v", r)
		}
		got = append(got, r.UID)
		return nil
	}))
	if !slices.Equal(got, []uint32{ua, ub}) {
		t.Fatalf("FetchHeld rows %v, want [%d %d]", got, ua, ub)
	}
	got = nil
	must(t, s.Fetch(ctx, unread, []uint32{ua, ub}, store.FetchCols{Flags: true}, func(r *store.FetchRow) error { got = append(got, r.UID); return nil }))
	if !slices.Equal(got, []uint32{ub}) {
		t.Fatalf("Fetch rows %v, want [%d]", got, ub)
	}

	// Search: SEEN finds it (and only it).
	seen, err := query.Parse([]query.Arg{{Kind: query.Atom, S: "SEEN"}})
	must(t, err)
	found, err := s.SearchHeld(ctx, unread, seen, &query.Env{}, held)
	must(t, err)
	if !slices.Equal(found, []uint32{ua}) {
		t.Fatalf("SearchHeld SEEN = %v, want [%d]", found, ua)
	}

	// Change by id; the holder's poll reports it at the held UID.
	chs, err := s.StoreFlagsHeld(ctx, unread, []uint32{ua}, held, store.FlagsAdd, store.Flags{Flagged: true})
	must(t, err)
	if len(chs) != 1 || chs[0].UID != ua || !chs[0].Flags.Flagged || !chs[0].Flags.Seen {
		t.Fatalf("StoreFlagsHeld = %+v", chs)
	}
	ch, err = s.ChangesSinceHeld(ctx, unread, cursor, false, 0, -1, held)
	must(t, err)
	if len(ch.Changed) != 1 || ch.Changed[0].UID != ua || !ch.Changed[0].Flags.Flagged || ch.Changed[0].MessageID != a.MessageID {
		t.Fatalf("ChangesSinceHeld changed %+v", ch.Changed)
	}
	ch, err = s.ChangesSince(ctx, unread, cursor, false)
	must(t, err)
	if len(ch.Changed) != 0 {
		t.Fatalf("ChangesSince (nothing held) changed %+v", ch.Changed)
	}

	// Move: out of INBOX into Trash, with the held UID as source.
	c, err := s.MoveHeld(ctx, unread, []uint32{ua}, held, "Trash")
	must(t, err)
	if !slices.Equal(c.Src, []uint32{ua}) || len(c.Dst) != 1 {
		t.Fatalf("MoveHeld = %+v", c)
	}
	if got := uids(t, s, u, "Trash"); len(got) != 1 {
		t.Fatalf("Trash = %v", got)
	}
	if got := uids(t, s, u, "INBOX"); len(got) != 1 {
		t.Fatalf("INBOX = %v, want beta only", got)
	}
	// Without Held, the old UID names nothing.
	c, err = s.Move(ctx, unread, []uint32{ua}, "Archive")
	must(t, err)
	if len(c.Src) != 0 {
		t.Fatalf("Move of a left UID without Held = %+v", c)
	}
}
