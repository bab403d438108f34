package store_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"decimail/server/store"
)

// TestFetchTextChunks: a FETCH of many messages' texts reads them a chunk
// of about 8 MiB at a time (a session's memory stays bounded and no
// connection is held while the client is written to), each chunk chosen in
// its own query (no query of the sizes first: that was a round trip and 2-4
// ms more for every FETCH of several bodies, bench/ANALYSIS.md). Every
// message of the set comes once, in UID order, with its whole text: for a
// sparse set (= ANY), for a dense set with holes (a range whose rows
// outside the set, big ones among them, are skipped), and with a message
// the session holds after it left a view; a set given in another order
// is read in UID order too.
func TestFetchTextChunks(t *testing.T) {
	s, u := newStore(t)
	ctx := context.Background()
	big := strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\r\n", 16<<10) // 1 MiB
	const n = 70
	want := map[int]int{} // message number -> its body's length at least
	for i := range n {
		body := fmt.Sprintf("message %d", i)
		if i%5 == 0 {
			body += "\r\n" + big // 14 of 1 MiB
		}
		deliver(t, s, u, msg(fmt.Sprintf("m%02d", i), body), store.DeliverOptions{})
		want[i] = len(body)
	}
	snap, err := s.Select(ctx, u.ID, "INBOX", false)
	must(t, err)
	if len(snap.UIDs) != n {
		t.Fatalf("%d messages in INBOX", len(snap.UIDs))
	}
	inbox := snap.Mailbox.Box()
	check := func(name string, box store.Box, uids []uint32, held store.Held, number func(uint32) int, maxTrips int64) {
		t.Helper()
		var trips atomic.Int64
		var got []uint32
		must(t, s.FetchHeld(store.WithRoundTrips(ctx, &trips), box, uids, held, store.FetchCols{Header: true, Body: true}, func(r *store.FetchRow) error {
			i := number(r.UID)
			if !strings.HasPrefix(string(r.Body), fmt.Sprintf("message %d", i)) || len(r.Body) < want[i] {
				t.Errorf("%s: UID %d: body of %d bytes starting %.20q, want message %d of %d bytes", name, r.UID, len(r.Body), r.Body, i, want[i])
			}
			got = append(got, r.UID)
			return nil
		}))
		if want := slices.Sorted(slices.Values(uids)); !slices.Equal(got, want) {
			t.Errorf("%s: rows %v, want %v", name, got, want)
		}
		if d := trips.Load(); d < 2 || d > maxTrips {
			t.Errorf("%s: %d queries, want 2 to %d (more than 8 MiB of text: chunks, no query of sizes)", name, d, maxTrips)
		}
	}
	byUID := func(u uint32) int { return slices.Index(snap.UIDs, u) }

	var sparse []uint32 // every other message and the big ones: 42 (= ANY)
	for i, u := range snap.UIDs {
		if i%2 == 0 || i%5 == 0 {
			sparse = append(sparse, u)
		}
	}
	check("sparse", inbox, sparse, store.Held{}, byUID, 2)
	desc := slices.Clone(sparse) // a set given in another order is read in UID order as well
	slices.Reverse(desc)
	check("sparse, descending", inbox, desc, store.Held{}, byUID, 2)

	var dense []uint32 // all but every seventh (a range over the set, 4 big ones outside it)
	for i, u := range snap.UIDs {
		if i%7 != 3 {
			dense = append(dense, u)
		}
	}
	check("dense", inbox, dense, store.Held{}, byUID, 3)

	// A big message leaves Unread (\Seen): its session still reads it at
	// its old UID among the others.
	unread, err := s.Select(ctx, u.ID, "Unread", false)
	must(t, err)
	box := unread.Mailbox.Box()
	gone := unread.UIDs[10]
	if _, _, _, err := s.AddRemoveFlags(ctx, box, []uint32{gone}, true, store.Flags{Seen: true}); err != nil {
		t.Fatal(err)
	}
	held := store.Held{UIDs: []uint32{gone}, IDs: []int64{unread.IDs[10]}}
	byID := func(u uint32) int { return slices.Index(snap.IDs, unread.IDs[slices.Index(unread.UIDs, u)]) }
	check("held", box, unread.UIDs, held, byID, 3)
}
