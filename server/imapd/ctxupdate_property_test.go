package imapd

import (
	"slices"
	"strconv"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"decimail/server/store"
)

// A client that applies the ADDTO and REMOVEFROM items an updating SORT
// (or SEARCH) sends, pair by pair "in the order they appear"
// (rfc5267.txt:407-410), at the context positions they name (ADDTO: "will
// occupy the new context position after insertion", rfc5267.txt:439-443;
// REMOVEFROM: "occupy the given context position before removal",
// rfc5267.txt:491-495; 0: wherever, in mailbox order), ends with
// the result sorted afresh: random sizes, random sets leaving and entering
// at once.
func TestPropertyUpdatePositions(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(1, 40).Draw(t, "n")
		sizes := make([]int64, n+1) // by UID 1..n
		for u := 1; u <= n; u++ {
			sizes[u] = int64(rapid.IntRange(1, 6).Draw(t, "size"))
		}
		sorted := rapid.Bool().Draw(t, "sort")
		keys := []sortKey{{key: "SIZE", reverse: rapid.Bool().Draw(t, "reverse")}}
		in := map[uint32]bool{}
		for u := 1; u <= n; u++ {
			in[uint32(u)] = rapid.Bool().Draw(t, "in")
		}
		item := func(u uint32) *sortItem {
			return &sortItem{SortMsg: &store.SortMsg{UID: u, Size: sizes[u]}, UID: u, seq: u}
		}
		expect := func() []uint32 {
			var items []*sortItem
			for u := 1; u <= n; u++ {
				if in[uint32(u)] {
					items = append(items, item(uint32(u)))
				}
			}
			if sorted {
				sortItems(items, keys)
			}
			var out []uint32
			for _, m := range items {
				out = append(out, m.UID)
			}
			return out
		}
		u := &updateContext{tag: "t", uid: true}
		client := expect()
		if sorted {
			u.keys, u.inSort = keys, map[uint32]bool{}
			for _, x := range client {
				u.items = append(u.items, item(x))
				u.inSort[x] = true
			}
		} else {
			u.uids = slices.Clone(client)
		}
		for range rapid.IntRange(1, 5).Draw(t, "steps") {
			drop := map[uint32]bool{}
			var add []*sortItem
			for x := 1; x <= n; x++ {
				if !rapid.Bool().Draw(t, "change") {
					continue
				}
				if in[uint32(x)] {
					drop[uint32(x)] = true
				} else {
					add = append(add, item(uint32(x)))
				}
				in[uint32(x)] = !in[uint32(x)]
			}
			resp := u.remove(drop, nil) + u.add(add, nil)
			client = applyUpdates(t, client, resp)
			if want := expect(); !slices.Equal(client, want) {
				t.Fatalf("after %q the client has %v, want %v", resp, client, want)
			}
		}
	})
}

// applyUpdates is the client's side: " REMOVEFROM (pos set ...) ADDTO (pos
// set ...)" applied to list, pairs in order; a set is a comma list of
// numbers and ascending ranges, in the requested order.
func applyUpdates(t *rapid.T, list []uint32, resp string) []uint32 {
	f := strings.Fields(strings.NewReplacer("(", " ", ")", " ").Replace(resp))
	add := false
	for i := 0; i < len(f); i++ {
		switch f[i] {
		case "REMOVEFROM":
			add = false
			continue
		case "ADDTO":
			add = true
			continue
		}
		pos, _ := strconv.Atoi(f[i])
		i++
		var nums []uint32
		for _, part := range strings.Split(f[i], ",") {
			lo, hi, ok := strings.Cut(part, ":")
			a, _ := strconv.Atoi(lo)
			b := a
			if ok {
				b, _ = strconv.Atoi(hi)
			}
			for x := a; x <= b; x++ {
				nums = append(nums, uint32(x))
			}
		}
		switch {
		case add && pos == 0:
			list = append(list, nums...)
			slices.Sort(list)
		case add:
			list = slices.Insert(list, pos-1, nums...)
		case pos == 0:
			list = slices.DeleteFunc(list, func(x uint32) bool { return slices.Contains(nums, x) })
		default:
			if !slices.Equal(list[pos-1:min(len(list), pos-1+len(nums))], nums) {
				t.Fatalf("REMOVEFROM (%d %v): the list has %v there", pos, nums, list)
			}
			list = slices.Delete(list, pos-1, pos-1+len(nums))
		}
	}
	return list
}
