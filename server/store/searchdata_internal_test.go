package store

import (
	"runtime"
	"testing"
)

// TestSearchDataCacheBounded fills the process's cache of search data
// past maxSearchData in batches as SearchDataByID does: it never holds
// more entries than that, and its memory stays within the 48 MB the
// bound is documented at (searchdata.go).
func TestSearchDataCacheBounded(t *testing.T) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var c searchDataCache
	const batch = 10_000
	ids := make([]int64, batch)
	es := make([]searchDataEntry, batch)
	peak := 0
	for next := int64(1); next <= maxSearchData+3*batch; {
		for i := range ids {
			ids[i] = next
			es[i] = searchDataEntry{userID: 1, d: SearchData{InternalDay: 20000, SentDay: NoDay, Size: int32(next), Found: true}}
			next++
		}
		c.put(ids, es)
		peak = max(peak, len(c.m))
	}
	if peak > maxSearchData {
		t.Fatalf("the cache held %d entries, bound %d", peak, maxSearchData)
	}
	// Fill it to its bound again and weigh it.
	c.m = nil
	for next := int64(1); next+batch <= maxSearchData+1; {
		for i := range ids {
			ids[i] = next
			next++
		}
		c.put(ids, es)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	grown := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("%d entries: %.1f MB, %.0f bytes an entry", len(c.m), float64(grown)/(1<<20), float64(grown)/float64(len(c.m)))
	if len(c.m) != maxSearchData || grown > 48<<20 {
		t.Fatalf("a full cache: %d entries, %d bytes (bound %d entries, 48 MB)", len(c.m), grown, maxSearchData)
	}
	runtime.KeepAlive(c.m)
}
