package store

import (
	"context"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"decimail/server/query"
)

// SortMsg is one message's SORT and THREAD keys (RFC 5256), as delivery
// stored them (schema 0016): the text keys are folded (query.Fold), so
// that comparing their octets is the i;unicode-casemap order the RFC asks
// for (rfc5256.txt:858-863).
type SortMsg struct {
	UID     uint32
	Arrival time.Time // INTERNALDATE
	Sent    time.Time // Date:, zero if absent or unparseable
	Size    int64
	Subject string // base subject, folded
	Reply   bool   // the subject marked a reply or forward
	From    string // addr-mailbox of the first From address, folded
	To, Cc  string
	// DisplayFrom, DisplayTo: the SORT=DISPLAY keys (RFC 5957), folded.
	DisplayFrom, DisplayTo string
	MsgID                  string   // Message-ID as in the header (THREAD only)
	InReply                string   // first msg-id of In-Reply-To (THREAD only)
	Refs                   []string // msg-ids of References (THREAD only)
}

// SortKeys is SearchHeld that returns the matching messages' sort keys
// instead of their UIDs, in ascending UID order: the same compiled
// program, limits and held messages, in ONE query. With thread the
// Message-ID, In-Reply-To and References are read too.
func (s *Store) SortKeys(ctx context.Context, b Box, n query.Node, env *query.Env, held Held, thread bool) ([]SortMsg, error) {
	sql, err := s.searchSQL(b, n, env, held, `mm.uid, `+sortCols(thread))
	if err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, sql, env.Args...)
	if err != nil {
		return nil, wrap("sort", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (SortMsg, error) {
		var uid int64
		m, err := scanSortMsg(r, thread, &uid)
		m.UID = uint32(uid)
		return m, err
	})
	if err != nil {
		return nil, wrap("sort", err)
	}
	return out, nil
}

// A message's SORT and THREAD keys never change (they are its stored
// header's), so the process keeps those it read (sortCache) and a SORT or
// THREAD whose search the session answers from its own flags asks Postgres
// only for the messages it has not seen yet (SortKeysByID): Dovecot keeps
// its sort data in its index files, and a 10,000-message SORT read every
// key from Postgres each time, 5-10× Dovecot's (issue 17's lines). The
// entries are shared and never written after they are cached: sessions
// keep pointers to them in their sorted orders (imapd/sortorder.go), which
// outlive a reset of the cache without harm.
type sortCache struct {
	mu sync.RWMutex
	m  map[int64]*sortEntry
}

type sortEntry struct {
	SortMsg
	userID int64
}

// maxSortKeys bounds the cache (about 200 bytes an entry): past it, it
// starts afresh.
const maxSortKeys = 500_000

// SortKeysByID returns the SORT and THREAD keys of the user's messages
// ids, aligned with ids, from the process's cache and one query for the
// others; nil for an id that is not the user's message. The keys are
// shared by every caller and must not be modified; their UID is zero.
func (s *Store) SortKeysByID(ctx context.Context, b Box, ids []int64) ([]*SortMsg, error) {
	if err := b.check(); err != nil {
		return nil, err
	}
	keys := make([]*SortMsg, len(ids))
	var missing []int64
	at := map[int64][]int{} // positions of the missing ids
	c := &s.sortKeys
	c.mu.RLock()
	for i, id := range ids {
		if e, ok := c.m[id]; ok && e.userID == b.userID {
			keys[i] = &e.SortMsg
		} else {
			if at[id] == nil {
				missing = append(missing, id)
			}
			at[id] = append(at[id], i)
		}
	}
	c.mu.RUnlock()
	if len(missing) == 0 {
		return keys, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT m.id, `+sortCols(true)+` FROM messages m WHERE m.id = ANY($1) AND m.user_id = $2`,
		missing, b.userID)
	if err != nil {
		return nil, wrap("sort", err)
	}
	defer rows.Close()
	var read []*sortEntry
	var readIDs []int64
	for rows.Next() {
		var id int64
		m, err := scanSortMsg(rows, true, &id)
		if err != nil {
			return nil, wrap("sort", err)
		}
		e := &sortEntry{SortMsg: m, userID: b.userID}
		for _, i := range at[id] {
			keys[i] = &e.SortMsg
		}
		read, readIDs = append(read, e), append(readIDs, id)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("sort", err)
	}
	c.mu.Lock()
	if c.m == nil || len(c.m)+len(read) > maxSortKeys {
		c.m = make(map[int64]*sortEntry, len(read))
	}
	for i, id := range readIDs {
		c.m[id] = read[i]
	}
	c.mu.Unlock()
	return keys, nil
}

// sortCols are the columns of a message's sort keys (m: messages), with
// the THREAD keys when thread; scanSortMsg reads them.
func sortCols(thread bool) string {
	cols := `m.internal_date, m.sent_date, m.size, m.base_subject, m.subject_reply, m.from_mbox, m.to_mbox, m.cc_mbox, m.from_display, m.to_display`
	if thread {
		cols += `, m.message_id, m.in_reply_to, m.refs`
	}
	return cols
}

// scanSortMsg scans sortCols(thread) after the leading columns lead.
func scanSortMsg(r pgx.Row, thread bool, lead ...any) (SortMsg, error) {
	var m SortMsg
	var sent *time.Time
	dst := append(lead, &m.Arrival, &sent, &m.Size, &m.Subject, &m.Reply, &m.From, &m.To, &m.Cc, &m.DisplayFrom, &m.DisplayTo)
	if thread {
		dst = append(dst, &m.MsgID, &m.InReply, &m.Refs)
	}
	err := r.Scan(dst...)
	if sent != nil {
		m.Sent = *sent
	}
	return m, err
}
