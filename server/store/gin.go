package store

import (
	"context"
	"time"
)

// The trigram indexes take new entries into their pending lists (GIN
// fastupdate); the list is merged into the index by autovacuum, or by the
// insert that overflows it (4 MB, ~100 messages), which then stalls for
// 100 ms or more while holding nothing but its own delivery. ginCleaner
// merges the lists in the background after every cleanEvery deliveries of
// this process (and after a quiet second), so deliveries, and searches,
// which read the whole pending list, do not pay for it.
const cleanEvery = 32

var trigramIndexes = []string{"messages_body_trgm", "messages_header_trgm", "messages_subject_trgm",
	"messages_from_trgm", "messages_to_trgm", "messages_cc_trgm"}

// delivered counts a delivery towards the next clean.
func (s *Store) delivered() {
	if s.sinceClean.Add(1) >= cleanEvery {
		select {
		case s.clean <- struct{}{}:
		default:
		}
	}
}

func (s *Store) ginCleaner(ctx context.Context) {
	defer close(s.cleanDone)
	idle := time.NewTimer(time.Hour)
	defer idle.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.clean:
		case <-idle.C:
		}
		if s.sinceClean.Swap(0) == 0 {
			idle.Reset(time.Hour)
			continue
		}
		for _, ix := range trigramIndexes {
			if _, err := s.pool.Exec(ctx, `SELECT gin_clean_pending_list($1::regclass)`, ix); err != nil && ctx.Err() == nil {
				s.log.Warn("gin_clean_pending_list", "index", ix, "err", err)
			}
		}
		idle.Reset(time.Second) // what arrived meanwhile, once quiet
	}
}
