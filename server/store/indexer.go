package store

import (
	"context"
	"time"
)

// A delivery stores the message's searchable text unindexed (schema 0002):
// extracting and merging the trigrams of header_text and body_text was half
// of its Postgres CPU. The indexer indexes the text in batches, off the
// delivery path:
//   - once deliveries pause for indexQuiet with none in progress, so a burst
//     is stored at full speed;
//   - at once when this process has delivered IndexBacklog messages since its
//     last pass, so during a long burst the unindexed rows, which a search
//     reads without the trigram indexes, stay bounded;
//   - at start-up, and every indexPoll, for what other processes left
//     behind (`decimail deliver` run by an MTA, an import).
//
// A search finds a message whether its text is indexed or not
// (query.compiler.text), so the indexer changes how fast a search is, never
// what it finds.
//
// After a pass it merges the trigram indexes' pending lists (GIN fastupdate).
// Otherwise the insert that overflows a list (4 MB, about 100 messages)
// merges it and stalls for 100 ms or more, and every search scans the list.
const (
	indexQuiet   = 300 * time.Millisecond
	indexPoll    = 10 * time.Second
	IndexBacklog = 1000 // exported for the benchmarks' report
	indexBatch   = 50
	analyzeAfter = 500 // texts indexed in one pass
)

var trigramIndexes = []string{"message_texts_body_trgm", "message_texts_header_trgm", "messages_subject_trgm",
	"messages_from_trgm", "messages_to_trgm", "messages_cc_trgm"}

// delivered counts a delivery and wakes the indexer.
func (s *Store) delivered() {
	s.lastDelivery.Store(time.Now().UnixNano())
	s.sinceIndex.Add(1)
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// indexWait is how much longer the indexer waits: 0 once deliveries have
// paused for indexQuiet with none in progress, or when the backlog is
// IndexBacklog messages. A delivery in progress is not a pause, however
// long it waits (behind a commit, or the insert that merges a full GIN
// pending list): otherwise a pass (a batch and six pending-list merges,
// about half a second of Postgres CPU) could start inside a burst.
func (s *Store) indexWait() time.Duration {
	if s.sinceIndex.Load() >= IndexBacklog {
		return 0
	}
	if s.delivering.Load() > 0 {
		return indexQuiet
	}
	return max(0, indexQuiet-time.Since(time.Unix(0, s.lastDelivery.Load())))
}

func (s *Store) indexer(ctx context.Context) {
	ctx = WithClass(ctx, ClassBackground)
	defer close(s.indexerDone)
	timer := time.NewTimer(indexQuiet) // the start-up pass
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		case <-timer.C:
		}
		if wait := s.indexWait(); wait > 0 {
			timer.Reset(wait)
			continue
		}
		// A pass stops between batches when deliveries resume (below the
		// backlog): they go first, and the timer brings the indexer back.
		n, done, err := s.indexTexts(ctx, func() bool { return s.indexWait() == 0 })
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("indexing message texts", "err", err)
			}
			timer.Reset(indexQuiet)
			continue
		}
		if !done {
			timer.Reset(s.indexWait())
		} else {
			s.sinceIndex.Store(0)
			timer.Reset(indexPoll)
		}
		if n > 0 {
			for _, ix := range trigramIndexes {
				if _, err := s.pool.Exec(ctx, `SELECT gin_clean_pending_list($1::regclass)`, ix); err != nil && ctx.Err() == nil {
					s.log.Warn("gin_clean_pending_list", "index", ix, "err", err)
				}
			}
		}
		if f := s.indexPassed.Load(); f != nil {
			(*f)(n)
		}
	}
}

// IndexTexts indexes every stored text not yet indexed and returns how many
// it indexed.
func (s *Store) IndexTexts(ctx context.Context) (int, error) {
	n, _, err := s.indexTexts(ctx, func() bool { return true })
	return n, err
}

// indexTexts indexes texts in batches of indexBatch, each its own short
// transaction, while more() holds; done reports that none is left. Only the
// narrow row is rewritten: its TOASTed text is kept by pointer. Concurrent
// indexers (other processes) skip each other's rows.
func (s *Store) indexTexts(ctx context.Context, more func() bool) (total int, done bool, err error) {
	for more() {
		tag, err := s.pool.Exec(ctx, `UPDATE message_texts SET indexed = true WHERE message_id IN (
			SELECT message_id FROM message_texts WHERE NOT indexed ORDER BY message_id LIMIT $1 FOR UPDATE SKIP LOCKED)`, indexBatch)
		if err != nil {
			return total, false, err
		}
		n := int(tag.RowsAffected())
		total += n
		if n < indexBatch {
			return total, true, s.analyzeTexts(ctx, total)
		}
	}
	return total, false, s.analyzeTexts(ctx, total)
}

// analyzeTexts refreshes the planner's statistics of message_texts.indexed
// (and of the tables a search joins) after a large pass. A search's plan depends on how many texts are not
// indexed yet: with statistics taken during a bulk load (all unindexed),
// SEARCH TEXT read every text (771 ms instead of 12 ms) until autovacuum
// analysed the table again, up to a minute later.
func (s *Store) analyzeTexts(ctx context.Context, indexed int) error {
	if indexed < analyzeAfter {
		return nil
	}
	// The tables a search plans over came with the same bulk: analysed
	// too. Without their statistics, SEARCH TEXT over a freshly loaded
	// 10k account took 127-218 ms instead of 3 ms (two bench-compare runs
	// of issue 15) until autovacuum got to them. ANALYZE samples a bounded
	// number of rows, so this costs the same for a large account.
	_, err := s.pool.Exec(ctx, `ANALYZE message_texts (indexed), messages, mailbox_messages, message_flags`)
	return err
}
