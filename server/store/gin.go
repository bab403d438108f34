package store

import (
	"context"
	"time"
)

// The trigram indexes take new entries into their pending lists (GIN
// fastupdate); the list is merged into the index by autovacuum, or by the
// insert that overflows it (4 MB, ~100 messages), which then stalls for
// 100 ms or more. ginCleaner merges the lists in the background once
// deliveries pause for a second, so a delivery after a pause (an IDLE
// client's new mail) never stalls, and searches do not scan a long list.
// During a burst the overflowing inserts merge, as before: merging in the
// background every 32 deliveries as well cost a burst of 8 SMTP senders 15%
// of its rate (more CPU per message on 2 cores).
var trigramIndexes = []string{"messages_body_trgm", "messages_header_trgm", "messages_subject_trgm",
	"messages_from_trgm", "messages_to_trgm", "messages_cc_trgm"}

// delivered counts a delivery and wakes the cleaner.
func (s *Store) delivered() {
	s.sinceClean.Add(1)
	select {
	case s.clean <- struct{}{}:
	default:
	}
}

func (s *Store) ginCleaner(ctx context.Context) {
	defer close(s.cleanDone)
	quiet := time.NewTimer(time.Hour)
	defer quiet.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.clean:
			quiet.Reset(time.Second) // clean once deliveries pause
			continue
		case <-quiet.C:
		}
		if s.sinceClean.Swap(0) == 0 {
			continue
		}
		for _, ix := range trigramIndexes {
			if _, err := s.pool.Exec(ctx, `SELECT gin_clean_pending_list($1::regclass)`, ix); err != nil && ctx.Err() == nil {
				s.log.Warn("gin_clean_pending_list", "index", ix, "err", err)
			}
		}
	}
}
