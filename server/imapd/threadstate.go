package imapd

// THREAD=REFERENCES kept between commands (issue 17): threading a 100,000
// message mailbox from scratch, its id table, pruning, subject merging and
// sorting, took most of a THREAD's time (0.67-0.73× Dovecot, which keeps a
// thread index per mailbox). The server keeps, per mailbox, UIDVALIDITY
// and program, the threading of the messages the program last found
// (threadState), shared by the sessions of the process (threadCache):
//   - the same messages found again (same UIDs, in one mailbox at one
//     UIDVALIDITY the same messages with the same keys for ever): the kept
//     forest is written out as it is;
//   - the same messages and new ones after them (mail arrived, or a flag
//     program matched a message newer than all it had found): updated in
//     place, exactly (threadState.add);
//   - anything else (an expunge, a flag change taking a message out of or
//     into the middle of the matches): threaded again from scratch.
//
// The update is exact because every step of REFERENCES, from "For each
// searched message" (rfc5256.txt:455-645), is local to a part of the forest:
//   - step 1 takes the messages in sequence order, and sequence order is
//     UID order, so new messages come last: continuing it over them gives
//     the table the whole would give. A new message changes the trees
//     ("containers" under the root, step 2) holding its own Message-ID's
//     container and its references' (the only containers whose links it
//     touches), and no other;
//   - steps 3 and 4 (pruning, sorting a dummy's children) and 6 (sorting
//     siblings) below the top level only read one tree: each tree under
//     the root gives one top-level node (or none), its "item", made again
//     for the trees the new messages changed;
//   - step 5 merges top-level nodes of one base subject, in their sent
//     date order, reading no other: the items of a subject are a "group",
//     merged again (on copies, the items stay as made) when one of its
//     items changed;
//   - the top level is sorted by sent date, a total order (ties by
//     sequence number): the merged groups' roots are taken out of and put
//     into it by binary search.

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"

	"decimail/server/store"
)

// container is a node of step 1's id table: a message (msg ≥ 0, its index
// in threadState.keys) or a dummy (msg -1) standing for a referenced
// Message-ID no found message has.
type container struct {
	msg      int32
	parent   *container
	children []*container
	// rooted: a top-level container (no parent) as of the last update,
	// item its top-level node (nil when pruning left none).
	rooted bool
	item   *fnode
	// gen: the threadState.add that made it; touched: the last that
	// touched it.
	gen, touched uint32
}

// fnode is a node of the threaded forest: a message, or a dummy (msg -1)
// at the top level. Made once and not modified afterwards (a group's merge
// works on copies), so a forest stays valid while the state moves on.
type fnode struct {
	msg      int32
	children []*fnode
}

// threadState is REFERENCES threading of the messages found (keys, uids:
// in sequence, i.e. UID, order).
type threadState struct {
	keys   []*store.SortMsg // the store's shared entries, not modified
	uids   []uint32
	sent   []sentKey             // sentDate of each, for cmp
	ids    map[string]*container // step 1's table by normalized Message-ID
	groups map[string]*subjectGroup
	top    []*fnode // the threads, sorted (cmp)
	// containers counts step 1's containers (messages and dummies), for
	// the memory bound.
	containers int
	gen        uint32      // adds so far
	slab       []container // containers are made from it, some at a time
	fslab      []fnode     // the same for the nodes of a first threading
}

// subjectGroup is the top-level items of one (non-empty) base subject,
// sorted (cmp), and the roots step 5 made of them.
type subjectGroup struct {
	items []*fnode
	out   []*fnode
}

func newThreadState() *threadState {
	return &threadState{ids: map[string]*container{}, groups: map[string]*subjectGroup{}}
}

// first is the message a node sorts by: its own, or its first child's for
// a dummy ("use the first child for the top-level sort", rfc5256.txt:536-539).
func (n *fnode) first() int32 {
	for n.msg < 0 {
		n = n.children[0]
	}
	return n.msg
}

// sentKey is a sent date as numbers (time.Time.Compare's order).
type sentKey struct {
	sec  int64
	nsec int32
}

// cmp orders by sent date, ties by sequence number ("When comparing two
// sent dates that match exactly", rfc5256.txt:159-161), which is the index.
func (s *threadState) cmp(a, b *fnode) int {
	i, j := a.first(), b.first()
	x, y := s.sent[i], s.sent[j]
	if x.sec != y.sec {
		return cmp.Compare(x.sec, y.sec)
	}
	if x.nsec != y.nsec {
		return cmp.Compare(x.nsec, y.nsec)
	}
	return cmp.Compare(i, j)
}

// subject is a top-level node's thread subject: its message's base
// subject, or its first child's for a dummy ("This is the thread
// subject", rfc5256.txt:550-553).
func (s *threadState) subject(n *fnode) string { return s.keys[n.first()].Subject }

func (s *threadState) reply(n *fnode) bool { return n.msg >= 0 && s.keys[n.msg].Reply }

// add threads messages found after the state's ones (keys and UIDs, in
// sequence order, every UID above the state's).
func (s *threadState) add(keys []*store.SortMsg, uids []uint32) {
	from := len(s.keys)
	s.keys = append(s.keys, keys...)
	s.uids = append(s.uids, uids...)
	for _, k := range keys {
		t := sentDate(k)
		s.sent = append(s.sent, sentKey{t.Unix(), int32(t.Nanosecond())})
	}
	if from == 0 && len(s.ids) == 0 {
		s.ids = make(map[string]*container, 2*len(keys))
	}
	if from == 0 {
		s.fslab = make([]fnode, 0, len(keys)) // made together, fewer objects
		defer func() { s.fslab = nil }()
	}
	// (1) "For each searched message" (rfc5256.txt:455-517), noting the
	// containers made, the older ones touched and the trees these were
	// in before.
	s.gen++
	var made, touched, before []*container
	newContainer := func() *container {
		if len(s.slab) == cap(s.slab) {
			s.slab = make([]container, 0, min(max(len(keys), 16), 4096))
		}
		s.slab = append(s.slab, container{msg: -1, gen: s.gen})
		c := &s.slab[len(s.slab)-1]
		made = append(made, c)
		s.containers++
		return c
	}
	touch := func(c *container) {
		if c.gen == s.gen || c.touched == s.gen {
			return
		}
		c.touched = s.gen
		touched = append(touched, c)
		r := c
		for r.parent != nil {
			r = r.parent
		}
		if r.rooted {
			before = append(before, r)
		}
	}
	node := func(id string) *container {
		c := s.ids[id]
		if c == nil {
			c = newContainer() // a dummy until its message shows up
			s.ids[id] = c
		}
		touch(c)
		return c
	}
	var refs []*container
	for i := from; i < len(s.keys); i++ {
		m := s.keys[i]
		var c *container
		if id := normMsgID(m.MsgID); id != "" {
			if c = node(id); c.msg >= 0 {
				// A duplicate Message-ID: only the first message (lowest
				// sequence number) keeps it ("only use that Message ID in the first",
				// rfc5256.txt:471-475).
				c = nil
			}
		}
		if c == nil {
			// No valid Message-ID: "assign a unique Message ID" (rfc5256.txt:466-469),
			// which nothing can reference: no entry in the table.
			c = newContainer()
		}
		c.msg = int32(i)
		// (A) References, else the first valid In-Reply-To
		// ("If a message contains a References header line", rfc5256.txt:416-423),
		// linked each to the next unless the child "already has a parent"
		// (rfc5256.txt:482-488) or it "would introduce a loop" (rfc5256.txt:490-493).
		refs = refs[:0]
		for _, r := range m.Refs {
			if r = normMsgID(r); r != "" {
				refs = append(refs, node(r))
			}
		}
		if len(refs) == 0 {
			if r := normMsgID(m.InReply); r != "" {
				refs = append(refs, node(r))
			}
		}
		for j := 1; j < len(refs); j++ {
			if refs[j].parent == nil && !loops(refs[j-1], refs[j]) {
				relink(refs[j-1], refs[j])
			}
		}
		// (B) The last reference becomes the message's parent, replacing
		// any parent ("Create a parent/child link between the last reference",
		// rfc5256.txt:497-513).
		unparent(c)
		if len(refs) > 0 && !loops(refs[len(refs)-1], c) {
			relink(refs[len(refs)-1], c)
		}
	}
	// (2) The top-level containers of the trees that changed
	// ("Gather together all of the messages that have no parents",
	// rfc5256.txt:519-522): the ones of the touched containers now, and
	// the old top-level ones (which may have got a parent, or lost part
	// of their tree). Their items leave and enter their subject's group.
	type change struct{ add, drop []*fnode }
	changes := map[string]*change{}
	note := func(n *fnode, drop bool) {
		if n == nil {
			return
		}
		sub := s.subject(n)
		ch := changes[sub]
		if ch == nil {
			ch = &change{}
			changes[sub] = ch
		}
		if drop {
			ch.drop = append(ch.drop, n)
		} else {
			ch.add = append(ch.add, n)
		}
	}
	for _, r := range before {
		if r.rooted {
			r.rooted = false
			note(r.item, true)
			r.item = nil
		}
	}
	for _, c := range made {
		// A new tree's top-level container is new; a new container in an
		// older tree is found from that tree's touched containers.
		if c.parent == nil {
			c.rooted = true
			c.item = s.item(c)
			note(c.item, false)
		}
	}
	for _, c := range append(touched, before...) {
		for c.parent != nil {
			c = c.parent
		}
		if !c.rooted {
			c.rooted = true
			c.item = s.item(c)
			note(c.item, false)
		}
	}
	// (5) Merge the changed groups again, and (6) put their roots in the
	// sorted top level. A node without subject is never merged: it is a
	// root as it is.
	var add, drop []*fnode
	for sub, ch := range changes {
		if sub == "" {
			add, drop = append(add, ch.add...), append(drop, ch.drop...)
			continue
		}
		g := s.groups[sub]
		if g == nil {
			g = &subjectGroup{}
			s.groups[sub] = g
		}
		drop = append(drop, g.out...)
		g.items = s.apply(g.items, ch.add, ch.drop)
		g.out = s.merge(g.items)
		add = append(add, g.out...)
		if len(g.items) == 0 {
			delete(s.groups, sub)
		}
	}
	s.top = s.apply(s.top, add, drop)
}

// apply takes the nodes drop out of the sorted list and puts add in: each
// by binary search, or, when they are many (a first threading), all at
// once and a sort of the whole.
func (s *threadState) apply(list, add, drop []*fnode) []*fnode {
	if len(add)+len(drop) > 64 && len(add)+len(drop) > len(list)/64 {
		gone := make(map[*fnode]bool, len(drop))
		for _, n := range drop {
			gone[n] = true
		}
		list = slices.DeleteFunc(list, func(n *fnode) bool { return gone[n] })
		list = append(list, add...)
		slices.SortFunc(list, s.cmp)
		return list
	}
	for _, n := range drop {
		i, ok := slices.BinarySearchFunc(list, n, s.cmp)
		if !ok || list[i] != n {
			panic(fmt.Sprintf("imapd: thread node of message %d not in its list", n.first()))
		}
		list = slices.Delete(list, i, i+1)
	}
	for _, n := range add {
		i, _ := slices.BinarySearchFunc(list, n, s.cmp)
		list = slices.Insert(list, i, n)
	}
	return list
}

// loops reports whether making p the parent of c would make a loop: p is
// c or one of c's descendants ("would introduce a loop", rfc5256.txt:490-493).
func loops(p, c *container) bool {
	for a := p; a != nil; a = a.parent {
		if a == c {
			return true
		}
	}
	return false
}

func relink(p, c *container) {
	c.parent = p
	p.children = append(p.children, c)
}

func unparent(c *container) {
	if p := c.parent; p != nil {
		p.children = slices.DeleteFunc(p.children, func(x *container) bool { return x == c })
		c.parent = nil
	}
}

// item is the top-level node a tree gives after (3) "Prune dummy
// messages" (rfc5256.txt:524-534): dummies below the top level are
// replaced by their children, a top-level dummy without children goes,
// one with a single child is replaced by it; every set of siblings sorted
// by sent date (steps 4 and 6).
func (s *threadState) item(r *container) *fnode {
	kids := s.pruned(r.children, nil)
	switch {
	case r.msg >= 0:
		return s.made(r.msg, kids)
	case len(kids) == 0:
		return nil
	case len(kids) == 1:
		return kids[0]
	}
	return s.made(-1, kids)
}

// pruned appends to out the nodes the containers give below the top
// level: a message's node, a dummy's children in its place.
func (s *threadState) pruned(cs []*container, out []*fnode) []*fnode {
	for _, c := range cs {
		if c.msg < 0 {
			out = s.pruned(c.children, out)
			continue
		}
		out = append(out, s.made(c.msg, s.pruned(c.children, nil)))
	}
	return out
}

func (s *threadState) made(msg int32, kids []*fnode) *fnode {
	slices.SortFunc(kids, s.cmp)
	if len(s.fslab) < cap(s.fslab) {
		s.fslab = append(s.fslab, fnode{msg: msg, children: kids})
		return &s.fslab[len(s.fslab)-1]
	}
	return &fnode{msg: msg, children: kids}
}

// merge is step 5 for one subject's top-level nodes, in sent date order:
// the subject table's choice (B), then the merging of the others with it
// (C) ("Gather together messages under the root that have the same base
// subject text", rfc5256.txt:541-632): they all end in one thread, its
// root returned. Only copies of the items are modified.
func (s *threadState) merge(items []*fnode) []*fnode {
	if len(items) <= 1 {
		return slices.Clone(items)
	}
	// (iv) "If there is no message in the subject table", rfc5256.txt:570-584:
	// a dummy is preferred, then a non-reply.
	ti := 0
	for i, n := range items[1:] {
		t := items[ti]
		if t.msg >= 0 && (n.msg < 0 || s.reply(t) && !s.reply(n)) {
			ti = i + 1
		}
	}
	t := &fnode{msg: items[ti].msg, children: slices.Clone(items[ti].children)}
	table := t // the table's entry: t, or a dummy made of it
	for i, n := range items {
		if i == ti {
			continue
		}
		// "merge the current message with the one in the subject table",
		// rfc5256.txt:601-632.
		switch {
		case table.msg < 0 && n.msg < 0: // both dummies: n's children go to the table's
			table.children = append(table.children, n.children...)
		case table.msg < 0, s.reply(n) && !s.reply(table):
			table.children = append(table.children, n)
		default: // both messages, n no reply or the table's one a reply too
			table = &fnode{msg: -1, children: []*fnode{n, t}}
		}
	}
	// (6) Sort the siblings that changed, children first.
	slices.SortFunc(t.children, s.cmp)
	if table != t {
		slices.SortFunc(table.children, s.cmp)
	}
	return []*fnode{table}
}

// write appends the threads, each in parentheses, to "THREAD": thread-data
// = "THREAD" [SP 1*thread-list] (rfc5256.txt:781); nums are the numbers
// of the messages (sequence numbers or UIDs), by index.
func (s *threadState) write(b []byte, nums []uint32) []byte {
	if len(s.top) > 0 {
		b = append(b, ' ')
	}
	for _, n := range s.top {
		b = append(b, '(')
		b = n.write(b, nums)
		b = append(b, ')')
	}
	return b
}

// write appends the node's thread-members or thread-nested
// (rfc5256.txt:791-795), as threadNode.write.
func (n *fnode) write(b []byte, nums []uint32) []byte {
	if n.msg >= 0 {
		b = strconv.AppendUint(b, uint64(nums[n.msg]), 10)
		if len(n.children) > 0 {
			b = append(b, ' ')
		}
	}
	if len(n.children) == 1 {
		return n.children[0].write(b, nums)
	}
	for _, ch := range n.children {
		b = append(b, '(')
		b = ch.write(b, nums)
		b = append(b, ')')
	}
	return b
}

// size is what the state counts for the memory bound (maxThreadEntries):
// its messages and step 1's containers.
func (s *threadState) size() int { return len(s.keys) + s.containers }

// threadCache is the kept REFERENCES threadings of the server's sessions,
// by mailbox, UIDVALIDITY and program: webmail lists a folder again and
// again, from a session per page. An entry is found by its key, but used
// only for the same messages found (its UIDs), or updated when more were
// found after them: the program's text names no fixed set of messages
// (flags change), and sessions of one mailbox see it at different
// moments.
type threadCache struct {
	mu   sync.Mutex
	m    map[threadKey]*threadEntry
	size int // threadState.size of every entry in m
	max  int // 0: maxThreadEntries
	tick uint64
}

type threadKey struct {
	mailbox     int64
	uidValidity uint32
	program     string
}

type threadEntry struct {
	mu      sync.Mutex // held while the state is used or updated
	st      *threadState
	size    int    // counted in threadCache.size
	used    uint64 // threadCache.tick at the last use
	evicted bool   // no longer in the cache (threadCache.mu)
}

// maxThreadEntries bounds the kept threadings: messages plus containers
// of all entries (threadState.size; about 2 a message with References).
// An entry costs about 130 bytes, a message about 260, besides its keys,
// the store's shared entries (TestThreadStateBytes, 100,000 messages of
// the bench corpus' shape), so the bound is some 80 MB, 300,000 messages.
// The least recently used entries go first; a threading bigger than the
// bound is not kept.
const maxThreadEntries = 600_000

// errThreadGone: a message found has no keys (deleted meanwhile); the
// caller threads without the cache.
var errThreadGone = errors.New("imapd: a found message is gone")

// thread appends the threads of the messages found (uids, ascending) to
// b, numbered by nums (by index); keys reads the keys of uids[from:]. It
// reuses or updates the kept threading of k when it can, and keeps the
// one it made. top is the highest UID the session was ever told of
// (View.Top).
func (tc *threadCache) thread(k threadKey, uids []uint32, top uint32, keys func(from int) ([]*store.SortMsg, error), nums []uint32, b []byte) ([]byte, error) {
	e := tc.entry(k)
	e.mu.Lock()
	defer e.mu.Unlock()
	defer func() {
		// Counted even when empty (a failed search): the entry and its
		// key take room too, about an entry per 100 bytes of program.
		size := 1 + len(k.program)/100
		if e.st != nil {
			size += e.st.size()
		}
		tc.resize(e, size)
	}()
	st := e.st
	read := func(from int) ([]*store.SortMsg, error) {
		ks, err := keys(from)
		if err == nil && slices.Contains(ks, nil) {
			err = errThreadGone
		}
		return ks, err
	}
	switch {
	case st != nil && slices.Equal(st.uids, uids):
		// Unchanged: as kept.
	case st != nil && len(st.uids) < len(uids) && slices.Equal(st.uids, uids[:len(st.uids)]):
		// Found after the kept ones: added (threadState.add).
		ks, err := read(len(st.uids))
		if err != nil {
			return nil, err
		}
		st.add(ks, uids[len(st.uids):])
	default:
		ks, err := read(0)
		if err != nil {
			return nil, err
		}
		own := newThreadState()
		own.add(ks, uids)
		if st != nil && len(uids) < len(st.uids) && slices.Equal(uids, st.uids[:len(uids)]) && st.uids[len(uids)] > top {
			// This session has not been told of the newest of the kept
			// messages yet: the kept threading stays for the sessions
			// that have. (Told of them and without them, the session
			// saw them go, expunged or no longer found: its threading
			// is the newer. Kept, the stale one made every THREAD
			// thread from scratch until the next new message.)
			return own.write(b, nums), nil
		}
		st, e.st = own, own
	}
	return st.write(b, nums), nil
}

// entry returns the entry of k, made empty if there is none.
func (tc *threadCache) entry(k threadKey) *threadEntry {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	if tc.m == nil {
		tc.m = map[threadKey]*threadEntry{}
	}
	e := tc.m[k]
	if e == nil {
		e = &threadEntry{}
		tc.m[k] = e
	}
	tc.tick++
	e.used = tc.tick
	return e
}

// resize counts the entry's new size and evicts the least recently used
// entries while the cache is over its bound (the entry itself last).
func (tc *threadCache) resize(e *threadEntry, size int) {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	if e.evicted {
		return
	}
	tc.size += size - e.size
	e.size = size
	limit := tc.max
	if limit == 0 {
		limit = maxThreadEntries
	}
	for tc.size > limit {
		var lk threadKey
		var lo *threadEntry
		for k, o := range tc.m {
			if o != e && (lo == nil || o.used < lo.used) {
				lk, lo = k, o
			}
		}
		if lo == nil { // e alone is over the bound
			for k, o := range tc.m {
				if o == e {
					lk, lo = k, o
				}
			}
		}
		delete(tc.m, lk)
		lo.evicted = true
		tc.size -= lo.size
	}
}
