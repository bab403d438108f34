package imapd

import (
	"fmt"
	"runtime"
	"slices"
	"testing"
	"time"

	"pgregory.net/rapid"

	"decimail/server/store"
)

// drawThreadItems draws n messages for the threading alone: Message-IDs,
// References and In-Reply-To from a small pool (dummies, duplicates,
// loops, chains), few base subjects (merging; empty ones too), sent dates
// with ties and some missing.
func drawThreadItems(t *rapid.T, n int) []*sortItem {
	ids := rapid.SampledFrom([]string{"<a@x>", "<b@x>", "<c@x>", "<d@x>", "<e@x>", "<f@x>", "<g@x>", "<h@x>", "junk", ""})
	day := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	var items []*sortItem
	for i := range n {
		l := fmt.Sprintf("msg %d ", i)
		m := &store.SortMsg{UID: uint32(i + 1), Arrival: day.Add(time.Duration(rapid.IntRange(0, 3).Draw(t, l+"arrival")) * time.Hour)}
		if rapid.IntRange(0, 3).Draw(t, l+"dated") > 0 {
			m.Sent = day.Add(time.Duration(rapid.IntRange(-1, 4).Draw(t, l+"sent")) * time.Hour)
		}
		m.Subject = rapid.SampledFrom([]string{"", "x", "y", "z"}).Draw(t, l+"subject")
		m.Reply = m.Subject != "" && rapid.Bool().Draw(t, l+"reply")
		m.MsgID = ids.Draw(t, l+"id")
		m.Refs = rapid.SliceOfN(ids, 0, 4).Draw(t, l+"refs")
		m.InReply = ids.Draw(t, l+"in-reply-to")
		items = append(items, &sortItem{SortMsg: m, UID: m.UID, seq: m.UID})
	}
	return items
}

func onceString(items []*sortItem) string {
	b := []byte("THREAD")
	roots := threadReferencesOnce(items)
	if len(roots) > 0 {
		b = append(b, ' ')
	}
	for _, r := range roots {
		b = append(b, '(')
		b = r.write(b, false)
		b = append(b, ')')
	}
	return string(b)
}

// TestThreadStateAdd: a threading updated with messages found after its
// ones (threadState.add, in random chunks) equals the threading of all of
// them at once, after every chunk.
func TestThreadStateAdd(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		items := drawThreadItems(rt, rapid.IntRange(1, 40).Draw(rt, "messages"))
		st := newThreadState()
		nums := make([]uint32, len(items))
		for j := range nums {
			nums[j] = uint32(j + 1)
		}
		for k := 0; k < len(items); {
			to := min(len(items), k+rapid.IntRange(1, 5).Draw(rt, fmt.Sprintf("chunk at %d", k)))
			var ks []*store.SortMsg
			var uids []uint32
			for _, m := range items[k:to] {
				ks, uids = append(ks, m.SortMsg), append(uids, m.UID)
			}
			st.add(ks, uids)
			k = to
			if got, want := string(st.write([]byte("THREAD"), nums)), onceString(items[:k]); got != want {
				rt.Fatalf("after %d messages:\n got  %s\n want %s", k, got, want)
			}
		}
	})
}

// TestThreadStateBytes measures the memory a kept threading of the bench
// corpus' shape takes per message and per counted entry (threadState.size,
// the unit of maxThreadEntries), and checks the bound's estimate.
func TestThreadStateBytes(t *testing.T) {
	items := synthThreadItems(100_000, 2)
	ks, uids := threadInputs(items)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	st := newThreadState()
	st.add(ks, uids)
	runtime.GC()
	runtime.ReadMemStats(&after)
	bytes := float64(after.HeapAlloc - before.HeapAlloc)
	perMsg, perEntry := bytes/float64(len(items)), bytes/float64(st.size())
	t.Logf("%d messages, %d entries: %.0f bytes a message, %.0f an entry", len(items), st.size(), perMsg, perEntry)
	if perEntry > 150 {
		t.Errorf("%.0f bytes an entry: the bound (maxThreadEntries) assumes about 130", perEntry)
	}
	runtime.KeepAlive(st)
}

// TestThreadCacheBound: kept threadings over the bound are evicted, the
// least recently used first, and one bigger than the bound is not kept.
func TestThreadCacheBound(t *testing.T) {
	items := synthThreadItems(1000, 3)
	ks, uids := threadInputs(items)
	keys := func(n int) func(int) ([]*store.SortMsg, error) {
		return func(from int) ([]*store.SortMsg, error) { return ks[from:n], nil }
	}
	one := newThreadState()
	one.add(ks[:100], uids[:100])
	size := one.size() // every mailbox below: the first 100 messages
	tc := &threadCache{max: 3*size + size/2}
	key := func(mb int64) threadKey { return threadKey{mailbox: mb, uidValidity: 1, program: "ALL"} }
	for mb := range int64(5) {
		if _, err := tc.thread(key(mb), uids[:100], uids[99], keys(100), uids, nil); err != nil {
			t.Fatal(err)
		}
		if mb == 2 { // mailbox 0 used again: mailbox 1 is the least recently used
			if _, err := tc.thread(key(0), uids[:100], uids[99], keys(100), uids, nil); err != nil {
				t.Fatal(err)
			}
		}
		if tc.size > tc.max {
			t.Fatalf("after mailbox %d: %d entries kept, bound %d", mb, tc.size, tc.max)
		}
	}
	var kept []int64
	for k, e := range tc.m {
		if e.st != nil {
			kept = append(kept, k.mailbox)
		}
	}
	slices.Sort(kept)
	if !slices.Equal(kept, []int64{0, 3, 4}) {
		t.Errorf("kept mailboxes %v, want [0 3 4]", kept)
	}
	// A mailbox of 1000 messages is over the bound alone: answered, not kept.
	b, err := tc.thread(key(9), uids, uids[999], keys(1000), uids, []byte("THREAD"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), onceStringUID(items); got != want {
		t.Errorf("over the bound:\n got  %.200s\n want %.200s", got, want)
	}
	if tc.size > tc.max || tc.m[key(9)] != nil {
		t.Errorf("a threading over the bound was kept: %d entries, bound %d", tc.size, tc.max)
	}
	// Programs finding nothing are counted too.
	tc = &threadCache{max: 50}
	for i := range 1000 {
		k := threadKey{mailbox: 1, uidValidity: 1, program: fmt.Sprintf("UID %d", i)}
		if _, err := tc.thread(k, nil, 0, keys(0), nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	if len(tc.m) > 50 || tc.size > 50 {
		t.Errorf("1000 empty threadings: %d kept, size %d, bound 50", len(tc.m), tc.size)
	}
}

// The newest message expunged: a session told of it threads without it,
// and its threading replaces the kept one, so that the next new message is
// added to it (the benchmark's THREAD after one new message, with the
// previous one expunged, took 8-14 ms at 10,000 messages instead of 1:
// the kept threading, still with the expunged message, was never a
// prefix again). A session not yet told of the newest kept message leaves
// the kept threading as it is.
func TestThreadCacheNewestExpunged(t *testing.T) {
	items := synthThreadItems(200, 5)
	ks, uids := threadInputs(items)
	tc := &threadCache{}
	k := threadKey{mailbox: 1, uidValidity: 1, program: "ALL"}
	var from []int
	do := func(set []uint32, top uint32) {
		t.Helper()
		idx := make([]*store.SortMsg, len(set))
		for j, u := range set {
			idx[j] = ks[slices.Index(uids, u)]
		}
		from = append(from, -1)
		got, err := tc.thread(k, set, top, func(f int) ([]*store.SortMsg, error) {
			from[len(from)-1] = f
			return idx[f:], nil
		}, set, []byte("THREAD"))
		if err != nil {
			t.Fatal(err)
		}
		var its []*sortItem
		for _, u := range set {
			its = append(its, items[slices.Index(uids, u)])
		}
		if want := onceStringUID(its); string(got) != want {
			t.Fatalf("THREAD of %d messages:\n got  %.200s\n want %.200s", len(set), got, want)
		}
	}
	kept := func() int { return len(tc.m[k].st.uids) }
	do(uids[:199], uids[198])
	// A session behind (told of 197 messages) threads 197: kept as is.
	do(uids[:197], uids[196])
	if kept() != 199 {
		t.Fatalf("a session behind replaced the kept threading: %d kept, want 199", kept())
	}
	// The newest expunged, seen by the session: its threading is kept.
	do(uids[:198], uids[198])
	if kept() != 198 {
		t.Fatalf("after the newest was expunged: %d kept, want 198", kept())
	}
	// The next new message is added to it, not threaded from scratch.
	do(append(slices.Clone(uids[:198]), uids[199]), uids[199])
	if got := from[len(from)-1]; got != 198 || kept() != 199 {
		t.Fatalf("after a new message: keys read from %d, %d kept; want from 198, 199 kept", got, kept())
	}
}

func onceStringUID(items []*sortItem) string {
	b := []byte("THREAD")
	roots := threadReferencesOnce(items)
	if len(roots) > 0 {
		b = append(b, ' ')
	}
	for _, r := range roots {
		b = append(b, '(')
		b = r.write(b, true)
		b = append(b, ')')
	}
	return string(b)
}
