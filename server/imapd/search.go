package imapd

import (
	"errors"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"

	"decimail/server/query"
	"decimail/server/store"
)

func init() {
	register("SEARCH", cmdSpec{states: selected, fn: func(c *Conn, cmd *Command) error { return cmdSearch(c, cmd, false) }})
	register("UID SEARCH", cmdSpec{states: selected, fn: func(c *Conn, cmd *Command) error { return cmdSearch(c, cmd, true) }})
}

// searchCharsets are the charsets SEARCH accepts (rfc3501.txt:2763-2769:
// US-ASCII MUST be supported). Both are searched as UTF-8: US-ASCII is a
// subset, and text columns are decoded to UTF-8 at delivery.
var searchCharsets = map[string]bool{"US-ASCII": true, "UTF-8": true}

// badSeqError is a sequence-set key naming a message beyond the client's view.
type badSeqError struct{ err error }

func (e *badSeqError) Error() string { return e.err.Error() }

// cmdSearch implements SEARCH and UID SEARCH (RFC 3501 §6.4.4, §6.4.8):
// parse → ONE store query → filter to the client's view → "* SEARCH", or
// with result options "* ESEARCH" (RFC 4731) and the saved result
// (SEARCHRES, searchres.go).
func cmdSearch(c *Conn, cmd *Command, uid bool) error {
	ret, args, err := c.parseReturn(cmd.Args, "ESEARCH", "CONTEXT=SEARCH")
	if err != nil {
		return err
	}
	if ret != nil && ret.update {
		if err := c.updateTag(cmd.Tag); err != nil {
			return err
		}
	}
	if ret == nil && c.rev2 {
		// IMAP4rev2 answers every SEARCH with ESEARCH (rev2.go): without
		// result options "ALL is assumed" (rfc9051.txt:3737).
		ret = &searchReturn{all: true}
	}
	err = search(c, cmd, uid, ret, args)
	if ret != nil && ret.save && err != nil && c.sel != nil {
		// "A SEARCH command with the SAVE result option that caused the
		// server to return the NO tagged response sets the value of the
		// search result variable to the empty sequence" (rfc9051.txt:4062-4064);
		// a BAD leaves it alone: such a SEARCH "MUST NOT change the search
		// result variable" (rfc9051.txt:4051-4060).
		if st := (*Status)(nil); !errors.As(err, &st) || st.Kind != "BAD" {
			c.sel.saved = nil
		}
	}
	return err
}

// parseProgram parses a SEARCH program (SEARCH, SORT, THREAD); the keys
// of a switched-off extension are BAD like unknown ones.
func (c *Conn) parseProgram(args []Value) (query.Node, error) {
	node, err := query.ParseSaved(searchArgs(args), c.savedNode())
	if err != nil {
		return nil, Bad("", err.Error())
	}
	if query.UsesSaveDate(node) && !c.capable("SAVEDATE") {
		return nil, Bad("", "unknown search key (SAVEDATE)")
	}
	if c.rev2 && query.UsesRecent(node) {
		// IMAP4rev2's search-key has no RECENT, NEW or OLD (rev2.go).
		return nil, Bad("", "unknown search key (RECENT, NEW and OLD are IMAP4rev1's)")
	}
	return node, nil
}

func search(c *Conn, cmd *Command, uid bool, ret *searchReturn, args []Value) error {
	// search = "SEARCH" [SP "CHARSET" SP astring] 1*(SP search-key), rfc3501.txt:4954
	if len(args) > 0 && args[0].Kind == Atom && strings.EqualFold(args[0].S, "CHARSET") {
		if len(args) < 2 {
			return Syntax("charset name expected")
		}
		cs, ok := args[1].AString()
		if !ok {
			return Syntax("charset name expected")
		}
		if !searchCharsets[strings.ToUpper(cs)] {
			// rfc3501.txt:2771-2774: NO (not BAD), SHOULD carry BADCHARSET
			// with the supported list (rfc3501.txt:3543, 4945).
			return No("BADCHARSET (US-ASCII UTF-8)", "unsupported charset "+cs)
		}
		args = args[2:]
	}
	node, err := c.parseProgram(args)
	if err != nil {
		return err
	}
	withModSeq := query.UsesModSeq(node)
	if withModSeq {
		if !c.capable("CONDSTORE") {
			return Bad("", "unknown search key MODSEQ")
		}
		// "a FETCH or SEARCH command that includes the MODSEQ message data
		// item" enables CONDSTORE (rfc7162.txt:377-378).
		if err := c.enableCondstore(); err != nil {
			return err
		}
	}
	s := c.sel
	view := s.view
	env := c.searchEnv(view)
	var found []uint32
	if ok, data := viewTerms(node); ok && !c.cfg.storeSearch && view.KeepsFlags() && (!data || view.KeepsIDs()) {
		// The store's limits apply as to its own search (Store.Search).
		if node, err = c.Store().PrepareSearch(node); err == nil {
			h := newHits(uid, ret)
			h.prog = node
			if err = c.searchView(node, cmd, h); err == nil {
				return nil
			}
		}
	} else if err = c.syncSelected(true); err == nil {
		// Messages the client still has that left the mailbox (their
		// EXPUNGE not sent yet) are searched too, by id: a SEARCH that
		// leaves out numbers the client holds is wrong (rfc5530.txt:202-209,
		// "EXPUNGEISSUED": a search still reports them). The read of the
		// store's changes before finds those another session took out.
		view = c.sel.view
		found, err = c.Store().SearchHeld(c.Ctx(), s.mb.Box(), node, env, view.Gone(view.UIDs(), false))
	}
	var bs *badSeqError
	var na *query.NotAllowedError
	var le *query.LimitError
	switch {
	case errors.As(err, &bs):
		return Bad("", bs.Error())
	case errors.As(err, &na):
		return Bad("", na.Error())
	case errors.As(err, &le):
		// A program over the store's search limits (issue 13): refused
		// before it reaches Postgres, logged once, NO [LIMIT]
		// (rfc5530.txt:256-259: "ran up against an implementation limit").
		c.log.Info("search refused", "cmd", cmd.Name, "limit", le.What, "got", le.Got, "max", le.Max)
		return No(CodeLimit, le.Error())
	case err != nil:
		return err
	}

	// Read before the response starts: an error must not cut it in half.
	others, err := c.othersFlags(view.UIDs())
	if err != nil {
		return err
	}
	h := newHits(uid, ret)
	h.prog = node
	if withModSeq {
		if h.modseq, err = c.highestOf(found); err != nil {
			return err
		}
	}
	w := c.Writer()
	w.Lock()
	defer w.Unlock()
	h.start(w)
	for _, u := range found {
		// The store may hold messages the client was not told about yet
		// (no EXISTS sent): they are not in its view and must not appear.
		seq := view.Seq(u)
		if seq == 0 {
			continue
		}
		h.writeHit(u, seq)
	}
	return c.searchReply(cmd, h, others)
}

// searchReply ends a SEARCH once the flags of the messages other sessions
// took out of the mailbox are read (others; nil: deleted meanwhile): it
// ends the SEARCH or ESEARCH response, saves the result (SAVE) and chooses
// the tagged reply: OK, or OK [EXPUNGEISSUED] when a message the client
// still has was deleted meanwhile (its EXPUNGE not sent yet): it could not
// be matched and is not in the result, and the client learns why ("Someone
// else has issued an EXPUNGE for the same mailbox", rfc5530.txt:202-209)
// instead of a silent omission.
func (c *Conn) searchReply(cmd *Command, h *hits, others map[uint32]*store.Flags) error {
	if h.ret != nil && h.ret.update {
		h.refused = c.addUpdate(cmd.Tag, h.uid, h.prog, nil, h.found, nil)
	}
	h.finish(cmd.Tag)
	if h.ret != nil && h.ret.save {
		c.sel.saved = h.saved()
	}
	for _, f := range others {
		if f == nil {
			return c.OK(CodeExpungeIssued, cmd.Name+" completed")
		}
	}
	return nil
}

// highestOf returns the highest mod-sequence of the messages among uids
// the client knows (0 for none): a SEARCH with a MODSEQ key appends it to
// a non-empty result (rfc7162.txt:1077-1083), one more read of the hits.
func (c *Conn) highestOf(uids []uint32) (int64, error) {
	view := c.sel.view
	var known []uint32
	for _, u := range uids {
		if view.Seq(u) != 0 {
			known = append(known, u)
		}
	}
	if len(known) == 0 {
		return 0, nil
	}
	var hm int64
	err := c.Store().FetchHeld(c.Ctx(), c.sel.mb.Box(), known, view.Gone(known, false), store.FetchCols{ModSeq: true},
		func(r *store.FetchRow) error { hm = max(hm, r.ModSeq); return nil })
	return hm, err
}

// flagsOnly reports whether a program reads nothing but flags, keywords,
// \Recent and UIDs: what the session's view keeps (UNSEEN, FLAGGED,
// UNDELETED, UID n:* UNSEEN, NEW: what clients poll with). Sequence sets
// go to the store, which checks them against the view.
func flagsOnly(n query.Node) bool {
	switch n := n.(type) {
	case query.All, query.Flag, query.Keyword, query.Recent, query.UID:
		return true
	case query.Not:
		return flagsOnly(n.X)
	case query.Or:
		return flagsOnly(n.A) && flagsOnly(n.B)
	case query.And:
		for _, x := range n {
			if !flagsOnly(x) {
				return false
			}
		}
		return true
	}
	return false
}

// viewTerms reports whether the session can answer a program itself
// (searchView): its keys read nothing but flags, keywords, \Recent, UID
// and sequence sets, and the unchanging data the process caches per
// message (store.SearchData: SINCE, BEFORE, ON, SENTSINCE, SENTBEFORE,
// SENTON, LARGER, SMALLER), data reporting whether it reads the latter.
// The SAVEDATE keys read the membership's save date, which neither keeps,
// and go to the store, as do text keys and MODSEQ.
func viewTerms(n query.Node) (ok, data bool) {
	var walk func(n query.Node) bool
	walk = func(n query.Node) bool {
		switch n := n.(type) {
		case query.All, query.Flag, query.Keyword, query.Recent, query.UID, query.Seq:
			return true
		case query.Size:
			data = true
			return true
		case query.Date:
			data = true
			return !strings.HasPrefix(n.Key, "SAVED")
		case query.Not:
			return walk(n.X)
		case query.Or:
			return walk(n.A) && walk(n.B)
		case query.And:
			for _, x := range n {
				if !walk(x) {
					return false
				}
			}
			return true
		}
		return false
	}
	ok = walk(n)
	return ok, ok && data
}

// searchView answers a SEARCH the view can answer (viewTerms) from the
// flags the view keeps, after bringing them up to date with the store
// (one ChangesSince, as FETCH FLAGS does: fetch.go fromView), and, for
// dates and sizes, the process's cache of them (store.SearchData,
// one query for the messages it has not read yet), without a query over
// the mailbox: with 50 sessions of one account each polling UNSEEN, that
// query was the largest read (bench/ANALYSIS.md, many sessions), and
// UNSEEN SINCE d LARGER n was at 1.1× Dovecot, which answers it from its
// index in memory (issue 15). query.Eval is the reference semantics the
// SQL is tested against, and the SQL and this path are tested against
// each other (TestPropertySearchViewMatchesStore). As with the store's
// answer, messages the client was not told of yet are left out (the
// post-command poll announces them) and messages expunged meanwhile are
// not found.
func (c *Conn) searchView(node query.Node, cmd *Command, h *hits) error {
	if err := c.syncSelected(true); err != nil {
		return err
	}
	view := c.sel.view
	// Messages another session took out of the mailbox, their EXPUNGE not
	// sent yet, are still the client's: matched on their current flags
	// (one deleted meanwhile matches nothing).
	others, err := c.othersFlags(view.UIDs())
	if err != nil {
		return err
	}
	// The test of each message, as SORT's (sort.go): a sequence number
	// beyond the view is BAD there, before the response starts.
	match, err := c.viewMatcher(node, others)
	if err != nil {
		return err
	}
	w := c.Writer()
	w.Lock()
	defer w.Unlock()
	h.start(w)
	for i, u := range view.UIDs() {
		if match(i) {
			h.writeHit(u, uint32(i+1))
		}
	}
	return c.searchReply(cmd, h, others)
}

// searchData returns the search data of the view's messages (aligned with
// its UIDs) from the process's cache, one query for those it lacks.
func (c *Conn) searchData() ([]store.SearchData, error) {
	view := c.sel.view
	ids := make([]int64, view.Len())
	for i := range ids {
		ids[i] = view.IDAt(i)
	}
	return c.Store().SearchDataByID(c.Ctx(), c.sel.mb.Box(), ids)
}

// setFlags sets what query.Eval reads of a message in the view besides
// its search data (withData).
func setFlags(m *query.Msg, uid, seq uint32, f store.Flags, recent bool) {
	m.UID, m.Seq, m.Recent, m.Keywords = uid, seq, recent, f.Keywords
	m.Seen, m.Answered, m.Flagged, m.Deleted, m.Draft = f.Seen, f.Answered, f.Flagged, f.Deleted, f.Draft
}

// withData sets m's days and size from d, as the SQL compiler reads them
// (store.SearchData); false: the message was deleted meanwhile, and is not
// found, as by the store.
func withData(m *query.Msg, d *store.SearchData) bool {
	if !d.Found {
		return false
	}
	m.InternalDay, m.SentDay, m.Size = store.Day(d.InternalDay), time.Time{}, int(d.Size)
	if d.SentDay != store.NoDay {
		m.SentDay = store.Day(d.SentDay)
	}
	return true
}

// checkSeqSets resolves the program's sequence sets against the client's
// view (env.SeqToUID: the error for a number beyond it is a badSeqError).
func checkSeqSets(n query.Node, env *query.Env) error {
	switch n := n.(type) {
	case query.Seq:
		_, err := env.SeqToUID(n.Set)
		return err
	case query.Not:
		return checkSeqSets(n.X, env)
	case query.Or:
		if err := checkSeqSets(n.A, env); err != nil {
			return err
		}
		return checkSeqSets(n.B, env)
	case query.And:
		for _, x := range n {
			if err := checkSeqSets(x, env); err != nil {
				return err
			}
		}
	}
	return nil
}

// searchEnv is the session's part of a search program's compilation:
// sequence sets resolved against the client's view, its \Recent messages
// and the largest UID it knows (SEARCH, SORT, THREAD).
func (c *Conn) searchEnv(view *View) *query.Env {
	env := &query.Env{
		// A sequence number beyond the client's view (or "*" in an empty
		// mailbox) is BAD, as for every other command taking a sequence set:
		// rfc3501.txt:5009-5013 ("respond with a tagged BAD response to a
		// command that uses a message sequence number greater than the
		// number of messages in the selected mailbox").
		SeqToUID: func(set imap.SeqSet) (imap.UIDSet, error) {
			c.seqCriteria = true
			uids, err := view.Resolve(set)
			if err != nil {
				return nil, &badSeqError{err}
			}
			return uidSetOf(uids), nil
		},
		Recent: view.Recent(), // RECENT, rfc3501.txt:2878
	}
	if n := view.Len(); n > 0 {
		// "*" in a UID set is the largest UID the client knows ("In the case of
		// unique identifiers, it is the unique identifier of the last message",
		// rfc3501.txt:5005).
		env.MaxUID = view.UID(uint32(n))
	}
	return env
}

// searchArgs converts command arguments to the query package's form.
func searchArgs(vs []Value) []query.Arg {
	out := make([]query.Arg, len(vs))
	for i, v := range vs {
		switch v.Kind {
		case Atom:
			out[i] = query.Arg{Kind: query.Atom, S: v.S}
		case List:
			out[i] = query.Arg{Kind: query.List, List: searchArgs(v.List)}
		default: // String, Literal, Literal8
			out[i] = query.Arg{Kind: query.Str, S: v.S}
		}
	}
	return out
}

// uidSetOf turns ascending UIDs into a UID set of ranges.
func uidSetOf(uids []uint32) imap.UIDSet {
	var set imap.UIDSet
	for _, u := range uids {
		if n := len(set); n > 0 && uint32(set[n-1].Stop)+1 == u {
			set[n-1].Stop = imap.UID(u)
			continue
		}
		set = append(set, imap.UIDRange{Start: imap.UID(u), Stop: imap.UID(u)})
	}
	return set
}
