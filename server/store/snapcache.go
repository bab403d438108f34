package store

import (
	"container/list"
	"context"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// SELECT reads every member of the mailbox with its flags: 1.4 ms of
// Postgres for 1,000 messages, and with 50 sessions of one account
// selecting again and again it was a third of the server's Postgres time
// in the many-sessions line (issue 13, bench/ANALYSIS.md), while another
// session of the same process had read the same rows a few milliseconds
// before. So the process keeps the snapshot SELECT read last for each
// mailbox, and the next SELECT of it reads only what changed since, by the
// same statement a session's poll uses (queueChanges, whose completeness
// the rapid property TestPropertyChangesSince checks), in one round trip
// with the mailbox's row and its unclaimed \Recent members.
//
// An entry is used only for its user and mailbox id at the same
// UIDVALIDITY (a mailbox deleted and created again, renamed or redefined
// under the name reads afresh), and only while younger than snapMaxAge and
// no tombstone after it was pruned (Changes.Pruned). Entries are
// immutable; a SELECT replaces its mailbox's entry.
type snapCache struct {
	mu   sync.Mutex
	max  int // messages, all entries together
	size int
	m    map[statusKey]*list.Element
	lru  list.List // front: most recently used; values *cachedSnap
}

type cachedSnap struct {
	key         statusKey
	mailboxID   int64
	uidValidity uint32
	modseq      int64 // the snapshot's cursor
	at          time.Time
	uids        []uint32
	ids         []int64
	flags       []Flags
}

// snapMaxAge bounds how old a snapshot a SELECT continues from.
const snapMaxAge = time.Hour

func newSnapCache(max int) *snapCache {
	return &snapCache{max: max, m: map[statusKey]*list.Element{}}
}

func (c *snapCache) get(k statusKey) *cachedSnap {
	if c == nil || c.max <= 0 {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[k]
	if !ok {
		return nil
	}
	cs := e.Value.(*cachedSnap)
	if time.Since(cs.at) > snapMaxAge {
		c.removeLocked(e)
		return nil
	}
	c.lru.MoveToFront(e)
	return cs
}

func (c *snapCache) put(cs *cachedSnap) {
	if c == nil || c.max <= 0 || len(cs.uids) > c.max/4 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[cs.key]; ok {
		if old := e.Value.(*cachedSnap); old.modseq > cs.modseq && old.mailboxID == cs.mailboxID {
			return // a newer one is there already
		}
		c.removeLocked(e)
	}
	c.m[cs.key] = c.lru.PushFront(cs)
	c.size += len(cs.uids)
	for c.size > c.max {
		c.removeLocked(c.lru.Back())
	}
}

func (c *snapCache) removeLocked(e *list.Element) {
	cs := c.lru.Remove(e).(*cachedSnap)
	delete(c.m, cs.key)
	c.size -= len(cs.uids)
}

// selectSince is Select continuing from base: ok is false when base no
// longer describes the mailbox of that name (read it afresh).
func (s *Store) selectSince(ctx context.Context, base *cachedSnap) (snap *Snapshot, recent []int64, ok bool, err error) {
	snap = &Snapshot{}
	found, exists := false, false
	ch := &Changes{ModSeq: base.modseq}
	var fresh []int64 // unused: every unclaimed \Recent member is read below
	b := &pgx.Batch{}
	b.Queue(`BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY`)
	b.Queue(`SET LOCAL plan_cache_mode = force_generic_plan`)
	b.Queue(`SELECT `+mailboxCols+`, highest_modseq FROM mailboxes WHERE user_id = $1 AND name = $2`,
		base.key.userID, base.key.name).Query(func(rows pgx.Rows) error {
		if !rows.Next() {
			return rows.Err()
		}
		var uv, un int64
		m := &snap.Mailbox
		if err := rows.Scan(&m.ID, &m.UserID, &m.Name, &m.Definition, &uv, &un, &m.SpecialUse, &snap.HighestModSeq); err != nil {
			return err
		}
		m.UIDValidity, m.UIDNext = uint32(uv), uint32(un)
		m.box = Box{userID: m.UserID, id: m.ID}
		found = true
		rows.Close()
		return rows.Err()
	})
	queueChanges(b, base.mailboxID, base.modseq, 0, -1, Held{}, ch, nil, &exists, &fresh)
	b.Queue(`SELECT uid FROM mailbox_messages WHERE mailbox_id = $1 AND recent ORDER BY uid`, base.mailboxID).Query(func(rows pgx.Rows) error {
		var u int64
		_, err := pgx.ForEachRow(rows, []any{&u}, func() error { recent = append(recent, u); return nil })
		return err
	})
	b.Queue(`COMMIT`)
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return nil, nil, false, err
	}
	if !found || !exists || snap.Mailbox.ID != base.mailboxID || snap.Mailbox.UIDValidity != base.uidValidity ||
		ch.UIDValidity != base.uidValidity || ch.Pruned || ch.pending {
		return nil, nil, false, nil // Pruned: tombstones after base are gone; pending: selectAll catches up
	}
	slices.SortFunc(ch.Changed, func(a, b Change) int { return int(a.UID) - int(b.UID) })
	sortExpunged(ch)
	// Merge: base and the changes, both by UID; a change replaces its
	// UID's entry, an expunge drops it.
	n := len(base.uids) + len(ch.Changed)
	snap.UIDs, snap.IDs, snap.Flags = make([]uint32, 0, n), make([]int64, 0, n), make([]Flags, 0, n)
	i, j, k := 0, 0, 0
	for i < len(base.uids) || j < len(ch.Changed) {
		var uid uint32
		var id int64
		var f Flags
		switch {
		case j == len(ch.Changed) || i < len(base.uids) && base.uids[i] < ch.Changed[j].UID:
			uid, id, f = base.uids[i], base.ids[i], base.flags[i]
			i++
		default:
			c := ch.Changed[j]
			uid, id, f = c.UID, c.MessageID, c.Flags
			if i < len(base.uids) && base.uids[i] == c.UID {
				i++
			}
			j++
		}
		for k < len(ch.Expunged) && ch.Expunged[k] < uid {
			k++
		}
		if k < len(ch.Expunged) && ch.Expunged[k] == uid {
			continue
		}
		snap.UIDs, snap.IDs, snap.Flags = append(snap.UIDs, uid), append(snap.IDs, id), append(snap.Flags, f)
	}
	snap.ModSeq = ch.ModSeq
	return snap, recent, true, nil
}

// derive fills the snapshot's Unseen and Keywords from its flags.
func (snap *Snapshot) derive() {
	kws := map[string]bool{}
	for i, f := range snap.Flags {
		if !f.Seen {
			snap.Unseen = append(snap.Unseen, snap.UIDs[i])
		}
		for _, k := range f.Keywords {
			kws[k] = true
		}
	}
	snap.Keywords = slices.Sorted(maps.Keys(kws))
}

// claimSet is the \Recent claims this process has made (claimRecent): a
// member claimed, or found claimed by another session, stays claimed.
type claimSet struct {
	mu sync.Mutex
	m  map[claimKey]struct{}
}

type claimKey struct {
	mailboxID   int64
	uidValidity uint32 // a redefined view numbers its members from 1 again
	uid         int64
}

// maxClaims bounds the set: past it, it starts afresh (a claim tried
// again only finds its member claimed).
const maxClaims = 100_000

// reserve returns those of uids no session of the process has tried to
// claim, and marks them tried: a session whose poll saw a new message
// while another's claim of it was still running (with 50 sessions, most
// of them) does not claim it again.
func (c *claimSet) reserve(mailboxID int64, uidValidity uint32, uids []int64) []int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m)+len(uids) > maxClaims {
		c.m = map[claimKey]struct{}{}
	}
	var out []int64
	for _, u := range uids {
		k := claimKey{mailboxID, uidValidity, u}
		if _, ok := c.m[k]; !ok {
			c.m[k] = struct{}{}
			out = append(out, u)
		}
	}
	return out
}

// release unmarks uids whose claim failed: a later poll may claim them.
func (c *claimSet) release(mailboxID int64, uidValidity uint32, uids []int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, u := range uids {
		delete(c.m, claimKey{mailboxID, uidValidity, u})
	}
}
