package store_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"pgregory.net/rapid"

	"decimail/server/store"
)

// changesByQuery is the statement ChangesSinceExcept was, claims aside:
// joins where it has LATERAL probes (for one generic plan), the claim in
// the statement where it has its own, the exclusion of a session's own
// STORE in SQL. The reference it is held to.
func changesByQuery(ctx context.Context, t interface{ Fatal(...any) }, s *store.Store, mailboxID, since, lo, hi int64) *store.Changes {
	rows, err := s.Pool().Query(ctx, `WITH
		ch AS (SELECT mm.uid, greatest(mm.modseq, f.modseq) AS modseq, f.seen, f.answered, f.flagged, f.deleted, f.draft, nullif(f.keywords, '{}') AS keywords
			FROM mailbox_messages mm JOIN message_flags f ON f.message_id = mm.message_id
			WHERE mm.mailbox_id = $1 AND mm.modseq > $2
			UNION
			SELECT mm.uid, greatest(mm.modseq, f.modseq), f.seen, f.answered, f.flagged, f.deleted, f.draft, nullif(f.keywords, '{}')
			FROM message_flags f JOIN mailbox_messages mm ON mm.message_id = f.message_id AND mm.mailbox_id = $1
			WHERE f.user_id = (SELECT user_id FROM mailboxes WHERE id = $1) AND f.modseq > $2
				AND NOT f.modseq BETWEEN $3 AND $4)
		SELECT 0 AS kind, uidvalidity AS uid, 0::bigint, false, false, false, false, false, '{}'::text[]
			FROM mailboxes WHERE id = $1
		UNION ALL
		SELECT 1, ch.uid, ch.modseq, ch.seen, ch.answered, ch.flagged, ch.deleted, ch.draft, ch.keywords FROM ch
		UNION ALL
		SELECT 2, u.uid, e.modseq, false, false, false, false, false, '{}'::text[]
			FROM mailbox_expunges e, unnest(e.uids) AS u(uid) WHERE e.mailbox_id = $1 AND e.modseq > $2
		ORDER BY 1, 2`, mailboxID, since, lo, hi)
	if err != nil {
		t.Fatal(err)
	}
	ch := &store.Changes{ModSeq: max(since, hi)}
	var kind int32
	var uid, ms int64
	var c store.Change
	_, err = pgx.ForEachRow(rows, []any{&kind, &uid, &ms, &c.Flags.Seen, &c.Flags.Answered, &c.Flags.Flagged, &c.Flags.Deleted,
		&c.Flags.Draft, &c.Flags.Keywords}, func() error {
		switch kind {
		case 0:
			ch.UIDValidity = uint32(uid)
		case 1:
			c.UID, c.ModSeq = uint32(uid), ms
			ch.Changed = append(ch.Changed, c)
		case 2:
			ch.Expunged = append(ch.Expunged, uint32(uid))
		}
		ch.ModSeq = max(ch.ModSeq, ms)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

// TestPropertyChangesSince: sessions polling one mailbox, each from its own
// cursor, leaving out its own last STORE, get what the statement they had
// before gave them (changesByQuery), whatever happened in between:
// deliveries, flag changes, expunges, a redefinition of a query mailbox,
// changes by another process. When a session of the process follows the
// mailbox, the process's writers continue its record of changes
// (sharedpoll.go: queueFeeds), and polls are answered from it.
func TestPropertyChangesSince(t *testing.T) {
	s, _ := newStore(t)
	other := secondStore(t, s)
	ctx := context.Background()
	// Listening, so that a read may be answered from another session's
	// (sharedpoll.go): the property covers both.
	s.Notifier().Start()
	for deadline := time.Now().Add(10 * time.Second); !s.Notifier().Listening(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the notifier does not listen")
		}
	}
	defer func() {
		if s.SharedPolls() == 0 {
			t.Error("no read was answered from another's: the shared path was not exercised")
		}
		if s.Feeds() == 0 {
			t.Error("no writer continued a record of changes: the feeds were not exercised")
		}
	}()
	run := 0
	rapid.Check(t, func(t *rapid.T) {
		run++
		u, err := s.CreateUser(ctx, fmt.Sprintf("feed%d", run), "pw")
		if err != nil {
			t.Fatal(err)
		}
		name := rapid.SampledFrom([]string{"INBOX", "Unread"}).Draw(t, "mailbox")
		mb, err := s.Mailbox(ctx, u.ID, name)
		if err != nil {
			t.Fatal(err)
		}
		if rapid.Bool().Draw(t, "followed") {
			sub := s.Notifier().Subscribe(u.ID, mb.ID, s.Notifier().Gen())
			defer sub.Close()
		}
		type session struct{ cursor, lo, hi int64 }
		sessions := make([]session, 3)
		for i := range sessions {
			snap, err := s.Select(ctx, u.ID, name, true)
			if err != nil {
				t.Fatal(err)
			}
			sessions[i] = session{cursor: snap.ModSeq, lo: 0, hi: -1}
		}
		n := 0
		uidsOf := func(t *rapid.T) []uint32 {
			snap, err := s.Select(ctx, u.ID, name, true)
			if err != nil {
				t.Fatal(err)
			}
			if len(snap.UIDs) == 0 {
				t.Skip("empty")
			}
			return rapid.SliceOfNDistinct(rapid.SampledFrom(snap.UIDs), 1, 4, func(u uint32) uint32 { return u }).Draw(t, "uids")
		}
		for range rapid.IntRange(1, 40).Draw(t, "steps") {
			switch rapid.IntRange(0, 6).Draw(t, "action") {
			case 0: // a delivery
				n++
				f := store.Flags{Seen: rapid.Bool().Draw(t, "seen")}
				if _, err := s.Deliver(ctx, u.ID, msg(fmt.Sprintf("m%d", n), "x"), store.DeliverOptions{Flags: f}); err != nil {
					t.Fatal(err)
				}
			case 1: // another session's STORE
				f := drawStoreFlags(t, "flags")
				if _, _, _, err := s.AddRemoveFlags(ctx, mb.Box(), uidsOf(t), rapid.Bool().Draw(t, "add"), f); err != nil {
					t.Fatal(err)
				}
			case 2: // a session's own STORE, after a poll (as imapd does)
				i := rapid.IntRange(0, len(sessions)-1).Draw(t, "session")
				us := uidsOf(t)
				ch, err := s.ChangesSinceExcept(ctx, mb.Box(), sessions[i].cursor, false, sessions[i].lo, sessions[i].hi)
				if err != nil {
					t.Fatal(err)
				}
				sessions[i] = session{cursor: ch.ModSeq, lo: 0, hi: -1}
				changed, lo, hi, err := s.AddRemoveFlags(ctx, mb.Box(), us, rapid.Bool().Draw(t, "add"), drawStoreFlags(t, "flags"))
				if err != nil {
					t.Fatal(err)
				}
				if len(changed) > 0 {
					sessions[i].lo, sessions[i].hi = lo, hi
				}
			case 3: // EXPUNGE
				if _, _, _, err := s.AddRemoveFlags(ctx, mb.Box(), uidsOf(t), true, store.Flags{Deleted: true}); err != nil {
					t.Fatal(err)
				}
				if _, err := s.Expunge(ctx, mb.Box(), nil); err != nil {
					t.Fatal(err)
				}
			case 4: // a poll, compared with the query
				// Every earlier change's NOTIFY in first (a change made
				// here signals at once and again when its NOTIFY comes
				// back), so that polls in a row may share a read.
				if err := s.Barrier(ctx); err != nil {
					t.Fatal(err)
				}
				i := rapid.IntRange(0, len(sessions)-1).Draw(t, "session")
				se := sessions[i]
				want := changesByQuery(ctx, t, s, mb.ID, se.cursor, se.lo, se.hi)
				got, err := s.ChangesSinceExcept(ctx, mb.Box(), se.cursor, false, se.lo, se.hi)
				if err != nil {
					t.Fatal(err)
				}
				if d := diffChanges(got, want); d != "" {
					t.Fatalf("session %d from %d (own %d..%d): %s", i, se.cursor, se.lo, se.hi, d)
				}
				sessions[i] = session{cursor: got.ModSeq, lo: 0, hi: -1}
			case 6: // another process delivers or changes flags
				if rapid.Bool().Draw(t, "other delivers") {
					n++
					if _, err := other.Deliver(ctx, u.ID, msg(fmt.Sprintf("m%d", n), "x"), store.DeliverOptions{}); err != nil {
						t.Fatal(err)
					}
				} else if _, _, _, err := other.AddRemoveFlags(ctx, mb.Box(), uidsOf(t), rapid.Bool().Draw(t, "add"), drawStoreFlags(t, "flags")); err != nil {
					t.Fatal(err)
				}
			case 5: // a redefinition (a query mailbox only: new UIDVALIDITY)
				if name == "Unread" && rapid.Bool().Draw(t, "redefine") {
					if _, err := s.DefineMailbox(ctx, u.ID, name, rapid.SampledFrom([]string{"UNSEEN", "UNFLAGGED"}).Draw(t, "def")); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
	})
}

// diffChanges compares changes; the cursor may only be at or past the
// query's.
func diffChanges(got, want *store.Changes) string {
	if got.UIDValidity != want.UIDValidity {
		return fmt.Sprintf("UIDVALIDITY %d, want %d", got.UIDValidity, want.UIDValidity)
	}
	if got.ModSeq < want.ModSeq {
		return fmt.Sprintf("cursor %d, want at least %d", got.ModSeq, want.ModSeq)
	}
	if !slices.Equal(got.Expunged, want.Expunged) {
		return fmt.Sprintf("expunged %v, want %v", got.Expunged, want.Expunged)
	}
	eq := func(a, b store.Change) bool {
		return a.UID == b.UID && a.ModSeq == b.ModSeq && fmt.Sprint(a.Flags.Names()) == fmt.Sprint(b.Flags.Names())
	}
	if !slices.EqualFunc(got.Changed, want.Changed, eq) {
		return fmt.Sprintf("changed %+v, want %+v", got.Changed, want.Changed)
	}
	return ""
}

// TestSharedPollAboveCursor: a read answered from another session's read
// of the same mailbox (sharedpoll.go) returns only what is above the
// asker's cursor, as its own read would; after a change, nobody takes the
// older read.
func TestSharedPollAboveCursor(t *testing.T) {
	s, u := newStore(t)
	ctx := context.Background()
	s.Notifier().Start()
	for deadline := time.Now().Add(10 * time.Second); !s.Notifier().Listening(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the notifier does not listen")
		}
	}
	deliver(t, s, u, msg("one", "x"), store.DeliverOptions{})
	snap, err := s.Select(ctx, u.ID, "INBOX", true)
	if err != nil {
		t.Fatal(err)
	}
	mb := snap.Mailbox.Box()
	deliver(t, s, u, msg("two", "x"), store.DeliverOptions{})
	// The delivery's own NOTIFY comes back through LISTEN after its Touch,
	// and signals again: wait for it, or it lands between B's and A's reads.
	if err := s.Barrier(ctx); err != nil {
		t.Fatal(err)
	}
	// B reads from the snapshot's cursor: the second message.
	b, err := s.ChangesSince(ctx, mb, snap.ModSeq, false)
	if err != nil || len(b.Changed) != 1 {
		t.Fatalf("B's read: %+v %v", b, err)
	}
	hits := s.SharedPolls()
	// A reads from the same old cursor: B's read, shared.
	a, err := s.ChangesSince(ctx, mb, snap.ModSeq, false)
	if err != nil || len(a.Changed) != 1 || s.SharedPolls() != hits+1 {
		t.Fatalf("A's read: %+v %v, %d shared", a, err, s.SharedPolls()-hits)
	}
	// B again, from its newer cursor: nothing, though the shared read has the message.
	b2, err := s.ChangesSince(ctx, mb, b.ModSeq, false)
	if err != nil || len(b2.Changed) != 0 || len(b2.Expunged) != 0 || b2.ModSeq != b.ModSeq || s.SharedPolls() != hits+2 {
		t.Fatalf("B's second read: %+v %v, %d shared", b2, err, s.SharedPolls()-hits)
	}
	// A change: the shared read is not taken any more.
	deliver(t, s, u, msg("three", "x"), store.DeliverOptions{})
	c, err := s.ChangesSince(ctx, mb, b.ModSeq, false)
	if err != nil || len(c.Changed) != 1 || s.SharedPolls() != hits+2 {
		t.Fatalf("after a change: %+v %v, %d shared", c, err, s.SharedPolls()-hits)
	}
}

// TestFeedNotTakenAfterOtherProcessChange: a writer's read of changes for
// the process's sessions (sharedpoll.go: queueFeeds) is not published when
// another process changed the mailbox between the writer's COMMIT and its
// signal (that change's notification came first): the next poll reads it.
func TestFeedNotTakenAfterOtherProcessChange(t *testing.T) {
	s, u := newStore(t)
	other := secondStore(t, s)
	ctx := context.Background()
	deliver(t, s, u, msg("one", "x"), store.DeliverOptions{})
	deliver(t, s, u, msg("two", "x"), store.DeliverOptions{})
	snap, err := s.Select(ctx, u.ID, "INBOX", true)
	must(t, err)
	box := snap.Mailbox.Box()
	n := s.Notifier()
	sub := n.Subscribe(u.ID, box.ID(), n.Gen())
	defer sub.Close()
	must(t, s.Barrier(ctx))
	if _, err := s.ChangesSince(ctx, box, snap.ModSeq, false); err != nil { // the record the writer continues
		t.Fatal(err)
	}
	feeds := s.Feeds()
	var once sync.Once
	s.BeforeTouch(func() {
		once.Do(func() {
			if _, _, _, err := other.AddRemoveFlags(ctx, box, []uint32{1}, true, store.Flags{Flagged: true}); err != nil {
				t.Error(err)
			}
			if err := s.Barrier(ctx); err != nil { // its notification has come
				t.Error(err)
			}
		})
	})
	_, _, _, err = s.AddRemoveFlags(ctx, box, []uint32{2}, true, store.Flags{Seen: true})
	s.BeforeTouch(nil)
	must(t, err)
	got, err := s.ChangesSince(ctx, box, snap.ModSeq, false)
	must(t, err)
	want := changesByQuery(ctx, t, s, box.ID(), snap.ModSeq, 0, -1)
	if d := diffChanges(got, want); d != "" {
		t.Fatalf("after the other process's change: %s", d)
	}
	if len(got.Changed) != 2 || !got.Changed[0].Flags.Flagged {
		t.Fatalf("the other process's change is missing: %+v", got.Changed)
	}
	// Without the other process, the writer's read is published and taken.
	feeds = s.Feeds()
	hits := s.SharedPolls()
	_, _, _, err = s.AddRemoveFlags(ctx, box, []uint32{1}, false, store.Flags{Flagged: true})
	must(t, err)
	got, err = s.ChangesSince(ctx, box, snap.ModSeq, false)
	must(t, err)
	if s.Feeds() != feeds+1 || s.SharedPolls() != hits+1 {
		t.Fatalf("the writer's read was not published (%d) or not taken (%d)", s.Feeds()-feeds, s.SharedPolls()-hits)
	}
	if len(got.Changed) != 2 || got.Changed[0].Flags.Flagged {
		t.Fatalf("after this process's change: %+v", got.Changed)
	}
}

// TestSharedPollHeld: a read for a session that still shows messages gone
// from the mailbox (Held) adds their flag changes; when this process
// deleted them (they have none) it may be answered from the mailbox's
// record, otherwise it reads them: a held message that still exists
// (it left a view as it changed) is reported.
func TestSharedPollHeld(t *testing.T) {
	s, u := newStore(t)
	ctx := context.Background()
	n := s.Notifier()
	for i := range 3 {
		deliver(t, s, u, msg(fmt.Sprintf("m%d", i), "x"), store.DeliverOptions{})
	}
	for _, name := range []string{"INBOX", "Unread"} {
		snap, err := s.Select(ctx, u.ID, name, true)
		must(t, err)
		box := snap.Mailbox.Box()
		sub := n.Subscribe(u.ID, box.ID(), n.Gen())
		defer sub.Close()
		must(t, s.Barrier(ctx))
		if _, err := s.ChangesSince(ctx, box, snap.ModSeq, false); err != nil { // the record
			t.Fatal(err)
		}
		held := store.Held{UIDs: []uint32{snap.UIDs[0]}, IDs: []int64{snap.IDs[0]}}
		if name == "INBOX" { // the first message deleted by this process
			_, _, _, err = s.AddRemoveFlags(ctx, box, snap.UIDs[:1], true, store.Flags{Deleted: true})
			must(t, err)
			_, err = s.Expunge(ctx, box, nil)
			must(t, err)
		} else { // it leaves Unread as it changes
			_, _, _, err = s.AddRemoveFlags(ctx, box, snap.UIDs[:1], true, store.Flags{Seen: true})
			must(t, err)
		}
		hits := s.SharedPolls()
		got, err := s.ChangesSinceHeld(ctx, box, snap.ModSeq, false, 0, -1, held)
		must(t, err)
		want := changesByQuery(ctx, t, s, box.ID(), snap.ModSeq, 0, -1)
		if name == "INBOX" {
			if d := diffChanges(got, want); d != "" || s.SharedPolls() != hits+1 {
				t.Fatalf("INBOX, a deleted message held: %s (%d shared)", d, s.SharedPolls()-hits)
			}
			continue
		}
		if s.SharedPolls() != hits || !slices.ContainsFunc(got.Changed, func(c store.Change) bool {
			return c.UID == snap.UIDs[0] && c.Flags.Seen
		}) {
			t.Fatalf("Unread, a held message that changed: %+v (%d shared)", got.Changed, s.SharedPolls()-hits)
		}
	}
}

// TestDeletedKnownBeforeSignal: the messages an EXPUNGE deleted are in the
// process's deleted set (Store.Deleted) before its sessions are signalled,
// so a session that hears of the expunge never reads them to learn they
// are gone (imapd: othersFlags, fromMeta); a deletion that did not commit
// is not there.
func TestDeletedKnownBeforeSignal(t *testing.T) {
	s, u := newStore(t)
	ctx := context.Background()
	deliver(t, s, u, msg("one", "x"), store.DeliverOptions{})
	deliver(t, s, u, msg("two", "x"), store.DeliverOptions{})
	snap, err := s.Select(ctx, u.ID, "INBOX", true)
	must(t, err)
	box := snap.Mailbox.Box()
	ids := snap.IDs[:1]
	if s.Deleted(ids) {
		t.Fatal("a message not expunged is known deleted")
	}
	_, _, _, err = s.AddRemoveFlags(ctx, box, []uint32{1}, true, store.Flags{Deleted: true})
	must(t, err)
	var atSignal []bool
	s.BeforeTouch(func() { atSignal = append(atSignal, s.Deleted(ids)) })
	_, err = s.Expunge(ctx, box, []uint32{1})
	s.BeforeTouch(nil)
	must(t, err)
	if !slices.Equal(atSignal, []bool{true}) {
		t.Fatalf("deleted known at the signal: %v, want [true]", atSignal)
	}
	if s.Deleted(snap.IDs[1:]) {
		t.Fatal("the message kept is known deleted")
	}
}
