package imapd

import (
	"errors"
	"slices"
	"sort"

	"github.com/emersion/go-imap/v2"

	"decimail/server/store"
)

// View is one session's picture of its selected mailbox: the UIDs the client
// knows, in order (sequence number n is uids[n-1]), plus what changed in the
// store and was not yet announced. It is touched only by the session's own
// goroutine (and IDLE's, never both at once) and does no I/O: the session
// feeds it store.Changes (Apply) and asks for the responses to send (Flush).
//
// Rules it keeps (RFC 3501):
//   - EXPUNGE is announced only when allowed (not during FETCH, STORE,
//     SEARCH: rfc3501.txt:4053); until then the client's sequence numbers
//     stay valid and the expunged message keeps its number.
//   - Each EXPUNGE names a sequence number valid in the client's view at that
//     moment, and the view shrinks as it is sent (rfc3501.txt:4023-4028: the
//     numbers after it are "immediately decremented").
//   - EXISTS never decreases except through EXPUNGE, and comes before any
//     data about the new messages.
//   - A message that left the mailbox because of this session's own
//     command (a STORE taking it out of Unread) is held: it keeps its
//     number, its UID still names it, and its EXPUNGE waits for the next
//     sync point (NOOP, CHECK, IDLE, EXPUNGE; README "Own changes in a
//     view"), not just for the next command that may send EXPUNGE.
type View struct {
	uids      []uint32
	ids       []int64 // ids[i]: the message uids[i] names; nil = not kept
	recent    map[uint32]bool
	gone      map[uint32]goneMsg // in the client's view, gone from the mailbox
	own       map[uint32]bool    // changed by this session's command: an expunge the next Apply finds is held
	pendNew   []uint32           // in the store, not yet announced (ascending)
	newID     map[uint32]int64   // ids of pendNew messages
	pendFlags map[uint32]store.Flags
	pendMS    map[uint32]int64 // the mod-sequence of each pendFlags entry (CONDSTORE)
	told      map[uint32]int64 // flags this session already reported, by modseq
	modseq    int64
	sentRec   int    // last RECENT count announced
	top       uint32 // the highest UID the client was ever told of

	// The store's flags of every message in uids (as of the cursor), when
	// the snapshot carried them: FETCH (FLAGS) after a sync is answered from
	// here. One byte per message (packFlags) plus the keywords of the few
	// messages that have any.
	fbits []uint8 // fbits[i] belongs to uids[i]; nil = flags not kept
	kw    map[uint32][]string
	newFl map[uint32]store.Flags // flags of pendNew messages

	// touched: messages of the view whose flags changed (by any session)
	// since the last TakeTouched, kept only while Track is on: the
	// updating searches re-evaluate them (ctxupdate.go).
	touched map[uint32]bool

	// The messages in sorted order, per list of sort criteria used by
	// SORT (sortorder.go), told by Flush what it removes and appends.
	orders    map[string]*sortOrder
	orderTick uint64
}

const (
	fSeen uint8 = 1 << iota
	fAnswered
	fFlagged
	fDeleted
	fDraft
)

func packFlags(f store.Flags) uint8 {
	var b uint8
	if f.Seen {
		b |= fSeen
	}
	if f.Answered {
		b |= fAnswered
	}
	if f.Flagged {
		b |= fFlagged
	}
	if f.Deleted {
		b |= fDeleted
	}
	if f.Draft {
		b |= fDraft
	}
	return b
}

// goneMsg is a message of the client's view no longer in the mailbox,
// whose EXPUNGE is not sent yet. held: it left by this session's own
// command, and its EXPUNGE waits for a sync point (Release).
type goneMsg struct {
	id   int64 // the message (0: not known)
	held bool
	ms   int64 // the modseq of its tombstone (0: not known)
}

// KeepIDs makes the view keep the message id of each UID, starting from
// ids (aligned with the snapshot's UIDs): messages that leave the mailbox
// can then still be read and changed by id until their EXPUNGE is sent.
func (v *View) KeepIDs(ids []int64) {
	v.ids = append(make([]int64, 0, max(len(ids), 1)), ids...) // not nil, even for an empty mailbox
	v.newID = map[uint32]int64{}
}

func (v *View) messageID(uid uint32) int64 {
	if v.ids == nil {
		return 0
	}
	if i, ok := slices.BinarySearch(v.uids, uid); ok {
		return v.ids[i]
	}
	return 0
}

// ID is the message id of uid, in the mailbox or gone from it (its EXPUNGE
// not sent yet), or 0 when the view does not know it.
func (v *View) ID(uid uint32) int64 {
	if id := v.messageID(uid); id != 0 {
		return id
	}
	return v.gone[uid].id
}

// KeepFlags makes the view keep the store's flags of its messages, starting
// from fl (aligned with the snapshot's UIDs).
func (v *View) KeepFlags(fl []store.Flags) {
	v.fbits = make([]uint8, len(v.uids), max(len(v.uids), 1))
	v.kw = map[uint32][]string{}
	v.newFl = map[uint32]store.Flags{}
	for i := range v.uids {
		v.setFlags(i, fl[i])
	}
}

func (v *View) setFlags(i int, f store.Flags) {
	v.fbits[i] = packFlags(f)
	if len(f.Keywords) > 0 {
		v.kw[v.uids[i]] = f.Keywords
	} else {
		delete(v.kw, v.uids[i])
	}
}

// Flags returns the store's flags of uid as of the view's cursor; ok is
// false when the view does not keep flags or does not know uid.
func (v *View) Flags(uid uint32) (f store.Flags, ok bool) {
	if v.fbits == nil {
		return f, false
	}
	i, found := slices.BinarySearch(v.uids, uid)
	if !found {
		return f, false
	}
	return v.FlagsAt(i, true), true
}

// FlagsAt is Flags of the message at index i (sequence number i+1), for
// a walk of the whole view without a search per message; kw false leaves
// the keywords out (a program without keyword terms).
func (v *View) FlagsAt(i int, kw bool) store.Flags {
	b := v.fbits[i]
	f := store.Flags{Seen: b&fSeen != 0, Answered: b&fAnswered != 0, Flagged: b&fFlagged != 0,
		Deleted: b&fDeleted != 0, Draft: b&fDraft != 0}
	if kw && len(v.kw) > 0 {
		f.Keywords = v.kw[v.uids[i]]
	}
	return f
}

// IDAt is the message id at index i (KeepIDs).
func (v *View) IDAt(i int) int64 { return v.ids[i] }

// SetFlags records the store's new flags of uid (this session's own STORE,
// which the next poll leaves out: ChangesSinceExcept).
func (v *View) SetFlags(uid uint32, f store.Flags) {
	v.touch(uid)
	if v.fbits == nil {
		return
	}
	if i, ok := slices.BinarySearch(v.uids, uid); ok {
		v.setFlags(i, f)
	}
}

// KeepsFlags reports whether Flags can answer.
func (v *View) KeepsFlags() bool { return v.fbits != nil }

// KeepsIDs reports whether the view keeps its messages' ids (KeepIDs).
func (v *View) KeepsIDs() bool { return v.ids != nil }

// UpdateKind is the kind of an unilateral response.
type UpdateKind int

const (
	UpdExpunge UpdateKind = iota // * seq EXPUNGE
	UpdExists                    // * n EXISTS
	UpdRecent                    // * n RECENT
	UpdFlags                     // * seq FETCH (FLAGS (...))
)

// Update is one unilateral response to send.
type Update struct {
	Kind   UpdateKind
	N      uint32 // sequence number, or the count for EXISTS/RECENT
	UID    uint32
	Flags  store.Flags
	ModSeq int64 // UpdFlags: the message's mod-sequence with these flags
}

// NewView starts a view from a SELECT snapshot.
func NewView(uids, recent []uint32, modseq int64) *View {
	v := &View{uids: slices.Clone(uids), recent: map[uint32]bool{}, gone: map[uint32]goneMsg{}, own: map[uint32]bool{},
		pendFlags: map[uint32]store.Flags{}, pendMS: map[uint32]int64{}, told: map[uint32]int64{}, modseq: modseq}
	for _, u := range recent {
		v.recent[u] = true
	}
	v.sentRec = len(v.recent)
	if len(uids) > 0 {
		v.top = uids[len(uids)-1]
	}
	return v
}

// Top is the highest UID the client was ever told of (EXPUNGEs do not
// lower it): a UID up to it that the view lacks is gone for this session.
func (v *View) Top() uint32 { return v.top }

// ModSeq is the cursor for the next store.ChangesSince.
func (v *View) ModSeq() int64 { return v.modseq }

// Len is the number of messages the client knows (the last EXISTS minus
// EXPUNGEs sent since).
func (v *View) Len() int { return len(v.uids) }

// UIDs returns the client's view (not to be modified).
func (v *View) UIDs() []uint32 { return v.uids }

// Seq returns the sequence number of uid, or 0 if the client does not know it.
func (v *View) Seq(uid uint32) uint32 {
	i, ok := slices.BinarySearch(v.uids, uid)
	if !ok {
		return 0
	}
	return uint32(i + 1)
}

// UID returns the UID at sequence number seq (1-based), or 0.
func (v *View) UID(seq uint32) uint32 {
	if seq == 0 || int(seq) > len(v.uids) {
		return 0
	}
	return v.uids[seq-1]
}

// IsRecent reports whether uid is \Recent for this session.
func (v *View) IsRecent(uid uint32) bool { return v.recent[uid] }

// MarkRecent makes uid \Recent for this session: a message it appended
// and claimed (store.DeliverOptions.ClaimRecent), before or after the
// view learns of it.
func (v *View) MarkRecent(uid uint32) { v.recent[uid] = true }

// Recent lists this session's \Recent UIDs in the view.
func (v *View) Recent() []uint32 {
	var out []uint32
	for _, u := range v.uids {
		if v.recent[u] {
			out = append(out, u)
		}
	}
	return out
}

// Expunged reports whether uid is in the view but already gone from the
// mailbox (held or not).
func (v *View) Expunged(uid uint32) bool { _, ok := v.gone[uid]; return ok }

// FirstGone is the lowest tombstone modseq of the messages gone from the
// mailbox whose EXPUNGE (VANISHED) is not sent yet, or 0.
func (v *View) FirstGone() int64 {
	first := int64(0)
	for _, g := range v.gone {
		if g.ms > 0 && (first == 0 || g.ms < first) {
			first = g.ms
		}
	}
	return first
}

// IsHeld reports whether uid left the mailbox by this session's own command
// and is held until a sync point.
func (v *View) IsHeld(uid uint32) bool { return v.gone[uid].held }

// Gone returns the messages among uids (ascending) that are in the client's
// view but gone from the mailbox with a known id; with heldOnly, those held
// by the session's own command only.
func (v *View) Gone(uids []uint32, heldOnly bool) store.Held {
	var h store.Held
	if len(v.gone) == 0 {
		return h
	}
	for _, u := range uids {
		if g, ok := v.gone[u]; ok && g.id != 0 && (g.held || !heldOnly) {
			h.UIDs, h.IDs = append(h.UIDs, u), append(h.IDs, g.id)
		}
	}
	return h
}

// Held returns every held message: the poll keeps their flags current
// (store.ChangesSinceHeld), as the mailbox's rows no longer show them.
func (v *View) Held() store.Held {
	if len(v.gone) == 0 {
		return store.Held{}
	}
	return v.Gone(sortedKeysOf(v.gone), true)
}

func sortedKeysOf[T any](m map[uint32]T) []uint32 {
	us := make([]uint32, 0, len(m))
	for u := range m {
		us = append(us, u)
	}
	slices.Sort(us)
	return us
}

// Own records that this session's command changed uids: if the next Apply
// finds one of them gone from the mailbox (a view it stopped matching), it
// is held rather than announced.
func (v *View) Own(uids ...uint32) {
	for _, u := range uids {
		v.own[u] = true
	}
}

// Release ends the hold of uids (all held messages when uids is nil): their
// EXPUNGE goes out with the next Flush that allows EXPUNGE. A sync point
// releases all; MOVE releases what it moved (it has the effect of COPY +
// STORE \Deleted + UID EXPUNGE, rfc6851.txt:149-156).
func (v *View) Release(uids []uint32) {
	for u, g := range v.gone {
		if g.held && (uids == nil || slices.Contains(uids, u)) {
			g.held = false
			v.gone[u] = g
		}
	}
}

// Told records that this session reported uid's flags at modseq (a STORE's
// own FETCH response), so the same change is not announced again.
func (v *View) Told(uid uint32, modseq int64) {
	if modseq > v.told[uid] {
		v.told[uid] = modseq
	}
	delete(v.pendFlags, uid)
}

// Apply merges store changes after the view's cursor into the pending state.
func (v *View) Apply(ch *store.Changes) {
	isNew := func(u uint32) bool { _, ok := slices.BinarySearch(v.pendNew, u); return ok }
	for i, u := range ch.Expunged {
		switch {
		case v.Seq(u) != 0:
			if _, ok := v.gone[u]; !ok {
				g := goneMsg{id: v.messageID(u), held: v.own[u]}
				if i < len(ch.ExpungedAt) {
					g.ms = ch.ExpungedAt[i]
				}
				v.gone[u] = g
			}
			if !v.gone[u].held {
				delete(v.pendFlags, u)
			}
		case isNew(u):
			i, _ := slices.BinarySearch(v.pendNew, u)
			v.pendNew = slices.Delete(v.pendNew, i, i+1)
			delete(v.newFl, u)
			delete(v.newID, u)
		}
	}
	clear(v.own)
	for _, c := range ch.Changed {
		if c.Recent {
			v.recent[c.UID] = true
		}
		switch seq := v.Seq(c.UID); {
		case seq != 0:
			if g, ok := v.gone[c.UID]; ok && !g.held {
				continue
			}
			v.touch(c.UID)
			if v.fbits != nil { // the store's flags, announced or not
				v.setFlags(int(seq-1), c.Flags)
			}
			if c.ModSeq <= v.told[c.UID] {
				continue
			}
			v.pendFlags[c.UID] = c.Flags
			v.pendMS[c.UID] = c.ModSeq
		default:
			if !isNew(c.UID) {
				i, _ := slices.BinarySearch(v.pendNew, c.UID)
				v.pendNew = slices.Insert(v.pendNew, i, c.UID)
			}
			if v.fbits != nil {
				v.newFl[c.UID] = c.Flags
			}
			if v.ids != nil {
				v.newID[c.UID] = c.MessageID
			}
		}
	}
	if ch.ModSeq > v.modseq {
		v.modseq = ch.ModSeq
	}
}

// Flush returns the updates to send now, in order, and applies them to the
// view: EXPUNGEs (if allowed), then EXISTS and RECENT for new messages, then
// FETCH FLAGS for changed ones.
func (v *View) Flush(allowExpunge bool) []Update {
	var out []Update
	if allowExpunge && len(v.gone) > 0 {
		var removed []int32 // positions before this Flush (sortorder.go)
		for _, u := range sortedKeysOf(v.gone) {
			if v.gone[u].held {
				continue // until a sync point (Release)
			}
			seq := v.Seq(u)
			if v.orders != nil {
				// Ascending, each removal moves the later ones down by one.
				removed = append(removed, int32(int(seq-1)+len(removed)))
			}
			out = append(out, Update{Kind: UpdExpunge, N: seq, UID: u})
			v.uids = slices.Delete(v.uids, int(seq-1), int(seq))
			if v.ids != nil {
				v.ids = slices.Delete(v.ids, int(seq-1), int(seq))
			}
			if v.fbits != nil {
				v.fbits = slices.Delete(v.fbits, int(seq-1), int(seq))
				delete(v.kw, u)
			}
			delete(v.recent, u)
			delete(v.told, u)
			delete(v.pendFlags, u)
			delete(v.gone, u)
		}
		if len(removed) > 0 {
			v.ordersRemoved(removed)
		}
	}
	if len(v.pendNew) > 0 {
		// New UIDs are above every UID the mailbox ever had (never reused).
		n := len(v.uids)
		v.uids = append(v.uids, v.pendNew...)
		v.top = max(v.top, v.pendNew[len(v.pendNew)-1])
		if v.ids != nil {
			for _, u := range v.pendNew {
				v.ids = append(v.ids, v.newID[u])
			}
			clear(v.newID)
		}
		if v.fbits != nil {
			v.fbits = append(v.fbits, make([]uint8, len(v.pendNew))...)
			for i, u := range v.pendNew {
				v.setFlags(n+i, v.newFl[u])
			}
			clear(v.newFl)
		}
		v.pendNew = v.pendNew[:0]
		v.ordersAdded(n, len(v.uids))
		out = append(out, Update{Kind: UpdExists, N: uint32(len(v.uids))})
		if n := len(v.Recent()); n != v.sentRec {
			out = append(out, Update{Kind: UpdRecent, N: uint32(n)})
		}
	}
	if len(out) > 0 {
		// Only an EXPUNGE or new messages change the count: counting on
		// every command was a walk of the whole view (18% of our CPU on
		// one-message FETCHes of a 10k mailbox, issue 15).
		v.sentRec = len(v.Recent())
	}
	if len(v.pendFlags) > 0 {
		var us []uint32
		for u := range v.pendFlags {
			us = append(us, u)
		}
		sort.Slice(us, func(i, j int) bool { return us[i] < us[j] })
		for _, u := range us {
			if seq := v.Seq(u); seq != 0 {
				out = append(out, Update{Kind: UpdFlags, N: seq, UID: u, Flags: v.pendFlags[u], ModSeq: v.pendMS[u]})
			}
		}
		clear(v.pendFlags)
		clear(v.pendMS)
	}
	return out
}

// FlushMessages is Flush leaving the flag changes pending (NOTIFY without
// FlagChange: they go out with a later command's updates).
func (v *View) FlushMessages(allowExpunge bool) []Update {
	pf, pm := v.pendFlags, v.pendMS
	v.pendFlags, v.pendMS = map[uint32]store.Flags{}, map[uint32]int64{}
	out := v.Flush(allowExpunge)
	for u := range pf {
		if _, gone := v.gone[u]; !gone && v.Seq(u) == 0 {
			delete(pf, u) // expunged just now
			delete(pm, u)
		}
	}
	v.pendFlags, v.pendMS = pf, pm
	return out
}

// Track turns the record of touched messages on or off (off clears it).
func (v *View) Track(on bool) {
	switch {
	case !on:
		v.touched = nil
	case v.touched == nil:
		v.touched = map[uint32]bool{}
	}
}

func (v *View) touch(uid uint32) {
	if v.touched != nil {
		v.touched[uid] = true
	}
}

// TakeTouched returns the messages whose flags changed since the last
// call (ascending UIDs; only while Track is on) and forgets them.
func (v *View) TakeTouched() []uint32 {
	if len(v.touched) == 0 {
		return nil
	}
	us := sortedKeysOf(v.touched)
	clear(v.touched)
	return us
}

// Expunging lists the messages the next Flush that allows EXPUNGE
// announces as expunged (gone from the mailbox and not held), ascending.
func (v *View) Expunging() []uint32 {
	var us []uint32
	for u, g := range v.gone {
		if !g.held {
			us = append(us, u)
		}
	}
	slices.Sort(us)
	return us
}

// errBadSet is a sequence set naming messages the client cannot know of.
var errBadSet = errors.New("invalid message sequence number")

// Resolve turns a sequence set or UID set (as sent by the client) into the
// UIDs of the view it names, ascending. "*" is the last message of the view
// ("represents the largest number in use", rfc3501.txt:5002; for UIDs: the
// largest UID in the view, and n:* includes it even if n is larger, "559:*
// always includes the UID of the last message", rfc3501.txt:3379-3386). A UID
// set may name UIDs that do not exist (they are ignored); a sequence number
// beyond the view is an error.
func (v *View) Resolve(set imap.NumSet) ([]uint32, error) {
	switch s := set.(type) {
	case imap.SeqSet:
		n := uint32(len(v.uids))
		var out []uint32
		for _, r := range s {
			lo, hi := r.Start, r.Stop
			if lo == 0 {
				lo = n
			}
			if hi == 0 {
				hi = n
			}
			if lo > hi {
				lo, hi = hi, lo
			}
			if lo == 0 || hi > n {
				return nil, errBadSet
			}
			for i := lo; i <= hi; i++ {
				out = append(out, v.uids[i-1])
			}
		}
		return dedupSorted(out), nil
	case imap.UIDSet:
		if len(v.uids) == 0 {
			return nil, nil
		}
		max := v.uids[len(v.uids)-1]
		var out []uint32
		for _, r := range s {
			lo, hi := uint32(r.Start), uint32(r.Stop)
			if lo == 0 {
				lo = max
			}
			if hi == 0 {
				hi = max
			}
			if lo > hi {
				lo, hi = hi, lo
			}
			i, _ := slices.BinarySearch(v.uids, lo)
			for ; i < len(v.uids) && v.uids[i] <= hi; i++ {
				out = append(out, v.uids[i])
			}
		}
		return dedupSorted(out), nil
	}
	return nil, errBadSet
}

func dedupSorted(u []uint32) []uint32 {
	slices.Sort(u)
	return slices.Compact(u)
}
