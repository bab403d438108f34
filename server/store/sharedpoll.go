package store

import (
	"cmp"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
)

// With 50 sessions of one account in a process, every session read the
// store before nearly every command (a change signals every session), and
// those reads were most of Postgres's time in the many-sessions line
// (bench/ANALYSIS.md, issue 13). Many of them read the same thing. So the
// process keeps, per mailbox, what reads of its changes returned
// (sharedPolls), and a session whose cursor is not older than that record's
// may take its answer instead of reading, when the notifier says nothing
// of the mailbox or its user was signalled since (Notifier.freshLocked:
// every change is signalled after COMMIT, before anyone can act on it).
// The session takes the rows above its own cursor, which is what its own
// read would have returned (ChangesSinceExcept's rule included).
//
// The record is kept current by the writers of this process (queueFeeds):
// a change of the user's mail reads, in its own transaction, under the
// user's lock and in the same round trip, what changed in each mailbox its
// sessions follow since the record's cursor, and publishes the record with
// the signal it sends on leaving the gate (touchFeeds). So after a change
// made through this process, its sessions bring their views up to date
// without a round trip each; only changes by other processes, and records
// no writer continued, make a session read.
//
// Not shared: reads that add a session's held messages (but for messages
// this process deleted: deletedSet), a mailbox whose tombstones were
// pruned.
type sharedPolls struct {
	mu    sync.Mutex
	m     map[int64]*sharedPoll // by mailbox id
	hits  atomic.Int64          // reads answered from here
	reads atomic.Int64          // reads that went to the store
	feeds atomic.Int64          // records continued by writers (touchFeeds)
}

// ChangeReads counts, since the store opened, the reads of a mailbox's
// changes answered from its record (shared), those that read the store,
// and the records this process's writers continued (metrics).
func (s *Store) ChangeReads() (shared, read, continued int64) {
	return s.polls.hits.Load(), s.polls.reads.Load(), s.polls.feeds.Load()
}

// sharedPoll is the exact answer of a read of a mailbox's changes after
// since, as of its read (the later one, for merged records). Immutable
// once published.
type sharedPoll struct {
	since int64   // the read's cursor
	gen   uint64  // Notifier.Gen before the read (the signal after it, for a writer's)
	ch    Changes // its answer (Recent never set); Changed and Expunged by UID
	mm    []int64 // mm[i]: the membership's own modseq of ch.Changed[i]
	fresh []int64 // its unclaimed \Recent members, ascending
}

// maxSharedPolls bounds the map: past it, it starts afresh.
const maxSharedPolls = 10_000

// maxSharedRows bounds a record: past it the older half of its rows goes
// (its cursor moves up), and sessions further behind read for themselves.
// Sessions that run commands stay within a few dozen changes of the
// newest; every change merges and every read filters the whole record
// (with 4,096 rows: a tenth of the server's own CPU in the many-sessions
// line).
const maxSharedRows = 512

func (p *sharedPolls) put(mailboxID int64, r *sharedPoll) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil || len(p.m) >= maxSharedPolls {
		p.m = map[int64]*sharedPoll{}
	}
	old := p.m[mailboxID]
	switch merged := mergePolls(old, r); {
	case merged != nil:
		p.m[mailboxID] = merged
	case old == nil || old.gen <= r.gen:
		p.m[mailboxID] = r
	}
}

// get returns the mailbox's record, or nil.
func (p *sharedPolls) get(mailboxID int64) *sharedPoll {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.m[mailboxID]
}

// mergePolls returns one record answering for both a and b, or nil when
// they do not join (a gap between their ranges, another UIDVALIDITY,
// pruned tombstones). Whichever read came later, a message's row with the
// higher modseq is its later state (a message's modseq only grows), an
// expunge is final (UIDs never come back), and under the user's lock every
// change committed after a read has a modseq above everything that read
// saw; so the union, row by row, is what one read of the whole range
// after the later of the two returns.
func mergePolls(a, b *sharedPoll) *sharedPoll {
	if a == nil || b == nil || a.ch.UIDValidity != b.ch.UIDValidity || a.ch.Pruned || b.ch.Pruned ||
		a.since > b.ch.ModSeq || b.since > a.ch.ModSeq {
		return nil
	}
	m := &sharedPoll{since: min(a.since, b.since), gen: max(a.gen, b.gen),
		ch: Changes{UIDValidity: a.ch.UIDValidity, ModSeq: max(a.ch.ModSeq, b.ch.ModSeq)}}
	// Expunged: the union (disjoint but for a UID both saw expunged).
	i, j := 0, 0
	for i < len(a.ch.Expunged) || j < len(b.ch.Expunged) {
		switch {
		case j == len(b.ch.Expunged) || i < len(a.ch.Expunged) && a.ch.Expunged[i] < b.ch.Expunged[j]:
			m.ch.Expunged, m.ch.ExpungedAt = append(m.ch.Expunged, a.ch.Expunged[i]), append(m.ch.ExpungedAt, a.ch.ExpungedAt[i])
			i++
		case i == len(a.ch.Expunged) || b.ch.Expunged[j] < a.ch.Expunged[i]:
			m.ch.Expunged, m.ch.ExpungedAt = append(m.ch.Expunged, b.ch.Expunged[j]), append(m.ch.ExpungedAt, b.ch.ExpungedAt[j])
			j++
		default:
			m.ch.Expunged, m.ch.ExpungedAt = append(m.ch.Expunged, a.ch.Expunged[i]), append(m.ch.ExpungedAt, a.ch.ExpungedAt[i])
			i, j = i+1, j+1
		}
	}
	gone := func(uid uint32) bool { _, ok := slices.BinarySearch(m.ch.Expunged, uid); return ok }
	add := func(p *sharedPoll, k int) {
		if !gone(p.ch.Changed[k].UID) {
			m.ch.Changed, m.mm = append(m.ch.Changed, p.ch.Changed[k]), append(m.mm, p.mm[k])
		}
	}
	i, j = 0, 0
	for i < len(a.ch.Changed) || j < len(b.ch.Changed) {
		switch {
		case j == len(b.ch.Changed) || i < len(a.ch.Changed) && a.ch.Changed[i].UID < b.ch.Changed[j].UID:
			add(a, i)
			i++
		case i == len(a.ch.Changed) || b.ch.Changed[j].UID < a.ch.Changed[i].UID:
			add(b, j)
			j++
		default:
			if a.ch.Changed[i].ModSeq >= b.ch.Changed[j].ModSeq {
				add(a, i)
			} else {
				add(b, j)
			}
			i, j = i+1, j+1
		}
	}
	for _, u := range slices.Concat(a.fresh, b.fresh) {
		if !gone(uint32(u)) {
			m.fresh = append(m.fresh, u)
		}
	}
	slices.Sort(m.fresh)
	m.fresh = slices.Compact(m.fresh)
	m.trim()
	return m
}

// trim keeps the newer half of the rows of a record grown past
// maxSharedRows, raising its cursor: a read after the new cursor returns
// exactly the rows above it.
func (p *sharedPoll) trim() {
	if len(p.ch.Changed)+len(p.ch.Expunged) <= maxSharedRows {
		return
	}
	ms := make([]int64, 0, len(p.ch.Changed)+len(p.ch.Expunged))
	for _, c := range p.ch.Changed {
		ms = append(ms, c.ModSeq)
	}
	ms = append(ms, p.ch.ExpungedAt...)
	slices.Sort(ms)
	cut := ms[len(ms)-maxSharedRows/2-1]
	p.since = max(p.since, cut)
	var ch []Change
	var mm []int64
	for k, c := range p.ch.Changed {
		if c.ModSeq > cut {
			ch, mm = append(ch, c), append(mm, p.mm[k])
		}
	}
	var ex []uint32
	var at []int64
	for k, u := range p.ch.Expunged {
		if p.ch.ExpungedAt[k] > cut {
			ex, at = append(ex, u), append(at, p.ch.ExpungedAt[k])
		}
	}
	p.ch.Changed, p.mm, p.ch.Expunged, p.ch.ExpungedAt = ch, mm, ex, at
}

// sharedChanges returns what a read of the mailbox after since, leaving
// out the flag changes in lo..hi (ChangesSinceExcept), would return, from
// the mailbox's record, and the unclaimed \Recent members among them; nil
// when the record cannot answer.
func (s *Store) sharedChanges(box Box, since, lo, hi int64) (*Changes, []int64) {
	r := s.polls.get(box.id)
	if r == nil || since < r.since || r.ch.Pruned {
		return nil, nil
	}
	n := s.notif
	n.mu.Lock()
	fresh := n.freshLocked(box.userID, box.id, r.gen)
	n.mu.Unlock()
	if !fresh {
		return nil, nil
	}
	ch := &Changes{UIDValidity: r.ch.UIDValidity, ModSeq: max(since, hi, r.ch.ModSeq)}
	for k, c := range r.ch.Changed {
		// The read's two kinds of rows: memberships newer than since, and
		// flag changes of older ones that are not in lo..hi.
		if c.ModSeq > since && (r.mm[k] > since || c.ModSeq < lo || c.ModSeq > hi) {
			ch.Changed = append(ch.Changed, c)
		}
	}
	for k, u := range r.ch.Expunged {
		if r.ch.ExpungedAt[k] > since {
			ch.Expunged, ch.ExpungedAt = append(ch.Expunged, u), append(ch.ExpungedAt, r.ch.ExpungedAt[k])
		}
	}
	var recent []int64
	for _, u := range r.fresh {
		if _, ok := slices.BinarySearchFunc(ch.Changed, uint32(u), func(c Change, u uint32) int { return cmp.Compare(c.UID, u) }); ok {
			recent = append(recent, u)
		}
	}
	return ch, recent
}

// feedRead is a read of a mailbox's changes that a writer queues in its
// transaction (queueFeeds) to continue the mailbox's record.
type feedRead struct {
	mailboxID int64
	gen       uint64 // Notifier.Gen before the writer's batch
	found     bool
	r         sharedPoll
}

// maxFeeds bounds the mailboxes one change reads for.
const maxFeeds = 8

// queueFeeds queues on b, a writer's batch after its statements and before
// its COMMIT, under the user's lock, a read of what changed since its
// record's cursor in each mailbox of the user this process's sessions
// follow and have a record of (sharedpoll.go). The caller hands the reads
// to the gate (userGates.stash) once the transaction committed. generic
// queues, before the first read, the setting of one generic plan for the
// rest of the transaction (ChangesSinceHeld's).
func (s *Store) queueFeeds(b *pgx.Batch, userID int64, generic bool) []*feedRead {
	ids := s.notif.mailboxesOf(userID, maxFeeds)
	if len(ids) == 0 {
		return nil
	}
	gen := s.notif.Gen()
	var out []*feedRead
	for _, id := range ids {
		e := s.polls.get(id)
		if e == nil || e.ch.Pruned {
			continue
		}
		if generic && len(out) == 0 {
			b.Queue(`SET LOCAL plan_cache_mode = force_generic_plan`)
		}
		f := &feedRead{mailboxID: id, gen: gen}
		f.r.since, f.r.ch.ModSeq = e.ch.ModSeq, e.ch.ModSeq
		queueChanges(b, id, f.r.since, 0, -1, Held{}, &f.r.ch, &f.r.mm, &f.found, &f.r.fresh)
		out = append(out, f)
	}
	return out
}

// touchFeeds signals the user's sessions (Notifier.Touch) on leaving the
// user's gate, and publishes the reads the change made for them: a read
// made under the lock saw everything committed before it, and nothing of
// the user can commit between it and this signal but a change another
// process makes after the COMMIT, whose notification, if it came
// already, makes the read unfit (freshLocked since the gen before the
// batch); if it comes later, the record is no longer fresh.
//
// The records are published before the signal, under the notifier's lock:
// a session the signal wakes finds them (published after it, a session
// that read in between read the store, as the record was stale).
func (s *Store) touchFeeds(userID int64, feeds []*feedRead) {
	if f := s.beforeTouch.Load(); f != nil {
		(*f)()
	}
	for _, f := range feeds {
		f.r.finish()
	}
	n := s.notif
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, f := range feeds {
		if f.found && !f.r.ch.Pruned && !f.r.ch.pending && n.freshLocked(userID, f.mailboxID, f.gen) {
			f.r.gen = n.gen + 1 // the signal's, below
			s.polls.put(f.mailboxID, &f.r)
			s.polls.feeds.Add(1)
		}
	}
	n.touchLocked(userID)
}

// finish sorts a read's rows by UID (Changed with mm, Expunged with
// ExpungedAt) and its \Recent members.
func (p *sharedPoll) finish() {
	if len(p.mm) == len(p.ch.Changed) {
		idx := make([]int, len(p.ch.Changed))
		for i := range idx {
			idx[i] = i
		}
		slices.SortFunc(idx, func(a, b int) int { return cmp.Compare(p.ch.Changed[a].UID, p.ch.Changed[b].UID) })
		ch, mm := make([]Change, len(idx)), make([]int64, len(idx))
		for k, i := range idx {
			ch[k], mm[k] = p.ch.Changed[i], p.mm[i]
		}
		p.ch.Changed, p.mm = ch, mm
	}
	sortExpunged(&p.ch)
	slices.Sort(p.fresh)
}

// deletedSet remembers the messages this process deleted last (Expunge,
// once committed). A session still showing such a message (its EXPUNGE
// not sent yet: Held) would have its flag changes read with the mailbox's
// (ChangesSinceHeld); a deleted message has none, so such a read may be
// answered from the mailbox's record. Message ids are never reused.
type deletedSet struct {
	mu   sync.Mutex
	m    map[int64]struct{}
	ring []int64
	next int
}

// maxDeleted bounds deletedSet.
const maxDeleted = 1 << 16

func (d *deletedSet) add(ids []int64) {
	if len(ids) == 0 {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.m == nil {
		d.m, d.ring = map[int64]struct{}{}, make([]int64, maxDeleted)
	}
	for _, id := range ids {
		if _, ok := d.m[id]; ok {
			continue
		}
		if old := d.ring[d.next]; old != 0 {
			delete(d.m, old)
		}
		d.ring[d.next], d.m[id] = id, struct{}{}
		d.next = (d.next + 1) % maxDeleted
	}
}

// Deleted reports whether this process deleted every one of the messages
// ids (an EXPUNGE through it, committed; the last 65,536 it deleted): they
// have no flags and match no search, and a session still showing them
// needs no read to learn it (imapd: othersFlags).
func (s *Store) Deleted(ids []int64) bool { return len(ids) > 0 && s.deleted.all(ids) }

// all reports whether every one of ids was deleted.
func (d *deletedSet) all(ids []int64) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, id := range ids {
		if _, ok := d.m[id]; !ok {
			return false
		}
	}
	return true
}
