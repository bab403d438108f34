package store

import (
	"sync"
	"sync/atomic"
)

// With 50 sessions of one account in a process, every session read the
// store before nearly every command (a change signals every session), and
// those reads were most of Postgres's time in the many-sessions line
// (bench/ANALYSIS.md, issue 13). Many of them read the same thing: another
// session of the same mailbox had just read it, and nothing had changed
// since. So the process keeps each mailbox's last read (sharedPolls), and
// a session whose cursor is not older than that read's may take its
// answer instead, when the notifier says nothing of the mailbox or its
// user was signalled since the read began (Notifier.Fresh: every change
// is signalled after COMMIT, before anyone can act on it). The session
// takes the rows above its own cursor, which is what its own read would
// have returned. Not shared: reads that leave out the session's own STORE
// or add its held messages, a mailbox whose tombstones were pruned, and a
// read-write session that would claim a \Recent member no session of the
// process has tried to claim yet.
type sharedPolls struct {
	mu   sync.Mutex
	m    map[int64]*sharedPoll // by mailbox id
	hits atomic.Int64          // reads answered from here
}

type sharedPoll struct {
	since int64   // the read's cursor
	gen   uint64  // Notifier.Gen before the read
	ch    Changes // its answer (Recent never set)
	fresh []int64 // its unclaimed \Recent members
}

// maxSharedPolls bounds the map: past it, it starts afresh.
const maxSharedPolls = 10_000

func (p *sharedPolls) put(mailboxID int64, r *sharedPoll) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil || len(p.m) >= maxSharedPolls {
		p.m = map[int64]*sharedPoll{}
	}
	if old := p.m[mailboxID]; old == nil || old.gen <= r.gen {
		p.m[mailboxID] = r
	}
}

// sharedChanges returns what a read of the mailbox after since would return, from
// the last shared read, or nil.
func (s *Store) sharedChanges(box Box, since int64, claimRecent bool) *Changes {
	p := &s.polls
	p.mu.Lock()
	r := p.m[box.id]
	p.mu.Unlock()
	if r == nil || since < r.since || r.ch.Pruned || !s.notif.Fresh(box.userID, box.id, r.gen) {
		return nil
	}
	if claimRecent && len(r.fresh) > 0 && len(s.claims.untried(box.id, r.ch.UIDValidity, r.fresh)) > 0 {
		return nil
	}
	ch := &Changes{UIDValidity: r.ch.UIDValidity, ModSeq: max(since, r.ch.ModSeq)}
	for _, c := range r.ch.Changed {
		if c.ModSeq > since {
			ch.Changed = append(ch.Changed, c)
		}
	}
	for i, u := range r.ch.Expunged {
		if r.ch.ExpungedAt[i] > since {
			ch.Expunged, ch.ExpungedAt = append(ch.Expunged, u), append(ch.ExpungedAt, r.ch.ExpungedAt[i])
		}
	}
	return ch
}

// untried returns those of uids no session of the process has tried to
// claim (claimSet.reserve).
func (c *claimSet) untried(mailboxID int64, uidValidity uint32, uids []int64) []int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []int64
	for _, u := range uids {
		if _, ok := c.m[claimKey{mailboxID, uidValidity, u}]; !ok {
			out = append(out, u)
		}
	}
	return out
}
