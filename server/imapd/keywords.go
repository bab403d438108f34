package imapd

import (
	"strings"
)

// keywordSet is the session's FLAGS: the keywords it has announced for the
// selected mailbox (besides the system flags), and those it has seen in
// changes and not yet announced.
//
// The client MUST record the FLAGS it is sent (rfc3501.txt:3950: "The
// update from the FLAGS response MUST be recorded by the client"), so a
// client that keeps state knows no keyword it was not told about. Every
// response that carries a message's flags therefore goes out after the
// FLAGS that names its keywords: a keyword new to the session (this
// session's STORE, or another's, an APPEND or COPY, arriving through the
// poll) is announced with `* FLAGS (...)` and `* OK [PERMANENTFLAGS
// (...)]`, in that order, before the poll's EXPUNGE/EXISTS/FETCH updates
// and before any FETCH response that uses it, as Dovecot does (it sends
// them at the start of the sync that follows a command). The set never
// shrinks while the mailbox is selected: a keyword no message carries any
// more stays announced until the next SELECT (Dovecot's list does not
// shrink either; announcing removals would cost a scan of the mailbox for
// nothing a client needs).
type keywordSet struct {
	names []string        // announced, in order of arrival
	known map[string]bool // lower-cased names and pend
	pend  []string        // seen, not yet announced
}

func newKeywordSet(kws []string) *keywordSet {
	k := &keywordSet{known: map[string]bool{}}
	for _, n := range kws {
		if l := strings.ToLower(n); !k.known[l] {
			k.known[l] = true
			k.names = append(k.names, n)
		}
	}
	return k
}

// note records keywords to announce (compared case-insensitively, RFC 3501
// §2.3.2: "flag keywords are not case-sensitive" is implied by SEARCH; the
// store matches them so).
func (k *keywordSet) note(kws []string) {
	for _, n := range kws {
		if l := strings.ToLower(n); !k.known[l] {
			k.known[l] = true
			k.pend = append(k.pend, n)
		}
	}
}

// flags is the FLAGS list: the system flags, then the keywords.
func (k *keywordSet) flags() []string {
	return append(append([]string{}, systemFlags...), k.names...)
}

// writeFlags writes the FLAGS response and PERMANENTFLAGS (an untagged OK,
// rfc3501.txt:3565-3590) for the session's flags; the writer is locked.
func (c *Conn) writeFlags(k *keywordSet, readOnly bool) {
	flags := strings.Join(k.flags(), " ")
	w := c.Writer()
	w.Line("FLAGS (%s)", flags)
	if readOnly {
		w.Line("OK [PERMANENTFLAGS ()] read-only mailbox")
	} else {
		w.Line(`OK [PERMANENTFLAGS (%s \*)] flags permitted`, flags)
	}
}

// announceKeywords writes FLAGS and PERMANENTFLAGS if kws, or keywords
// noted before, are new to the session; the writer is locked. Every writer
// of a message's flags calls it first.
func (c *Conn) announceKeywords(kws []string) {
	s := c.sel
	if s == nil || s.kw == nil {
		return
	}
	s.kw.note(kws)
	if len(s.kw.pend) == 0 {
		return
	}
	s.kw.names = append(s.kw.names, s.kw.pend...)
	s.kw.pend = s.kw.pend[:0]
	c.writeFlags(s.kw, s.readOnly)
}
