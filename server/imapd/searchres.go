package imapd

import "decimail/server/query"

// SEARCHRES (RFC 5182, folded into RFC 9051 §6.4.4.1): SEARCH RETURN
// (SAVE ...) keeps its result in the search result variable, selection.saved,
// and "$" names it in the sequence set of any command taking one (FETCH,
// STORE, COPY, MOVE, SEARCH, their UID forms, UID EXPUNGE) and in SEARCH
// programs ("sequence-set =/ seq-last-command", rfc9051.txt:7047-7051).
//
// The variable holds UIDs: "$" names the same messages whether the command
// counts in UIDs or in sequence numbers, as "$" "can reference IMAP
// message sequences or UID sequences" (rfc9051.txt:4120-4129); a
// message expunged since "is automatically removed from the list"
// (rfc9051.txt:4066-4070) because only UIDs still in the session's view
// resolve. A new selection starts empty ("Upon successful completion of a
// SELECT or an EXAMINE command ... the current search result variable is
// reset to the empty sequence", rfc9051.txt:4042-4044); the variable is
// cleared by a failed SEARCH with SAVE (cmdSearch) and set by a successful
// one (searchReply).

// savedSet is "$": the saved messages still in the view, ascending UIDs.
// An empty result is "a valid, but non-matching, list of messages"
// (rfc9051.txt:4076-4080).
func (c *Conn) savedSet() []uint32 {
	uids, _ := c.sel.view.Resolve(uidSetOf(c.sel.saved))
	return uids
}

// savedNode is "$" in a SEARCH program; nil without SEARCHRES (then "$" is
// no search key: BAD).
func (c *Conn) savedNode() query.Node {
	if !c.capable("SEARCHRES") || c.sel == nil {
		return nil
	}
	if uids := c.savedSet(); len(uids) > 0 {
		return query.UID{Set: uidSetOf(uids)}
	}
	return query.Not{X: query.All{}}
}

// isSaved reports whether a sequence-set argument is "$" (and SEARCHRES is on).
func (c *Conn) isSaved(v Value) bool {
	return v.Kind == Atom && v.S == "$" && c.capable("SEARCHRES")
}
