package imapd

// Live result updates, CONTEXT=SEARCH and CONTEXT=SORT's UPDATE (RFC 5267
// §4.3): a SEARCH, UID SEARCH, SORT or UID SORT with RETURN (UPDATE) keeps
// its program and its result in the selection (selection.updates), and as
// the selected mailbox changes (new messages, flag changes, expunges, by
// this session or any other, in this process or another, as they reach
// the view through syncSelected and applyChanges) the session sends
// unsolicited "* ESEARCH (TAG "t") [UID] REMOVEFROM (...) ADDTO (...)"
// with the changes of the result, "as and when results change"
// (rfc5267.txt:311-314), with the EXISTS, FETCH or EXPUNGE of the change
// (rfc5267.txt:316-317, 421-423): flushUpdates (select.go).
//
//   - Numbers: UIDs after UID SEARCH/SORT, else sequence numbers
//     (rfc5267.txt:401-405). The result is kept as UIDs; an ADDTO of new
//     messages follows their EXISTS (rfc5267.txt:434-437), a REMOVEFROM of
//     expunged ones comes "prior to the expunge notification itself"
//     (rfc5267.txt:511-514).
//   - Positions: a SEARCH's result is in mailbox order and its updates use
//     context position 0 with the numbers ascending (rfc5267.txt:427-432,
//     457-460, 493-497). A SORT's are the positions in sort order: REMOVEFROM
//     "the first result in the set will occupy the given context position
//     before removal" (rfc5267.txt:491-495), ADDTO "the first result in the
//     set will occupy the new context position after insertion"
//     (rfc5267.txt:439-443). The client processes them "in the order
//     they appear" (rfc5267.txt:407-410): a response that removes and adds sends
//     REMOVEFROM first, the positions of each pair counted after the pairs
//     before it. A message's sort keys never change (they are the
//     message's headers, size and dates; flags are no sort key), so a
//     message changes its membership, never its position among the others.
//   - The program: sequence numbers in it are "evaluated at the time the
//     command is received" (rfc5267.txt:343-346), and so are "*" in UID
//     sets and "$" (SEARCHRES): freeze turns them into UID sets. The
//     updates do not change "$", which SAVE set once.
//   - Evaluation: the messages whose flags changed (View.Track,
//     TakeTouched) and the new ones are matched again: a program of flags
//     only (flagsOnly) with query.Eval over the view's flags, as
//     searchView; any other with one store query per context, the program
//     AND the UIDs of those messages (store.SearchHeld, store.SortKeys),
//     the messages another session took out of the mailbox found by id
//     until their EXPUNGE is sent. A SORT context reads the sort keys of
//     the messages it adds.
//   - PARTIAL, MIN, MAX, COUNT: no interaction, the updates are about the
//     whole result: "the UPDATE will provide notifications for all
//     matching results" (rfc5267.txt:328-334, 574-578).
//   - End: CANCELUPDATE (rfc5267.txt:528-540), or the end of the selection
//     (SELECT, EXAMINE, CLOSE, UNSELECT, LOGOUT: the selection and its
//     contexts are dropped; rfc5267.txt:319-321).
//   - Limits: at most maxUpdateContexts at once, and a new one only while
//     all of them together keep at most maxUpdateResults messages;
//     beyond, "* NO [NOUPDATE "tag"]" and the other options are still
//     answered (rfc5267.txt:361-368). A context's result grows with the
//     mailbox afterwards (it is a subset of the client's view). A tag in
//     use by an updating search is BAD for another one ("rejecting the
//     searching command with a BAD response", rfc5267.txt:304-309).

import (
	"slices"
	"strconv"
	"strings"

	"github.com/emersion/go-imap/v2"

	"decimail/server/query"
	"decimail/server/store"
)

func init() {
	register("CANCELUPDATE", cmdSpec{states: selected, ext: "CANCELUPDATE", fn: cmdCancelUpdate})
}

const (
	// maxUpdateContexts is how many searches with UPDATE a session keeps
	// at once. "Servers MUST provide at least one updating context per
	// client, and SHOULD provide more" (rfc5267.txt:370-375); each costs
	// at most one store query per batch of changes.
	maxUpdateContexts = 8
	// maxUpdateResults bounds the messages the contexts of a session keep
	// together (UIDs; a SORT context also the sort keys): a new context
	// whose result would go beyond is refused with NOUPDATE.
	maxUpdateResults = 50000
)

// updateContext is one search with RETURN (UPDATE).
type updateContext struct {
	tag       string
	uid       bool            // UID SEARCH/SORT: updates in UIDs
	node      query.Node      // the program, frozen (freeze)
	flagsOnly bool            // evaluated on the view's flags when it keeps them
	keys      []sortKey       // SORT's criteria; nil: a SEARCH
	uids      []uint32        // SEARCH: the result, ascending UIDs
	items     []*sortItem     // SORT: the result in sort order; seq holds the UID (same order)
	inSort    map[uint32]bool // SORT: the UIDs of items
}

func (u *updateContext) size() int { return len(u.uids) + len(u.items) }

// updateTag checks that tag may start an updating search: "An attempt to
// use UPDATE where a tag is already in use with a previous searching
// command that itself used UPDATE SHALL result in the server rejecting the
// searching command with a BAD response" (rfc5267.txt:304-309).
func (c *Conn) updateTag(tag string) error {
	for _, u := range c.sel.updates {
		if u.tag == tag {
			return Bad("", "tag "+tag+" is in use by a search with UPDATE")
		}
	}
	return nil
}

// addUpdate keeps an updating search whose result is uids (SEARCH,
// ascending) or items (SORT, in sort order, keys its criteria). It returns
// why it refuses ("" when it keeps it): the text of the NOUPDATE response.
func (c *Conn) addUpdate(tag string, uid bool, node query.Node, keys []sortKey, uids []uint32, items []*sortItem) string {
	s := c.sel
	if len(s.updates) >= maxUpdateContexts {
		return "too many searches with UPDATE (at most " + strconv.Itoa(maxUpdateContexts) + ")"
	}
	n := len(uids) + len(items)
	for _, u := range s.updates {
		n += u.size()
	}
	if n > maxUpdateResults {
		return "the results to update would exceed " + strconv.Itoa(maxUpdateResults) + " messages"
	}
	frozen, err := freeze(node, s.view)
	if err == nil {
		// The updates search for the program AND a UID set: that must stay
		// within the store's limits too (query.Limits).
		_, err = c.Store().PrepareSearch(query.And{frozen, query.UID{Set: imap.UIDSet{{Start: 1, Stop: 1}}}})
	}
	if err != nil {
		return "the program is too large to follow"
	}
	u := &updateContext{tag: tag, uid: uid, node: frozen, flagsOnly: flagsOnly(frozen), keys: keys, uids: slices.Clone(uids)}
	if keys != nil {
		u.items = make([]*sortItem, len(items))
		for i, m := range items {
			it := *m
			it.seq = it.UID
			u.items[i] = &it
		}
		u.inSort = map[uint32]bool{}
		for _, m := range items {
			u.inSort[m.UID] = true
		}
	}
	s.updates = append(s.updates, u)
	s.view.Track(true)
	return ""
}

// freeze returns n with its sequence sets, "*" in UID sets resolved against
// the view as it is now ("any message sequence numbers used in the search
// program are evaluated at the time the command is received",
// rfc5267.txt:343-346).
func freeze(n query.Node, v *View) (query.Node, error) {
	switch n := n.(type) {
	case query.Seq:
		uids, err := v.Resolve(n.Set)
		if err != nil {
			return nil, err
		}
		return query.UID{Set: uidSetOf(uids)}, nil
	case query.UID:
		var maxUID uint32
		if k := v.Len(); k > 0 {
			maxUID = v.UID(uint32(k))
		}
		var set imap.UIDSet
		for _, r := range n.Set {
			lo, hi := uint32(r.Start), uint32(r.Stop)
			if lo == 0 {
				lo = maxUID
			}
			if hi == 0 {
				hi = maxUID
			}
			lo, hi = min(lo, hi), max(lo, hi)
			if hi == 0 { // "*" alone in an empty mailbox: no UID
				continue
			}
			set = append(set, imap.UIDRange{Start: imap.UID(max(lo, 1)), Stop: imap.UID(hi)})
		}
		if len(set) == 0 {
			return query.Not{X: query.All{}}, nil
		}
		return query.UID{Set: set}, nil
	case query.Not:
		x, err := freeze(n.X, v)
		return query.Not{X: x}, err
	case query.Or:
		a, err := freeze(n.A, v)
		if err != nil {
			return nil, err
		}
		b, err := freeze(n.B, v)
		return query.Or{A: a, B: b}, err
	case query.And:
		out := make(query.And, len(n))
		for i, x := range n {
			var err error
			if out[i], err = freeze(x, v); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	return n, nil
}

// removeExpunged takes the messages about to be expunged (uids, ascending)
// out of the updating searches' results and returns their REMOVEFROM
// responses, numbered as before the EXPUNGEs: "a REMOVEFROM containing
// message sequence numbers removed as a result of those messages being
// expunged MUST be sent prior to the expunge notification itself"
// (rfc5267.txt:511-514).
func (c *Conn) removeExpunged(uids []uint32) []string {
	if len(uids) == 0 || len(c.sel.updates) == 0 {
		return nil
	}
	var out []string
	v := c.sel.view
	gone := map[uint32]bool{}
	for _, u := range uids {
		gone[u] = true
	}
	for _, u := range c.sel.updates {
		if r := u.remove(gone, v); r != "" {
			out = append(out, u.head()+r)
		}
	}
	return out
}

// head is the start of the context's ESEARCH responses.
func (u *updateContext) head() string {
	h := `ESEARCH (TAG "` + u.tag + `")`
	if u.uid {
		h += " UID"
	}
	return h
}

// num is a message's number in the context's updates.
func (u *updateContext) num(uid uint32, v *View) uint32 {
	if u.uid {
		return uid
	}
	return v.Seq(uid)
}

// remove takes the messages of drop out of the result and returns the
// REMOVEFROM data item ("" when none was in it), numbered by the view as
// it is now.
func (u *updateContext) remove(drop map[uint32]bool, v *View) string {
	var pairs []string
	if u.keys == nil {
		var nums []uint32
		u.uids = slices.DeleteFunc(u.uids, func(x uint32) bool {
			if drop[x] {
				nums = append(nums, u.num(x, v))
				return true
			}
			return false
		})
		if len(nums) == 0 {
			return ""
		}
		slices.Sort(nums) // sequence numbers and UIDs ascend together; kept in mailbox order
		// Context position 0: "the client removes the message numbers or
		// UIDs in the result list wherever they occur" (rfc5267.txt:497-500).
		pairs = append(pairs, "0 "+numSet(nums))
	} else {
		// Runs of consecutive positions, each removed at its position
		// counted after the runs before it were removed.
		removed := 0
		for i := 0; i < len(u.items); {
			if !drop[u.items[i].UID] {
				i++
				continue
			}
			j := i
			var nums []uint32
			for ; j < len(u.items) && drop[u.items[j].UID]; j++ {
				nums = append(nums, u.num(u.items[j].UID, v))
			}
			pairs = append(pairs, strconv.Itoa(i+1-removed)+" "+numSet(nums))
			removed += j - i
			i = j
		}
		if len(pairs) == 0 {
			return ""
		}
		u.items = slices.DeleteFunc(u.items, func(m *sortItem) bool { return drop[m.UID] })
		for x := range drop {
			delete(u.inSort, x)
		}
	}
	return " REMOVEFROM (" + strings.Join(pairs, " ") + ")"
}

// add puts items (not in the result) into it and returns the ADDTO data
// item ("" when items is empty).
func (u *updateContext) add(items []*sortItem, v *View) string {
	if len(items) == 0 {
		return ""
	}
	if u.keys == nil {
		var nums []uint32
		for _, m := range items {
			u.uids = append(u.uids, m.UID)
			nums = append(nums, u.num(m.UID, v))
		}
		slices.Sort(u.uids)
		slices.Sort(nums)
		// Context position 0, the numbers in mailbox order "to produce the
		// shortest representation in set-syntax" (rfc5267.txt:455-459).
		return " ADDTO (0 " + numSet(nums) + ")"
	}
	cmp := sortCmp(u.keys)
	added := map[uint32]bool{}
	for _, m := range items {
		it := *m
		it.seq = it.UID
		if len(items) > 8 {
			u.items = append(u.items, &it) // sorted below: a batch (STORE 1:*) costs one sort, not an insert each
		} else {
			i, _ := slices.BinarySearchFunc(u.items, &it, cmp)
			u.items = slices.Insert(u.items, i, &it)
		}
		added[it.UID] = true
		u.inSort[it.UID] = true
	}
	if len(items) > 8 {
		slices.SortFunc(u.items, cmp)
	}
	// Runs of consecutive positions in the new result, in ascending
	// order: when a run is inserted, the results before its position are
	// all there (old, or added by an earlier run) and none after it is
	// added yet, so its position is its final one.
	var pairs []string
	for i := 0; i < len(u.items); {
		if !added[u.items[i].UID] {
			i++
			continue
		}
		j := i
		var nums []uint32
		for ; j < len(u.items) && added[u.items[j].UID]; j++ {
			nums = append(nums, u.num(u.items[j].UID, v))
		}
		pairs = append(pairs, strconv.Itoa(i+1)+" "+numSet(nums))
		i = j
	}
	return " ADDTO (" + strings.Join(pairs, " ") + ")"
}

// updateResults matches the messages that changed since the last call
// (flags, by any session) and those the last Flush announced (UIDs above
// last) against each updating search and returns the ESEARCH responses of
// the results that changed, numbered by the view after the Flush.
func (c *Conn) updateResults(last uint32) ([]string, error) {
	s := c.sel
	v := s.view
	touched := v.TakeTouched()
	if len(s.updates) == 0 {
		return nil, nil
	}
	var cands []uint32
	for _, u := range touched {
		if v.Seq(u) != 0 && u <= last {
			cands = append(cands, u)
		}
	}
	uids := v.UIDs()
	i, _ := slices.BinarySearch(uids, last+1)
	cands = append(cands, uids[i:]...)
	if len(cands) == 0 {
		return nil, nil
	}
	var out []string
	for _, u := range s.updates {
		match, err := c.matchUpdate(u, cands)
		if err != nil {
			// Matched again at the next poll (the new messages too: they
			// are below the next poll's last).
			for _, x := range cands {
				v.touch(x)
			}
			return out, err
		}
		drop := map[uint32]bool{}
		var in []*sortItem
		for _, x := range cands {
			m, ok := match[x]
			switch had := u.has(x); {
			case had && !ok:
				drop[x] = true
			case !had && ok:
				in = append(in, m)
			}
		}
		// REMOVEFROM before ADDTO: the client processes them "in the
		// order they appear" (rfc5267.txt:407-410).
		r := u.remove(drop, v) + u.add(in, v)
		if r != "" {
			out = append(out, u.head()+r)
		}
	}
	return out, nil
}

// has reports whether uid is in the result.
func (u *updateContext) has(uid uint32) bool {
	if u.keys == nil {
		_, ok := slices.BinarySearch(u.uids, uid)
		return ok
	}
	return u.inSort[uid]
}

// matchUpdate returns the messages among cands (ascending UIDs in the
// view) that match u's program now; for a SORT, with their sort keys.
func (c *Conn) matchUpdate(u *updateContext, cands []uint32) (map[uint32]*sortItem, error) {
	s := c.sel
	v := s.view
	out := map[uint32]*sortItem{}
	if u.flagsOnly && v.KeepsFlags() {
		// As searchView: the view's flags, \Recent for this session.
		var m query.Msg
		var need []uint32
		for _, x := range cands {
			f, ok := v.Flags(x)
			if !ok {
				continue
			}
			m = query.Msg{UID: x, Seq: v.Seq(x), Seen: f.Seen, Answered: f.Answered, Flagged: f.Flagged,
				Deleted: f.Deleted, Draft: f.Draft, Recent: v.IsRecent(x), Keywords: f.Keywords}
			if !query.Eval(u.node, &m, 0, 0) {
				continue
			}
			if u.keys == nil || u.has(x) {
				out[x] = &sortItem{SortMsg: &store.SortMsg{}, UID: x}
			} else {
				need = append(need, x)
			}
		}
		if len(need) == 0 {
			return out, nil
		}
		// The sort keys of the messages the SORT adds.
		found, err := c.Store().SortKeys(c.Ctx(), s.mb.Box(), query.UID{Set: uidSetOf(need)}, c.searchEnv(v), v.Gone(need, false), false)
		for _, k := range found {
			out[k.UID] = &sortItem{SortMsg: &k, UID: k.UID}
		}
		return out, err
	}
	node := query.And{u.node, query.UID{Set: uidSetOf(cands)}}
	held := v.Gone(cands, false)
	if u.keys == nil {
		found, err := c.Store().SearchHeld(c.Ctx(), s.mb.Box(), node, c.searchEnv(v), held)
		for _, x := range found {
			out[x] = &sortItem{SortMsg: &store.SortMsg{}, UID: x}
		}
		return out, err
	}
	found, err := c.Store().SortKeys(c.Ctx(), s.mb.Box(), node, c.searchEnv(v), held, false)
	for _, k := range found {
		out[k.UID] = &sortItem{SortMsg: &k, UID: k.UID}
	}
	return out, err
}

// cmdCancelUpdate: command-select =/ "CANCELUPDATE" 1*(SP quoted)
// (rfc5267.txt:631), "which will prevent all updates to the contexts named
// in the arguments from being transmitted by the server"
// (rfc5267.txt:528-532). A tag that names no updating search of the selection is NO and
// cancels nothing (the RFC leaves it open).
func cmdCancelUpdate(c *Conn, cmd *Command) error {
	if len(cmd.Args) == 0 {
		return Syntax("CANCELUPDATE takes one or more quoted tags")
	}
	s := c.sel
	drop := map[string]bool{}
	for _, a := range cmd.Args {
		if a.Kind != String {
			return Syntax("CANCELUPDATE takes one or more quoted tags")
		}
		if c.updateTag(a.S) == nil {
			return No("", "no search with UPDATE tagged "+a.S)
		}
		drop[a.S] = true
	}
	s.updates = slices.DeleteFunc(s.updates, func(u *updateContext) bool { return drop[u.tag] })
	if len(s.updates) == 0 {
		s.view.Track(false)
	}
	return c.OK("", "no further updates")
}
