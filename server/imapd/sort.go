package imapd

// SORT and UID SORT (RFC 5256 §3, "BASE.6.4.SORT", rfc5256.txt:183-304)
// and the search they share with THREAD (thread.go). The search program
// is SEARCH's (query.ParseSaved, one store query: store.SortKeys, the
// twin of store.SearchHeld); the keys come precomputed from the store
// (schema 0016) and the ordering is done here, in Go.

import (
	"errors"
	"slices"
	"strconv"
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
// sorting criteria", sequence order decides (rfc5256.txt:231-234).
type sortItem struct {
	store.SortMsg
	seq uint32
}

// sent is the "sent date" of rfc5256.txt:139-161: Date: in UTC, else the
// INTERNALDATE ("If the sent date cannot be determined ... the
// INTERNALDATE for that message is used", rfc5256.txt:155-157).
func (m *sortItem) sent() time.Time {
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
	var node query.Node
	items, issued, err := c.sortSearch(cmd, args[1:], false, &node)
	if err != nil {
		return err
	}
	sortItems(items, keys)
	if ret != nil {
		// "returns results in an ESEARCH response" (rfc5267.txt:175-179),
		// in sort order: MIN and MAX are the first and last sorted
		// message, ALL and PARTIAL list them in that order, with ranges
		// only where numbers ascend (rfc5267.txt:186-214).
		h := newHits(uid, ret)
		if ret.update {
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
	var b strings.Builder
	b.WriteString("SORT") // sort-data = "SORT" *(SP nz-number), rfc5256.txt:779
	for _, m := range items {
		b.WriteByte(' ')
		b.WriteString(strconv.FormatUint(uint64(number(m, uid)), 10))
	}
	c.Untagged("%s", b.String())
	return c.sortReply(cmd, issued)
}

func number(m *sortItem, uid bool) uint32 {
	if uid {
		return m.UID
	}
	return m.seq
}

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
		for _, k := range keys {
			var r int
			switch k.key {
			case "ARRIVAL":
				r = a.Arrival.Compare(b.Arrival)
			case "DATE":
				r = a.sent().Compare(b.sent())
			case "SIZE":
				r = cmpInt(a.Size, b.Size)
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
		return cmpInt(a.seq, b.seq)
	}
}

func cmpInt[T int64 | uint32](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// sortSearch runs the search-criteria of SORT and THREAD: the charset,
// mandatory here (rfc5256.txt:201-204: "US-ASCII and [UTF-8] charsets
// MUST be implemented"; any other NO [BADCHARSET] as for SEARCH,
// rfc3501.txt:2771-2774), then SEARCH's program over the selected
// mailbox, folder or view. It returns the found messages the client knows
// of, in sequence number order, with their keys; messages another session
// expunged whose EXPUNGE the client has not seen yet are found too, as by
// SEARCH (search.go). issued: a message the client still has was deleted
// meanwhile (read before the response starts: an error must not cut it
// in half).
//
// prog, when not nil, receives the parsed program (SORT with UPDATE keeps
// it: ctxupdate.go).
func (c *Conn) sortSearch(cmd *Command, args []Value, thread bool, prog *query.Node) (items []*sortItem, issued bool, err error) {
	if len(args) == 0 {
		return nil, false, Syntax("charset expected")
	}
	cs, ok := args[0].AString()
	if !ok || args[0].Kind == List {
		return nil, false, Syntax("charset expected")
	}
	if len(args) < 2 {
		return nil, false, Syntax("search criteria expected")
	}
	if !searchCharsets[strings.ToUpper(cs)] {
		return nil, false, No("BADCHARSET (US-ASCII UTF-8)", "unsupported charset "+cs)
	}
	node, perr := c.parseProgram(args[1:])
	if perr != nil {
		return nil, false, perr
	}
	if prog != nil {
		*prog = node
	}
	if err := c.syncSelected(true); err != nil {
		return nil, false, err
	}
	view := c.sel.view
	env := c.searchEnv(view)
	var found []store.SortMsg
	if view.KeepsFlags() && view.KeepsIDs() && flagsOnly(node) {
		// Matched on the session's flags, sorted on cached keys.
		if node, err = c.Store().PrepareSearch(node); err == nil {
			items, issued, err = c.sortFromView(node)
		}
	} else {
		found, err = c.Store().SortKeys(c.Ctx(), c.sel.mb.Box(), node, env, view.Gone(view.UIDs(), false), thread)
	}
	var bs *badSeqError
	var na *query.NotAllowedError
	var le *query.LimitError
	switch {
	case errors.As(err, &bs):
		return nil, false, Bad("", bs.Error())
	case errors.As(err, &na):
		return nil, false, Bad("", na.Error())
	case errors.As(err, &le):
		c.log.Info("search refused", "cmd", cmd.Name, "limit", le.What, "got", le.Got, "max", le.Max)
		return nil, false, No(CodeLimit, le.Error())
	case err != nil:
		return nil, false, err
	}
	if items != nil {
		return items, issued, nil
	}
	items = make([]*sortItem, 0, len(found))
	for _, m := range found {
		// Messages the client was not told about yet are not in its view.
		if seq := view.Seq(m.UID); seq != 0 {
			items = append(items, &sortItem{SortMsg: m, seq: seq})
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

// sortFromView is sortSearch for a program of flags only: matched on the
// session's kept flags (as searchView), the keys of the matches from the
// store's cache of sort keys (store.SortKeysByID), so a repeated SORT or
// THREAD of a large mailbox reads nothing but the keys of messages new to
// the process. Items is never nil.
func (c *Conn) sortFromView(node query.Node) (items []*sortItem, issued bool, err error) {
	view := c.sel.view
	others, err := c.othersFlags(view.UIDs())
	if err != nil {
		return nil, false, err
	}
	n := uint32(view.Len())
	maxUID := view.UID(n)
	kw := query.UsesKeywords(node)
	var seqs []uint32
	var ids []int64
	var m query.Msg
	uids := view.UIDs()
	for i, u := range uids {
		f := view.FlagsAt(i, kw)
		if of, other := others[u]; other {
			var ok bool
			if f, ok = derefFlags(of); !ok {
				continue
			}
		}
		seq := uint32(i + 1)
		m = query.Msg{UID: u, Seq: seq, Seen: f.Seen, Answered: f.Answered, Flagged: f.Flagged, Deleted: f.Deleted,
			Draft: f.Draft, Recent: view.IsRecent(u), Keywords: f.Keywords}
		if query.Eval(node, &m, maxUID, n) {
			seqs, ids = append(seqs, seq), append(ids, view.IDAt(i))
		}
	}
	keys, found, err := c.Store().SortKeysByID(c.Ctx(), c.sel.mb.Box(), ids)
	if err != nil {
		return nil, false, err
	}
	all := make([]sortItem, 0, len(seqs))
	for j, seq := range seqs {
		if !found[j] { // deleted meanwhile: cannot be matched (EXPUNGEISSUED)
			issued = true
			continue
		}
		keys[j].UID = uids[seq-1]
		all = append(all, sortItem{SortMsg: keys[j], seq: seq})
	}
	items = make([]*sortItem, len(all))
	for j := range all {
		items[j] = &all[j]
	}
	for _, f := range others {
		issued = issued || f == nil
	}
	return items, issued, nil
}
