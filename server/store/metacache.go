package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// What FETCH reads of a message besides its flags — size, internal date,
// ENVELOPE, BODYSTRUCTURE, BODY — never changes, so the process keeps it
// for the messages it read last, up to a size, as it keeps texts
// (textcache.go). A FETCH of those items and flags (what a client lists a
// mailbox with) is then answered from the session's view and this cache
// without a round trip (issue 13: with 50 sessions of one account, the
// FETCH's query was the one round trip left of most reads, and its p99 was
// 5-6× Dovecot's). Entries carry their user; FetchMeta serves them to that
// user's Box only.
type metaCache = userLRU[*messageMeta]

// messageMeta is a message's unchanging FETCH data.
type messageMeta struct {
	id            int64
	internalDate  time.Time
	size          int
	envelope      []byte
	bodyStructure []byte
	bodySimple    []byte
}

// IsMeta reports whether fc asks for nothing but flags and what FetchMeta serves.
func (fc FetchCols) IsMeta() bool {
	return fc == FetchCols{Flags: fc.Flags, InternalDate: fc.InternalDate, Size: fc.Size, Envelope: fc.Envelope,
		BodyStructure: fc.BodyStructure, BodySimple: fc.BodySimple}
}

// metaOverhead is what an entry costs besides its byte slices.
const metaOverhead = 160

func (e *messageMeta) cost() int64 {
	return int64(metaOverhead + len(e.envelope) + len(e.bodyStructure) + len(e.bodySimple))
}

func newMetaCache(max int64) *metaCache {
	return newUserLRU(max, max/16, (*messageMeta).cost)
}

// FetchMeta calls fn, in the order given, with the unchanging data of the
// messages ids (of the Box's user) at uids[i]: the size, internal date,
// ENVELOPE, BODYSTRUCTURE and BODY, whichever cols asks for (IsMeta;
// Flags are the caller's). Those the process has read before come from
// its cache, the others from ONE query by message id. A message that no
// longer exists has no call: the caller serves it otherwise.
func (s *Store) FetchMeta(ctx context.Context, b Box, uids []uint32, ids []int64, cols FetchCols, fn func(*FetchRow) error) error {
	if err := b.check(); err != nil {
		return err
	}
	found := make([]*messageMeta, len(ids))
	var missing []int64
	for i, id := range ids {
		if m, ok := s.metas.get(b.userID, id); ok {
			found[i] = m
		} else {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		got := map[int64]*messageMeta{}
		rows, err := s.pool.Query(ctx, `SELECT m.id, m.internal_date, m.internal_tz, f.size, m.envelope, m.bodystructure, m.body_simple
			FROM messages m JOIN message_flags f ON f.message_id = m.id WHERE m.id = ANY($1) AND m.user_id = $2`, missing, b.userID)
		if err != nil {
			return wrap("fetch", err)
		}
		var tz int32
		mm := &messageMeta{}
		_, err = pgx.ForEachRow(rows, []any{&mm.id, &mm.internalDate, &tz, &mm.size, &mm.envelope, &mm.bodyStructure, &mm.bodySimple}, func() error {
			m := *mm
			m.internalDate = m.internalDate.In(zone(int(tz)))
			got[m.id] = &m
			s.metas.put(b.userID, m.id, &m)
			mm.envelope, mm.bodyStructure, mm.bodySimple = nil, nil, nil
			return nil
		})
		if err != nil {
			return wrap("fetch", err)
		}
		for i, id := range ids {
			if found[i] == nil {
				found[i] = got[id]
			}
		}
	}
	r := &FetchRow{}
	for i, m := range found {
		if m == nil {
			continue
		}
		*r = FetchRow{UID: uids[i], MessageID: m.id}
		if cols.InternalDate {
			r.InternalDate = m.internalDate
		}
		if cols.Size {
			r.Size = m.size
		}
		if cols.Envelope {
			r.Envelope = m.envelope
		}
		if cols.BodyStructure {
			r.BodyStructure = m.bodyStructure
		}
		if cols.BodySimple {
			r.BodySimple = m.bodySimple
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}
