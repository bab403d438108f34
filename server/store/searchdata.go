package store

import (
	"context"
	"math"
	"sync"
	"time"
)

// SearchData is what SEARCH compares of a message besides its flags and
// text, as the SQL compiler reads it (query.Compile): the day of its
// internal date in the zone it was given in (message_flags.internal_day:
// SINCE, BEFORE, ON), the day of its Date: header in that header's own
// zone (messages.sent_day: SENTSINCE, SENTBEFORE, SENTON; NoDay when the
// header is absent or unparseable, NULL in SQL, matching none of them) and
// its size (LARGER, SMALLER). Days count from 1970-01-01.
type SearchData struct {
	InternalDay, SentDay int32
	Size                 int32 // messages.size is an integer column
	Found                bool  // false: not a message of the user (deleted meanwhile)
}

// NoDay is SentDay of a message without a usable Date: header.
const NoDay int32 = math.MinInt32

// Day is the date of a SearchData day, midnight UTC (its Date() is the day).
func Day(d int32) time.Time { return time.Unix(int64(d)*86400, 0).UTC() }

// epochDay is Day's inverse: the number of a day (midnight UTC).
func epochDay(day time.Time) int32 { return int32(day.Unix() / 86400) }

// That data never changes after delivery (a copy to another user gets a
// new id), so the process keeps it per message id, as it keeps sort keys
// (sort.go). It does not use the sort keys' cache: those hold instants
// (timestamptz) whose zones are gone, not the days SEARCH compares, and
// reading them cold fetches every message's subject, addresses and
// References (some hundred bytes each) to learn three numbers; an entry
// here is 24 bytes of value (maxSearchData). A session answers UNSEEN
// SINCE d LARGER n from its view's flags and this cache
// (imapd/search.go) without a round trip once the mailbox's entries are
// read: Dovecot answers it from its index in memory (issue 15).
type searchDataCache struct {
	mu sync.RWMutex
	m  map[int64]searchDataEntry
}

type searchDataEntry struct {
	userID int64
	d      SearchData
}

// maxSearchData bounds the cache, as many messages as the sort keys'
// (maxSortKeys); past it, it starts afresh. A map entry is 32 bytes of
// key and value, about 85 with the map's slack (measured): 40 MB, where
// the sort keys' cache, at 200 bytes and more an entry, takes 100 MB.
// TestSearchDataCacheBounded holds it to 48 MB.
const maxSearchData = 500_000

// SearchDataByID returns the SearchData of the user's messages ids,
// aligned with ids, from the process's cache and ONE query for the
// others; Found is false for an id that is not the user's message.
func (s *Store) SearchDataByID(ctx context.Context, b Box, ids []int64) ([]SearchData, error) {
	if err := b.check(); err != nil {
		return nil, err
	}
	out := make([]SearchData, len(ids))
	var missing []int64
	var at map[int64][]int // positions of the missing ids
	c := &s.searchData
	c.mu.RLock()
	for i, id := range ids {
		if e, ok := c.m[id]; ok && e.userID == b.userID {
			out[i] = e.d
			continue
		}
		if at == nil {
			at = map[int64][]int{}
		}
		if at[id] == nil {
			missing = append(missing, id)
		}
		at[id] = append(at[id], i)
	}
	c.mu.RUnlock()
	if len(missing) == 0 {
		return out, nil
	}
	// The columns the compiler compares: internal_day and size of the
	// narrow flags table (query: compiler.flagCol), sent_day of messages.
	rows, err := s.pool.Query(ctx, `SELECT f.message_id, f.internal_day - DATE '1970-01-01', m.sent_day - DATE '1970-01-01', f.size
		FROM messages m JOIN message_flags f ON f.message_id = m.id WHERE m.id = ANY($1) AND m.user_id = $2`, missing, b.userID)
	if err != nil {
		return nil, wrap("search", err)
	}
	defer rows.Close()
	var read []searchDataEntry
	var readIDs []int64
	for rows.Next() {
		var id int64
		var sent *int32
		d := SearchData{Found: true, SentDay: NoDay}
		if err := rows.Scan(&id, &d.InternalDay, &sent, &d.Size); err != nil {
			return nil, wrap("search", err)
		}
		if sent != nil {
			d.SentDay = *sent
		}
		for _, i := range at[id] {
			out[i] = d
		}
		read, readIDs = append(read, searchDataEntry{userID: b.userID, d: d}), append(readIDs, id)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("search", err)
	}
	c.put(readIDs, read)
	return out, nil
}

// put caches the entries of ids, starting afresh past maxSearchData.
func (c *searchDataCache) put(ids []int64, es []searchDataEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m)+len(es) > maxSearchData {
		c.m = make(map[int64]searchDataEntry, len(es))
	}
	for i, id := range ids {
		c.m[id] = es[i]
	}
}
