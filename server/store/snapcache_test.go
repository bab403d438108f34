package store_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"golang.org/x/crypto/bcrypt"
	"pgregory.net/rapid"

	"decimail/server/pgrun"
	"decimail/server/store"
)

// TestPropertySelectFromCache: a SELECT that continues from the process's
// last snapshot of the mailbox (snapcache.go) shows exactly what a SELECT
// reading everything shows, whatever happened in between, in this process
// or another: deliveries, copies, flag changes, expunges, \Recent claims, a
// query mailbox redefined, a folder deleted and created again or renamed
// away and another renamed to its name, tombstones pruned.
func TestPropertySelectFromCache(t *testing.T) {
	ctx := context.Background()
	dsn := pgrun.TestDB(t)
	open := func(cache int) *store.Store {
		s, err := store.Open(ctx, dsn, store.Options{SpoolDir: t.TempDir(), PasswordCost: bcrypt.MinCost, SnapshotCache: cache})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		return s
	}
	cached, plain := open(0), open(-1) // plain: another process, which never caches
	run := 0
	rapid.Check(t, func(t *rapid.T) {
		run++
		u, err := cached.CreateUser(ctx, fmt.Sprintf("snap%d", run), "pw")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cached.CreateMailbox(ctx, u.ID, "F", "", ""); err != nil {
			t.Fatal(err)
		}
		if _, err := cached.CreateMailbox(ctx, u.ID, "G", "", ""); err != nil {
			t.Fatal(err)
		}
		names := []string{"INBOX", "Unread", "F"}
		n := 0
		pick := func(t *rapid.T) *store.Store {
			return []*store.Store{cached, plain}[rapid.IntRange(0, 1).Draw(t, "process")]
		}
		uidsOf := func(t *rapid.T, name string) (store.Mailbox, []uint32) {
			snap, err := plain.Select(ctx, u.ID, name, true)
			if errors.Is(err, store.ErrNotFound) {
				t.Skip("no such mailbox")
			} else if err != nil {
				t.Fatal(err)
			}
			if len(snap.UIDs) == 0 {
				t.Skip("empty")
			}
			return snap.Mailbox, rapid.SliceOfNDistinct(rapid.SampledFrom(snap.UIDs), 1, 4, func(u uint32) uint32 { return u }).Draw(t, "uids")
		}
		for range rapid.IntRange(1, 30).Draw(t, "steps") {
			switch rapid.IntRange(0, 8).Draw(t, "action") {
			case 0: // a delivery
				n++
				f := store.Flags{Seen: rapid.Bool().Draw(t, "seen")}
				if _, err := pick(t).Deliver(ctx, u.ID, msg(fmt.Sprintf("m%d", n), "x"), store.DeliverOptions{Flags: f}); err != nil {
					t.Fatal(err)
				}
			case 1: // a copy into the folder
				mb, us := uidsOf(t, "INBOX")
				if _, err := pick(t).Copy(ctx, mb.Box(), us, "F"); err != nil && !errors.Is(err, store.ErrNotFound) {
					t.Fatal(err)
				}
			case 2: // a STORE
				mb, us := uidsOf(t, rapid.SampledFrom(names).Draw(t, "in"))
				f := drawStoreFlags(t, "flags")
				if _, _, _, err := pick(t).AddRemoveFlags(ctx, mb.Box(), us, rapid.Bool().Draw(t, "add"), f); err != nil {
					t.Fatal(err)
				}
			case 3: // an EXPUNGE
				mb, us := uidsOf(t, rapid.SampledFrom(names).Draw(t, "in"))
				s := pick(t)
				if _, _, _, err := s.AddRemoveFlags(ctx, mb.Box(), us, true, store.Flags{Deleted: true}); err != nil {
					t.Fatal(err)
				}
				if _, err := s.Expunge(ctx, mb.Box(), nil); err != nil {
					t.Fatal(err)
				}
			case 4: // the query mailbox redefined (new UIDVALIDITY, UIDs from 1)
				def := rapid.SampledFrom([]string{"UNSEEN", "UNFLAGGED", "SEEN"}).Draw(t, "def")
				if _, err := pick(t).DefineMailbox(ctx, u.ID, "Unread", def); err != nil {
					t.Fatal(err)
				}
			case 5: // F replaced: deleted and created again, or G renamed to F
				s := pick(t)
				if err := s.DeleteMailbox(ctx, u.ID, "F"); err != nil && !errors.Is(err, store.ErrNotFound) {
					t.Fatal(err)
				}
				if rapid.Bool().Draw(t, "rename") {
					if err := s.RenameMailbox(ctx, u.ID, "G", "F"); err != nil && !errors.Is(err, store.ErrNotFound) {
						t.Fatal(err)
					}
				} else if _, err := s.CreateMailbox(ctx, u.ID, "F", "", ""); err != nil {
					t.Fatal(err)
				}
			case 6, 7: // SELECT (claims \Recent) or EXAMINE in this process, EXAMINE in the other
				name := rapid.SampledFrom(names).Draw(t, "mailbox")
				want, err := plain.Select(ctx, u.ID, name, true)
				if errors.Is(err, store.ErrNotFound) {
					continue
				} else if err != nil {
					t.Fatal(err)
				}
				readOnly := rapid.Bool().Draw(t, "examine")
				got, err := cached.Select(ctx, u.ID, name, readOnly)
				if err != nil {
					t.Fatal(err)
				}
				if d := diffSnapshots(got, want); d != "" {
					t.Fatalf("%s from the cache, read-only %v (-got +want):\n%s", name, readOnly, d)
				}
			case 8: // every tombstone pruned (expunge_horizon): a snapshot before them cannot continue
				if _, err := plain.PruneExpunges(ctx, time.Now().Add(time.Hour), 1_000_000); err != nil {
					t.Fatal(err)
				}
			}
		}
	})
}

// diffSnapshots compares all but the cursor, which may differ (either is
// a valid place to continue from).
func diffSnapshots(got, want *store.Snapshot) string {
	g, w := *got, *want
	g.ModSeq, w.ModSeq = 0, 0
	return cmp.Diff(g, w, cmpopts.IgnoreUnexported(store.Mailbox{}), cmpopts.EquateEmpty())
}
