package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"decimail/server/store"
)

// waitGate waits until n changeBatch writers wait at the user's gate.
func waitGate(t *testing.T, s *store.Store, userID int64, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); s.GateWaiting(userID) < n; {
		if time.Now().After(deadline) {
			t.Fatalf("%d writers wait at the gate, want %d", s.GateWaiting(userID), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestCombinedChangesFailAlone: changes waiting at a user's gate run in
// one transaction (gate.go: changeBatch), yet one that fails fails alone,
// and one whose client went away while waiting is not made.
func TestCombinedChangesFailAlone(t *testing.T) {
	s, u := newStore(t)
	ctx := context.Background()
	leave, err := s.HoldGate(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	const n = 12
	errs := make([]error, n)
	var wg sync.WaitGroup
	gone, cancel := context.WithCancel(ctx)
	for i := range n {
		key := fmt.Sprintf("combine-%d", i)
		wg.Go(func() {
			switch {
			case i == 5: // its client goes away while it waits
				errs[i] = s.ChangeSQL(gone, u.ID, `INSERT INTO configuration (key, value) VALUES ($1, 'x')`, key)
			case i%4 == 1:
				errs[i] = s.ChangeSQL(ctx, u.ID, `SELECT 1 / (length($1) - length($1))`, key)
			default:
				errs[i] = s.ChangeSQL(ctx, u.ID, `INSERT INTO configuration (key, value) VALUES ($1, 'x')`, key)
			}
		})
		waitGate(t, s, u.ID, i+1) // in this order
	}
	cancel()
	// The cancelled one takes itself off the list.
	for deadline := time.Now().Add(10 * time.Second); s.GateWaiting(u.ID) != n-1; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d writers wait at the gate after the cancel, want %d", s.GateWaiting(u.ID), n-1)
		}
	}
	before := s.Combined()
	leave()
	wg.Wait()
	if s.Combined() == before {
		t.Error("the waiting changes ran one by one, not combined")
	}
	for i, err := range errs {
		key := fmt.Sprintf("combine-%d", i)
		var stored bool
		if err := s.Pool().QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM configuration WHERE key = $1)`, key).Scan(&stored); err != nil {
			t.Fatal(err)
		}
		switch {
		case i == 5:
			if !errors.Is(err, context.Canceled) || stored {
				t.Errorf("change %d, cancelled while waiting: %v, stored %v; want context.Canceled, not stored", i, err, stored)
			}
		case i%4 == 1:
			if err == nil {
				t.Errorf("change %d (division by zero) succeeded", i)
			}
		default:
			if err != nil || !stored {
				t.Errorf("change %d: %v, stored %v; want stored", i, err, stored)
			}
		}
	}
}

// TestCombinedFlagChanges: STOREs of sessions of one account waiting at
// the gate are combined, and each still gets its own result: the changed
// messages with their flags and a modseq range no other change drew from
// (a session's poll leaves out its own range, ChangesSinceExcept); an
// EXPUNGE among them expunges.
func TestCombinedFlagChanges(t *testing.T) {
	s, u := newStore(t)
	ctx := context.Background()
	const n = 10
	for i := range n + 1 {
		deliver(t, s, u, msg(fmt.Sprintf("c%d", i), "x"), store.DeliverOptions{})
	}
	mb, err := s.Mailbox(ctx, u.ID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := s.AddRemoveFlags(ctx, mb.Box(), []uint32{n + 1}, true, store.Flags{Deleted: true}); err != nil {
		t.Fatal(err)
	}
	leave, err := s.HoldGate(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		changed []store.FlagChange
		lo, hi  int64
		err     error
	}
	res := make([]result, n)
	var expunged []uint32
	var expErr error
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			r := &res[i]
			r.changed, r.lo, r.hi, r.err = s.AddRemoveFlags(ctx, mb.Box(), []uint32{uint32(i + 1)}, true, store.Flags{Flagged: true})
		})
		waitGate(t, s, u.ID, i+1)
		if i == n/2 {
			wg.Go(func() { expunged, expErr = s.Expunge(ctx, mb.Box(), nil) })
			waitGate(t, s, u.ID, i+2)
		}
	}
	before := s.Combined()
	leave()
	wg.Wait()
	if s.Combined() == before {
		t.Error("the waiting changes ran one by one, not combined")
	}
	if expErr != nil || !slices.Equal(expunged, []uint32{n + 1}) {
		t.Errorf("EXPUNGE: %v %v, want [%d]", expunged, expErr, n+1)
	}
	for i, r := range res {
		if r.err != nil || len(r.changed) != 1 || r.changed[0].UID != uint32(i+1) || !r.changed[0].Flags.Flagged || r.lo == 0 || r.lo > r.hi {
			t.Fatalf("STORE %d: %+v", i+1, r)
		}
		for j, o := range res[:i] {
			if r.lo <= o.hi && o.lo <= r.hi {
				t.Errorf("STOREs %d and %d drew overlapping modseqs: %d..%d and %d..%d", i+1, j+1, r.lo, r.hi, o.lo, o.hi)
			}
		}
	}
	snap, err := s.Select(ctx, u.ID, "INBOX", true)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.UIDs) != n {
		t.Errorf("INBOX has %v after the EXPUNGE, want %d messages", snap.UIDs, n)
	}
	for i, f := range snap.Flags {
		if !f.Flagged {
			t.Errorf("UID %d not \\Flagged", snap.UIDs[i])
		}
	}
}

// TestJoinedDeliveries: deliveries to one user waiting at the user's gate
// are stored in one transaction (deliver.go: deliverJoined), each gets its
// own UID and message, one whose target went away meanwhile fails alone
// (the others are stored), and one whose client went away while waiting
// is not stored.
func TestJoinedDeliveries(t *testing.T) {
	s, u := newStore(t)
	ctx := context.Background()
	if _, err := s.CreateMailbox(ctx, u.ID, "Doomed", "", ""); err != nil {
		t.Fatal(err)
	}
	waitDeliveries := func(n int) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); s.GateDeliveries(u.ID) != n; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%d deliveries wait at the gate, want %d", s.GateDeliveries(u.ID), n)
			}
		}
	}
	leave, err := s.HoldGate(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	const n = 10
	got := make([]store.Delivered, n)
	errs := make([]error, n)
	gone, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			dctx, o := ctx, store.DeliverOptions{}
			switch i {
			case 3:
				o.Mailbox = "Doomed"
			case 6:
				dctx = gone
			}
			got[i], errs[i] = s.Deliver(dctx, u.ID, msg(fmt.Sprintf("joined-%d", i), "x"), o)
		})
		waitDeliveries(i + 1) // in this order
	}
	cancel()
	waitDeliveries(n - 1) // the cancelled one takes itself off the list
	if _, err := s.Pool().Exec(ctx, `DELETE FROM mailboxes WHERE user_id = $1 AND name = 'Doomed'`, u.ID); err != nil {
		t.Fatal(err)
	}
	before := s.Joined()
	leave()
	wg.Wait()
	if s.Joined() == before {
		t.Error("the waiting deliveries were stored one by one, not together")
	}
	uids := map[uint32]int{}
	for i := range n {
		switch i {
		case 3:
			if errs[i] == nil {
				t.Errorf("delivery %d to a deleted folder succeeded: %+v", i, got[i])
			}
		case 6:
			if !errors.Is(errs[i], context.Canceled) {
				t.Errorf("delivery %d, cancelled while waiting: %v, want context.Canceled", i, errs[i])
			}
		default:
			if errs[i] != nil {
				t.Errorf("delivery %d: %v", i, errs[i])
				continue
			}
			if j, dup := uids[got[i].UID]; dup {
				t.Errorf("deliveries %d and %d got UID %d", j, i, got[i].UID)
			}
			uids[got[i].UID] = i
		}
	}
	// Each stored message is the one its delivery got back, once.
	rows, err := s.Pool().Query(ctx, `SELECT mm.uid, m.subject FROM mailbox_messages mm JOIN messages m ON m.id = mm.message_id
		JOIN mailboxes b ON b.id = mm.mailbox_id WHERE b.user_id = $1 AND b.name = 'INBOX'`, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	stored := map[uint32]string{}
	for rows.Next() {
		var uid int64
		var subject string
		if err := rows.Scan(&uid, &subject); err != nil {
			t.Fatal(err)
		}
		stored[uint32(uid)] = subject
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(stored) != len(uids) {
		t.Errorf("INBOX holds %d messages, %d deliveries succeeded: %v", len(stored), len(uids), stored)
	}
	for uid, i := range uids {
		if want := fmt.Sprintf("joined-%d", i); stored[uid] != want {
			t.Errorf("UID %d holds %q, want %q", uid, stored[uid], want)
		}
	}
}
