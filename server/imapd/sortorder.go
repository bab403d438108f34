package imapd

// The view's messages in sorted order, kept between SORT commands (issue
// 17): Dovecot keeps its sort order in its index, and answering SORT
// (SUBJECT) UNSEEN on a large mailbox by matching every message and then
// sorting the matches, each command, was 1.1-1.5× Dovecot's time at 10k
// messages and grew with the mailbox. A session keeps, per list of sort
// criteria it used (at most maxSortOrders), the permutation of its view
// in that order; a SORT whose program the view can answer (fromView:
// flags, sets, dates and sizes) is one walk of it that tests each message
// (viewMatcher), and ESORT PARTIAL lo:hi stops at the hi-th match.
//
// The order is exact at every SORT, because the view's messages change
// only in View.Flush, which tells every kept order:
//   - EXPUNGEs: the entries of the expunged positions go, the others'
//     positions move down (sortOrder.remove); relative order is unchanged;
//   - new messages: their positions are appended to the order's pending
//     list (they need keys, which the view, doing no I/O, cannot read);
//     the next SORT with this order reads their keys (store.SortKeysByID,
//     cached in the process) and inserts each by binary search, or sorts
//     all again when many came (sortOrder.insert).
//
// Flag changes need nothing: the order holds positions, and the walk reads
// the flags the view keeps as of the SORT's own poll. The last tiebreak,
// the "implicit sort criterion" of the sequence number
// (rfc5256.txt:231-234), is the position, and positions keep their
// relative order through EXPUNGEs and appends, so the order of two kept
// entries never has to be revisited.

import (
	"cmp"
	"slices"
	"strings"
	"sync"

	"decimail/server/store"
)

// maxSortOrders bounds the orders a view keeps (16 bytes a message each);
// the least recently used goes first.
const maxSortOrders = 4

// sortOrder is the view's messages in the order of keys, then sequence
// number.
type sortOrder struct {
	keys    []sortKey
	ents    []orderEnt // sorted (cmp)
	pending []int32    // positions new to the view, not in ents yet, ascending
	used    uint64     // View.orderTick at the last use
	made    bool       // brought up to date once (Conn.sortedOrder)
}

// orderEnt is one message of the order: its position in the view (its
// sequence number minus one) and its keys (the store's shared entry,
// never modified).
type orderEnt struct {
	pos int32
	k   *store.SortMsg
}

func (o *sortOrder) cmp(a, b orderEnt) int {
	if r := cmpKeys(a.k, b.k, o.keys); r != 0 {
		return r
	}
	return cmp.Compare(a.pos, b.pos)
}

// ordersKey names a list of sort criteria ("REVERSE DATE SUBJECT").
func ordersKey(keys []sortKey) string {
	var b strings.Builder
	for _, k := range keys {
		if k.reverse {
			b.WriteString("REVERSE ")
		}
		b.WriteString(k.key)
		b.WriteByte(' ')
	}
	return b.String()
}

// order returns the view's order for keys, made (every message pending)
// if the view had none; the least recently used goes when there are more
// than maxSortOrders. The caller brings it up to date (Conn.sortedOrder).
func (v *View) order(keys []sortKey) *sortOrder {
	k := ordersKey(keys)
	v.orderTick++
	if o, ok := v.orders[k]; ok {
		o.used = v.orderTick
		return o
	}
	if v.orders == nil {
		v.orders = map[string]*sortOrder{}
	}
	if len(v.orders) >= maxSortOrders {
		var old string
		for name, o := range v.orders {
			if old == "" || o.used < v.orders[old].used {
				old = name
			}
		}
		delete(v.orders, old)
	}
	o := &sortOrder{keys: slices.Clone(keys), pending: make([]int32, len(v.uids)), used: v.orderTick}
	for i := range o.pending {
		o.pending[i] = int32(i)
	}
	v.orders[k] = o
	return o
}

// remove drops the entries of the positions removed (ascending, as they
// were before the removal) and moves the others down.
func (o *sortOrder) remove(removed []int32) {
	moved := func(p int32) (int32, bool) {
		i, gone := slices.BinarySearch(removed, p)
		return p - int32(i), !gone
	}
	ents := o.ents[:0]
	for _, e := range o.ents {
		if p, ok := moved(e.pos); ok {
			e.pos = p
			ents = append(ents, e)
		}
	}
	clear(o.ents[len(ents):]) // let the keys go
	o.ents = ents
	pend := o.pending[:0]
	for _, p := range o.pending {
		if p, ok := moved(p); ok {
			pend = append(pend, p)
		}
	}
	o.pending = pend
}

// insert adds entries (ascending positions, each new to the order): each
// by binary search, or all at once and a sort of the whole when they are
// many (a first SORT, or many new messages).
func (o *sortOrder) insert(add []orderEnt) {
	if len(add) > 64 && len(add) > len(o.ents)/64 {
		o.ents = append(o.ents, add...)
		slices.SortFunc(o.ents, o.cmp)
		return
	}
	for _, e := range add {
		i, _ := slices.BinarySearchFunc(o.ents, e, o.cmp)
		o.ents = slices.Insert(o.ents, i, e)
	}
}

// ordersRemoved tells the kept orders that Flush took the positions
// removed (ascending, before the removal) out of the view.
func (v *View) ordersRemoved(removed []int32) {
	for _, o := range v.orders {
		o.remove(removed)
	}
}

// ordersAdded tells the kept orders that Flush appended positions
// from..to-1 to the view.
func (v *View) ordersAdded(from, to int) {
	for _, o := range v.orders {
		for p := from; p < to; p++ {
			o.pending = append(o.pending, int32(p))
		}
	}
}

// adopt starts a new order from a shared one (sharedOrders): its entries
// whose UIDs are in the view (uids), at their positions, in its order;
// the view's other messages pending. It reports whether that left any
// message pending.
func (o *sortOrder) adopt(sh *sharedOrder, uids []uint32) bool {
	covered := make([]bool, len(uids))
	o.ents = make([]orderEnt, 0, len(uids))
	for j, u := range sh.uids {
		if i, ok := slices.BinarySearch(uids, u); ok {
			o.ents = append(o.ents, orderEnt{pos: int32(i), k: sh.keys[j]})
			covered[i] = true
		}
	}
	o.pending = o.pending[:0]
	for i, cv := range covered {
		if !cv {
			o.pending = append(o.pending, int32(i))
		}
	}
	return len(o.pending) > 0
}

// share is the order as a shared one, its messages named by UID.
func (o *sortOrder) share(uids []uint32) *sharedOrder {
	sh := &sharedOrder{uids: make([]uint32, len(o.ents)), keys: make([]*store.SortMsg, len(o.ents))}
	for j, e := range o.ents {
		sh.uids[j], sh.keys[j] = uids[e.pos], e.k
	}
	return sh
}

// sharedOrders are the orders the sessions of this server made, by
// mailbox and criteria, for the next session that sorts the same mailbox:
// webmail opens a session per page (Roundcube), and each would sort the
// whole mailbox once more. A shared order names its messages by UID,
// which in one mailbox at one UIDVALIDITY names one message for ever
// (UIDs are never reused), and is sorted by keys, then UID. Sequence order
// is UID order in every session's view, so the entries of a shared order
// that are in a session's view are in that view's order, and the session
// adds its messages the shared order lacks by binary search
// (sortOrder.adopt, then insert): exact by construction, whatever the
// shared order's age. A published order is never modified.
type sharedOrders struct {
	mu   sync.Mutex
	m    map[sharedKey]*sharedOrder
	size int // entries of all orders in m
	tick uint64
}

type sharedKey struct {
	mailbox     int64
	uidValidity uint32
	criteria    string // ordersKey
}

type sharedOrder struct {
	uids []uint32
	keys []*store.SortMsg
	used uint64
}

// maxSharedEntries bounds the shared orders (12 bytes an entry, plus the
// keys they keep from being collected); the least recently used go first.
const maxSharedEntries = 2_000_000

func (s *sharedOrders) get(k sharedKey) *sharedOrder {
	s.mu.Lock()
	defer s.mu.Unlock()
	sh := s.m[k]
	if sh != nil {
		s.tick++
		sh.used = s.tick
	}
	return sh
}

func (s *sharedOrders) put(k sharedKey, sh *sharedOrder) {
	if len(sh.uids) > maxSharedEntries {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[sharedKey]*sharedOrder{}
	}
	if old, ok := s.m[k]; ok {
		s.size -= len(old.uids)
	}
	s.tick++
	sh.used = s.tick
	s.m[k] = sh
	s.size += len(sh.uids)
	for s.size > maxSharedEntries {
		var lru sharedKey
		var lo *sharedOrder
		for k, o := range s.m {
			if lo == nil || o.used < lo.used {
				lru, lo = k, o
			}
		}
		delete(s.m, lru)
		s.size -= len(lo.uids)
	}
}
