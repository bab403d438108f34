package imapd

// SORT and UID SORT (RFC 5256 §3, "BASE.6.4.SORT", rfc5256.txt:183-304)
// and the search they share with THREAD (thread.go). The search program
// is SEARCH's (query.ParseSaved, one store query: store.SortKeys, the
// twin of store.SearchHeld); the keys come precomputed from the store
// (schema 0016) and the ordering is done here, in Go.

import (
	"cmp"
	"errors"
	"slices"
	"strings"
	"time"

	"decimail/server/query"
	"decimail/server/store"
)

func init() {
	register("SORT", cmdSpec{states: selected, ext: "SORT", fn: func(c *Conn, cmd *Command) error { return cmdSort(c, cmd, false) }})
	register("UID SORT", cmdSpec{states: selected, ext: "SORT", fn: func(c *Conn, cmd *Command) error { return cmdSort(c, cmd, true) }})
}

// sortKey is one sort-criterion (rfc5256.txt:762-765).
type sortKey struct {
	key     string // ARRIVAL, CC, DATE, FROM, SIZE, SUBJECT, TO
	reverse bool
}

// sortItem is a found message with its sequence number, the implicit last
// sort criterion: "If two or more messages exactly match according to the
// sorting criteria", sequence order decides (rfc5256.txt:231-234). The
// keys may be the store's shared entry (store.SortKeysByID): not modified.
type sortItem struct {
	*store.SortMsg
	UID uint32
	seq uint32
}

func (m *sortItem) sent() time.Time { return sentDate(m.SortMsg) }

// sentDate is the "sent date" of rfc5256.txt:139-161: Date: in UTC, else
// the INTERNALDATE ("If the sent date cannot be determined ... the
// INTERNALDATE for that message is used", rfc5256.txt:155-157).
func sentDate(m *store.SortMsg) time.Time {
	if m.Sent.IsZero() {
		return m.Arrival
	}
	return m.Sent
}

// cmdSort: sort = ["UID" SP] "SORT" SP sort-criteria SP search-criteria
// (rfc5256.txt:758-760), search-criteria = charset 1*(SP search-key)
// (rfc5256.txt:774); with ESORT, search-return-opts may come first
// (extended-sort, rfc5267.txt:692-695).
func cmdSort(c *Conn, cmd *Command, uid bool) error {
	ret, args, err := c.parseReturn(cmd.Args, "ESORT", "CONTEXT=SORT")
	if err != nil {
		return err
	}
	if ret != nil && ret.save {
		return Syntax("SAVE is a SEARCH result option")
	}
	if ret != nil && ret.update {
		if err := c.updateTag(cmd.Tag); err != nil {
			return err
		}
	}
	if len(args) == 0 || args[0].Kind != List || len(args[0].List) == 0 {
		return Syntax("SORT takes a parenthesized list of sort criteria")
	}
	keys, err := parseSortKeys(args[0].List, c.capable("SORT=DISPLAY"))
	if err != nil {
		return err
	}
	node, err := c.sortProgram(args[1:])
	if err != nil {
		return err
	}
	update := ret != nil && ret.update
	if c.fromView(node) && !update {
		// One walk of the view's kept order (sortorder.go).
		if node, err = c.Store().PrepareSearch(node); err == nil {
			err = c.sortOrdered(cmd, uid, ret, keys, node)
		}
		return c.searchErr(cmd, err)
	}
	// The sorted result itself: an updating SORT keeps it (ctxupdate.go).
	var items []*sortItem
	var issued bool
	if c.fromView(node) {
		var prep query.Node
		if prep, err = c.Store().PrepareSearch(node); err == nil {
			items, issued, err = c.sortFromView(prep)
		}
	} else {
		items, issued, err = c.sortStore(node, false)
	}
	if err != nil {
		return c.searchErr(cmd, err)
	}
	sortItems(items, keys)
	h := newSortHits(uid, ret)
	if update {
		h.refused = c.addUpdate(cmd.Tag, uid, node, keys, nil, items)
	}
	w := c.Writer()
	w.Lock()
	h.start(w)
	for _, m := range items {
		h.writeHit(m.UID, m.seq)
	}
	h.finish(cmd.Tag)
	w.Unlock()
	return c.sortReply(cmd, issued)
}

// sortHits writes a SORT's answer as it comes, in sort order: "* SORT"
// and the numbers (sort-data = "SORT" *(SP nz-number), rfc5256.txt:779),
// or with result options the ESEARCH response: "returns results in an
// ESEARCH response" (rfc5267.txt:175-179), MIN and MAX the first and last
// sorted message, ALL and PARTIAL listing them in that order, with ranges
// only where numbers ascend (rfc5267.txt:186-214).
type sortHits struct {
	*hits
	plain bool
}

func newSortHits(uid bool, ret *searchReturn) *sortHits {
	return &sortHits{hits: newHits(uid, ret), plain: ret == nil}
}

func (h *sortHits) start(w *Writer) {
	if h.plain {
		h.w = w
		w.Untagged()
		w.Raw("SORT")
		return
	}
	h.hits.start(w)
}

func (h *sortHits) finish(tag string) {
	if h.plain {
		h.w.CRLF()
		return
	}
	h.hits.finish(tag)
}

// enough reports whether more matches would change nothing of the answer:
// ESORT asked for PARTIAL lo:hi and/or MIN only (no ALL, MAX or COUNT),
// and has them.
func (h *sortHits) enough() bool {
	r := h.ret
	if h.plain || r.all || r.max || r.count || r.save || r.min && h.n == 0 {
		return false
	}
	return r.partial[0] == 0 || uint32(h.n) >= r.partial[1]
}

func number(m *sortItem, uid bool) uint32 { return number2(m.UID, m.seq, uid) }

// parseSortKeys reads sort-criterion *(SP sort-criterion), each
// ["REVERSE" SP] sort-key (rfc5256.txt:760-765).
func parseSortKeys(vs []Value, display bool) ([]sortKey, error) {
	var keys []sortKey
	for i := 0; i < len(vs); i++ {
		if vs[i].Kind != Atom {
			return nil, Syntax("sort key expected")
		}
		k := sortKey{key: strings.ToUpper(vs[i].S)}
		if k.key == "REVERSE" {
			i++
			if i == len(vs) || vs[i].Kind != Atom {
				return nil, Syntax("REVERSE must be followed by a sort key")
			}
			k = sortKey{key: strings.ToUpper(vs[i].S), reverse: true}
		}
		switch k.key {
		case "ARRIVAL", "CC", "DATE", "FROM", "SIZE", "SUBJECT", "TO":
		case "DISPLAYFROM", "DISPLAYTO": // SORT=DISPLAY (RFC 5957)
			if !display {
				return nil, Syntax("unknown sort key " + vs[i].S)
			}
		default:
			return nil, Syntax("unknown sort key " + vs[i].S)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// sortItems orders items by keys, then by sequence number: "Sorting is in
// ascending order" (rfc5256.txt:219-222), REVERSE reverses only its own
// criterion, not the implicit sequence number one (rfc5256.txt:265-276).
// The text keys are folded: octet order is i;unicode-casemap's
// (rfc5256.txt:858-863), the empty string first ("If the associated
// RFC-822 header for a particular criterion is absent, it is treated as the
// empty string", rfc5256.txt:246-250).
func sortItems(items []*sortItem, keys []sortKey) { slices.SortFunc(items, sortCmp(keys)) }

// sortCmp is the order of sortItems.
func sortCmp(keys []sortKey) func(a, b *sortItem) int {
	return func(a, b *sortItem) int {
		if r := cmpKeys(a.SortMsg, b.SortMsg, keys); r != 0 {
			return r
		}
		return cmp.Compare(a.seq, b.seq)
	}
}

// cmpKeys compares two messages by the sort criteria keys alone.
func cmpKeys(a, b *store.SortMsg, keys []sortKey) int {
	for _, k := range keys {
		var r int
		switch k.key {
		case "ARRIVAL":
			r = a.Arrival.Compare(b.Arrival)
		case "DATE":
			r = sentDate(a).Compare(sentDate(b))
		case "SIZE":
			r = cmp.Compare(a.Size, b.Size)
		case "SUBJECT":
			r = strings.Compare(a.Subject, b.Subject)
		case "FROM":
			r = strings.Compare(a.From, b.From)
		case "TO":
			r = strings.Compare(a.To, b.To)
		case "CC":
			r = strings.Compare(a.Cc, b.Cc)
		case "DISPLAYFROM":
			r = strings.Compare(a.DisplayFrom, b.DisplayFrom)
		case "DISPLAYTO":
			r = strings.Compare(a.DisplayTo, b.DisplayTo)
		}
		if k.reverse {
			r = -r
		}
		if r != 0 {
			return r
		}
	}
	return 0
}

// sortProgram reads the search-criteria of SORT and THREAD: the charset,
// mandatory here (rfc5256.txt:201-204: "US-ASCII and [UTF-8] charsets
// MUST be implemented"; any other NO [BADCHARSET] as for SEARCH,
// rfc3501.txt:2771-2774), then SEARCH's program; and brings the view up
// to date with the store, as SEARCH does.
func (c *Conn) sortProgram(args []Value) (query.Node, error) {
	if len(args) == 0 {
		return nil, Syntax("charset expected")
	}
	cs, ok := args[0].AString()
	if !ok || args[0].Kind == List {
		return nil, Syntax("charset expected")
	}
	if len(args) < 2 {
		return nil, Syntax("search criteria expected")
	}
	if !searchCharsets[strings.ToUpper(cs)] {
		return nil, No("BADCHARSET (US-ASCII UTF-8)", "unsupported charset "+cs)
	}
	node, err := c.parseProgram(args[1:])
	if err != nil {
		return nil, err
	}
	if err := c.syncSelected(true); err != nil {
		return nil, err
	}
	return node, nil
}

// fromView reports whether the view can answer the program itself: flags,
// UID and sequence sets, dates and sizes (viewTerms, as SEARCH), and the
// view keeps its messages' flags and ids.
func (c *Conn) fromView(node query.Node) bool {
	v := c.sel.view
	ok, _ := viewTerms(node)
	return ok && !c.cfg.storeSearch && v.KeepsFlags() && v.KeepsIDs()
}

// searchErr is the reply to a SORT's or THREAD's search that failed (nil:
// none).
func (c *Conn) searchErr(cmd *Command, err error) error {
	var bs *badSeqError
	var na *query.NotAllowedError
	var le *query.LimitError
	switch {
	case errors.As(err, &bs):
		return Bad("", bs.Error())
	case errors.As(err, &na):
		return Bad("", na.Error())
	case errors.As(err, &le):
		c.log.Info("search refused", "cmd", cmd.Name, "limit", le.What, "got", le.Got, "max", le.Max)
		return No(CodeLimit, le.Error())
	}
	return err
}

// sortSearch is THREAD ORDEREDSUBJECT's search (sortProgram, then
// sortFromView or sortStore).
func (c *Conn) sortSearch(cmd *Command, args []Value) (items []*sortItem, issued bool, err error) {
	node, err := c.sortProgram(args)
	if err != nil {
		return nil, false, err
	}
	if c.fromView(node) {
		// Matched on the session's flags, sorted on cached keys.
		if node, err = c.Store().PrepareSearch(node); err == nil {
			items, issued, err = c.sortFromView(node)
		}
	} else {
		items, issued, err = c.sortStore(node, false)
	}
	if err != nil {
		return nil, false, c.searchErr(cmd, err)
	}
	return items, issued, nil
}

// sortStore runs the program over the selected mailbox, folder or view,
// in Postgres (store.SortKeys). It returns the found messages the client
// knows of, in sequence number order, with their keys; messages another
// session expunged whose EXPUNGE the client has not seen yet are found
// too, as by SEARCH (search.go). issued: a message the client still has
// was deleted meanwhile (read before the response starts: an error must
// not cut it in half).
func (c *Conn) sortStore(node query.Node, thread bool) (items []*sortItem, issued bool, err error) {
	view := c.sel.view
	found, err := c.Store().SortKeys(c.Ctx(), c.sel.mb.Box(), node, c.searchEnv(view), view.Gone(view.UIDs(), false), thread)
	if err != nil {
		return nil, false, err
	}
	items = make([]*sortItem, 0, len(found))
	for i := range found {
		// Messages the client was not told about yet are not in its view.
		if seq := view.Seq(found[i].UID); seq != 0 {
			items = append(items, &sortItem{SortMsg: &found[i], UID: found[i].UID, seq: seq})
		}
	}
	others, err := c.othersFlags(view.UIDs())
	if err != nil {
		return nil, false, err
	}
	for _, f := range others {
		issued = issued || f == nil
	}
	return items, issued, nil
}

// sortReply is the tagged reply: OK, or OK [EXPUNGEISSUED] when a message
// the client still has was deleted meanwhile and so could not be matched
// (issued; as searchReply, search.go).
func (c *Conn) sortReply(cmd *Command, issued bool) error {
	if issued {
		return c.OK(CodeExpungeIssued, cmd.Name+" completed")
	}
	return nil
}

// viewMatcher returns the test of a program the view answers (fromView)
// on the message at a position of the view, on the session's kept flags
// and the process's search data (as searchView): messages another session
// took out of the mailbox (their EXPUNGE not sent yet) on their current
// flags, one deleted meanwhile matching nothing (others, from
// othersFlags). A program of system flags and RECENT/NEW/OLD only is
// evaluated once for each of the 64 combinations (query.Eval, the
// reference semantics), then looked up per message. A sequence number
// beyond the view is a badSeqError, before anything is written.
func (c *Conn) viewMatcher(node query.Node, others map[uint32]*store.Flags) (func(i int) bool, error) {
	view := c.sel.view
	if err := checkSeqSets(node, c.searchEnv(view)); err != nil {
		return nil, err
	}
	var sd []store.SearchData
	if _, data := viewTerms(node); data {
		var err error
		if sd, err = c.searchData(); err != nil {
			return nil, err
		}
	}
	n := uint32(view.Len())
	maxUID := view.UID(n)
	uids := view.UIDs()
	kw := query.UsesKeywords(node)
	var m query.Msg // reused: the matcher is called by one goroutine
	eval := func(i int, f store.Flags) bool {
		u := uids[i]
		setFlags(&m, u, uint32(i+1), f, view.IsRecent(u))
		if sd != nil && !withData(&m, &sd[i]) {
			return false
		}
		return query.Eval(node, &m, maxUID, n)
	}
	other := func(i int) (bool, bool) {
		of, ok := others[uids[i]]
		if !ok {
			return false, false
		}
		f, exists := derefFlags(of)
		return exists && eval(i, f), true
	}
	if table, recent, ok := flagTable(node); ok {
		return func(i int) bool {
			if len(others) > 0 {
				if r, ok := other(i); ok {
					return r
				}
			}
			b := view.fbits[i]
			if recent && view.recent[uids[i]] {
				b |= fRecent
			}
			return table[b]
		}, nil
	}
	return func(i int) bool {
		if len(others) > 0 {
			if r, ok := other(i); ok {
				return r
			}
		}
		return eval(i, view.FlagsAt(i, kw))
	}, nil
}

// fRecent is the bit of \Recent next to packFlags' (flagTable).
const fRecent uint8 = fDraft << 1

// flagTable evaluates a program of system flags and RECENT/NEW/OLD for
// every combination of them, indexed by packFlags | fRecent; recent: the
// program reads \Recent. ok is false for another program.
func flagTable(node query.Node) (table *[64]bool, recent bool, ok bool) {
	var bitsOnly func(n query.Node) bool
	bitsOnly = func(n query.Node) bool {
		switch n := n.(type) {
		case query.All, query.Flag:
			return true
		case query.Recent:
			recent = true
			return true
		case query.Not:
			return bitsOnly(n.X)
		case query.Or:
			return bitsOnly(n.A) && bitsOnly(n.B)
		case query.And:
			for _, x := range n {
				if !bitsOnly(x) {
					return false
				}
			}
			return true
		}
		return false
	}
	if !bitsOnly(node) {
		return nil, false, false
	}
	table = new([64]bool)
	for b := range uint8(64) {
		m := query.Msg{UID: 1, Seq: 1, Seen: b&fSeen != 0, Answered: b&fAnswered != 0, Flagged: b&fFlagged != 0,
			Deleted: b&fDeleted != 0, Draft: b&fDraft != 0, Recent: b&fRecent != 0}
		table[b] = query.Eval(node, &m, 1, 1)
	}
	return table, recent, true
}

// sortOrdered answers a SORT whose program the view can answer (fromView)
// by one walk of the view's order for keys (sortorder.go), brought up to
// date first, testing each message's flags (viewMatcher): no sort, and
// ESORT PARTIAL lo:hi stops at the hi-th match (at once for ALL; a program
// matching few messages walks further, the whole order if fewer than hi
// match).
func (c *Conn) sortOrdered(cmd *Command, uid bool, ret *searchReturn, keys []sortKey, node query.Node) error {
	o, issued, err := c.sortedOrder(keys)
	if err != nil {
		return err
	}
	view := c.sel.view
	others, err := c.othersFlags(view.UIDs())
	if err != nil {
		return err
	}
	for _, f := range others {
		issued = issued || f == nil
	}
	match, err := c.viewMatcher(node, others)
	if err != nil {
		return err
	}
	uids := view.UIDs()
	h := newSortHits(uid, ret)
	w := c.Writer()
	w.Lock()
	h.start(w)
	for _, e := range o.ents {
		i := int(e.pos)
		if !match(i) {
			continue
		}
		if h.plain {
			w.SP()
			w.Number(uint64(number2(uids[i], uint32(i+1), uid)))
			continue
		}
		h.writeHit(uids[i], uint32(i+1))
		if h.enough() {
			break
		}
	}
	h.finish(cmd.Tag)
	w.Unlock()
	return c.sortReply(cmd, issued)
}

func number2(u, seq uint32, uid bool) uint32 {
	if uid {
		return u
	}
	return seq
}

// sortedOrder returns the view's order for keys with the messages new to
// it inserted (their keys from the store's cache, store.SortKeysByID).
// issued: a message of the view was deleted meanwhile (no keys): it is
// left out of the order (it leaves the view with its EXPUNGE).
//
// A session's first use of an order starts from the order another session
// of the server shared for the mailbox (sharedOrders), when there is one,
// and shares its own when it had to add messages to it (or there was
// none).
func (c *Conn) sortedOrder(keys []sortKey) (o *sortOrder, issued bool, err error) {
	view := c.sel.view
	o = view.order(keys)
	var sk sharedKey
	share := false
	if !o.made {
		mb := c.sel.mb
		sk = sharedKey{mailbox: mb.ID, uidValidity: mb.UIDValidity, criteria: ordersKey(keys)}
		share = true
		if sh := c.srv.orders.get(sk); sh != nil {
			share = o.adopt(sh, view.UIDs())
		}
	}
	if len(o.pending) > 0 {
		if issued, err = c.addPending(o); err != nil {
			return nil, false, err
		}
	}
	if !o.made {
		o.made = true
		if share {
			c.srv.orders.put(sk, o.share(view.UIDs()))
		}
	}
	return o, issued, nil
}

// addPending inserts the order's pending messages, with their keys from
// the store (store.SortKeysByID). issued: one was deleted meanwhile (no
// keys): it is left out of the order (it leaves the view with its
// EXPUNGE).
func (c *Conn) addPending(o *sortOrder) (issued bool, err error) {
	view := c.sel.view
	ids := make([]int64, len(o.pending))
	for j, p := range o.pending {
		ids[j] = view.IDAt(int(p))
	}
	ks, err := c.Store().SortKeysByID(c.Ctx(), c.sel.mb.Box(), ids)
	if err != nil {
		return false, err
	}
	add := make([]orderEnt, 0, len(ks))
	for j, k := range ks {
		if k == nil {
			issued = true
			continue
		}
		add = append(add, orderEnt{pos: o.pending[j], k: k})
	}
	o.pending = o.pending[:0]
	o.insert(add)
	return issued, nil
}

// sortFromView is THREAD's search for a program the view answers
// (fromView): matched on the session's kept flags and the process's
// search data (viewMatches), the keys of the matches from the
// store's cache of sort keys (store.SortKeysByID), so a repeated THREAD
// of a large mailbox reads nothing but the keys of messages new to the
// process. Items is never nil.
func (c *Conn) sortFromView(node query.Node) (items []*sortItem, issued bool, err error) {
	seqs, ids, issued, err := c.viewMatches(node)
	if err != nil {
		return nil, false, err
	}
	keys, err := c.Store().SortKeysByID(c.Ctx(), c.sel.mb.Box(), ids)
	if err != nil {
		return nil, false, err
	}
	uids := c.sel.view.UIDs()
	all := make([]sortItem, 0, len(seqs))
	for j, seq := range seqs {
		if keys[j] == nil { // deleted meanwhile: cannot be matched (EXPUNGEISSUED)
			issued = true
			continue
		}
		all = append(all, sortItem{SortMsg: keys[j], UID: uids[seq-1], seq: seq})
	}
	items = make([]*sortItem, len(all))
	for j := range all {
		items[j] = &all[j]
	}
	return items, issued, nil
}

// viewMatches walks the view with a program it answers (viewMatcher):
// the sequence numbers and message ids of the matches, ascending. issued:
// a message of the view was deleted meanwhile (it matches nothing).
func (c *Conn) viewMatches(node query.Node) (seqs []uint32, ids []int64, issued bool, err error) {
	view := c.sel.view
	others, err := c.othersFlags(view.UIDs())
	if err != nil {
		return nil, nil, false, err
	}
	match, err := c.viewMatcher(node, others)
	if err != nil {
		return nil, nil, false, err
	}
	for i := range view.Len() {
		if match(i) {
			seqs, ids = append(seqs, uint32(i+1)), append(ids, view.IDAt(i))
		}
	}
	for _, f := range others {
		issued = issued || f == nil
	}
	return seqs, ids, issued, nil
}
