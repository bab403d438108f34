package imapd

import (
	"strings"

	"golang.org/x/text/unicode/norm"

	"decimail/server/store"
)

// IMAP4rev2 (RFC 9051) beside IMAP4rev1. Both are advertised; a client
// that "wants to use IMAP4rev2 MUST issue an "ENABLE IMAP4rev2" command"
// (rfc9051.txt:7870-7871), and only then does the session change
// (c.rev2), for this connection only:
//
//   - no \Recent flag, no RECENT response, no STATUS RECENT and no SEARCH
//     NEW, OLD or RECENT: RFC 9051's grammar has none of them (flag,
//     status-att, search-key; rfc9051.txt:8053-8054 "now deprecated");
//   - SEARCH answers "* ESEARCH" as if RETURN () had been given (the
//     "SEARCH command now requires to return the ESEARCH response",
//     rfc9051.txt:8026-8027);
//   - SELECT and EXAMINE send an untagged LIST of the mailbox and no
//     [UNSEEN] (rfc9051.txt:8048-8051), [CLOSED] when they close one;
//   - unsolicited FETCH responses carry the UID ("All unsolicited FETCH
//     updates are required to include UID", rfc9051.txt:8082);
//   - mailbox names are UTF-8 both ways, not modified UTF-7 ("mailbox
//     names are encoded in Net-Unicode", rfc9051.txt:945), and quoted strings
//     may carry UTF-8 (Writer.utf8);
//   - LIST marks a name without a mailbox \NonExistent (LIST-EXTENDED's
//     attribute, the one RFC 9051's LIST knows, rfc9051.txt:3059);
//   - STATUS DELETED is there with QUOTA switched off (rfc9051.txt:8024).
//
// What IMAP4rev2 folded in (NAMESPACE, UNSELECT, UIDPLUS, ESEARCH and
// more, rfc9051.txt:8015-8022) is the rest of the capability list; when
// one of those is switched off (imapd_disable) the server is no IMAP4rev2
// server and does not advertise it (rev2Parts).
// conformance/IMAP4REV2.md goes through RFC 9051 Appendix E item by item.

// rev2Parts are the capabilities IMAP4rev2 folds in (ESEARCH, LIST-EXTENDED
// and the others of rfc9051.txt:8015-8022) that can be switched off on
// their own, and AUTH=PLAIN, which every IMAP4rev2 server "MUST also
// implement" (rfc9051.txt:1240); IMAP4rev2 is off while any is.
var rev2Parts = []string{"ENABLE", "ESEARCH", "UIDPLUS", "MOVE", "UNSELECT", "NAMESPACE", "IDLE", "SASL-IR",
	"LIST-EXTENDED", "LIST-STATUS", "SPECIAL-USE", "BINARY", "STATUS=SIZE", "LITERAL+", "AUTH=PLAIN"}

// rev2Capable reports whether IMAP4rev2 is on for this connection.
func (c *Conn) rev2Capable() bool {
	if c.disabled["IMAP4REV2"] {
		return false
	}
	for _, p := range rev2Parts {
		if c.disabled[p] {
			return false
		}
	}
	return true
}

// enableRev2 switches the session to IMAP4rev2 ("ENABLE IMAP4rev2",
// rfc9051.txt:7870-7871); it reports whether it did.
func (c *Conn) enableRev2() bool {
	if c.rev2 || !c.rev2Capable() {
		return false
	}
	c.rev2 = true
	c.w.Lock()
	c.w.utf8 = true
	c.w.Unlock()
	return true
}

// mailboxName renders a stored (UTF-8) mailbox name for the wire: modified
// UTF-7 for IMAP4rev1 (rfc3501.txt:1045), UTF-8 after ENABLE IMAP4rev2.
func (c *Conn) mailboxName(name string) string {
	if c.rev2 {
		return name
	}
	return encodeMUTF7(name)
}

// decodeName converts a wire mailbox name (or LIST reference or pattern)
// to UTF-8: modified UTF-7 decoded for IMAP4rev1 (raw UTF-8 accepted as
// well); after ENABLE IMAP4rev2 the name is UTF-8 as sent, "&" a plain
// character (modified UTF-7 is "only used for backward compatibility with
// IMAP4rev1 implementations", rfc9051.txt:7897-7900).
func (c *Conn) decodeName(s string) (string, error) {
	if !c.rev2 {
		return decodeMUTF7(s)
	}
	if !storableName(s) {
		return "", errMUTF7
	}
	return s, nil
}

// netUnicode reports whether a new mailbox name is Net-Unicode (NFC): an
// IMAP4rev2 server "MUST prohibit the creation of 8-bit mailbox names that
// do not comply with Net-Unicode" (rfc9051.txt:948). We do not
// normalise (that would make SELECT of the name sent open another one, or
// need OLDNAME, rfc9051.txt:1790). Checked after ENABLE IMAP4rev2
// only: what IMAP4rev1 clients may create does not change.
func netUnicode(name string) bool { return norm.NFC.IsNormalString(name) }

// writeSelectList writes SELECT's untagged LIST of the selected mailbox
// for an IMAP4rev2 session: "The server MUST return a LIST response with
// the mailbox name.  The list of mailbox attributes MUST be accurate"
// (rfc9051.txt:1787): the attributes a LIST of the name returns. The
// caller holds the writer lock; mbs are the user's mailboxes.
func (c *Conn) writeSelectList(mbs []store.MailboxStatus, name string) {
	var attrs []string
	t := newListTree(mbs, nil)
	for i := range t.nodes {
		if n := &t.nodes[i]; n.name == name {
			attrs = c.listAttrs(&listReq{}, n, nil)
		}
	}
	// mbs are read after the mailbox was found; should it be gone by
	// then, its LIST still goes out (without attributes) and the next
	// poll ends the selection.
	w := c.Writer()
	w.Raw("* LIST (" + strings.Join(attrs, " ") + `) "/" `)
	w.String(c.mailboxName(name))
	w.CRLF()
}
