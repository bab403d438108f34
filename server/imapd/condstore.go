package imapd

// CONDSTORE (RFC 7162 §3.1): mod-sequences in FETCH, STORE, SEARCH,
// SELECT/EXAMINE and STATUS. The store keeps them (server/store/condstore.go);
// this file holds the session's side: whether the client is CONDSTORE-aware
// (it sent one of the "CONDSTORE enabling commands", rfc7162.txt:368-386), and the
// parsing of the command modifiers.

import (
	"strconv"
	"strings"
)

// condstoreAware reports whether this session sent a CONDSTORE enabling
// command: from then on the server "MUST then include mod-sequence data in
// all subsequent untagged FETCH responses" (rfc7162.txt:388-400).
// SELECT/EXAMINE report HIGHESTMODSEQ before that too (selectReportsModSeq).
func (c *Conn) condstoreAware() bool { return c.condstore }

// selectReportsModSeq reports whether SELECT/EXAMINE send
// "* OK [HIGHESTMODSEQ n]": on every successful one while CONDSTORE is
// advertised to the session, enabled or not. After a CONDSTORE enabling
// command it is required (rfc7162.txt:417-420); before one, RFC 7162
// §3.1.2 asks it of a server whose mailbox "supports the persistent
// storage of mod-sequences" when "opening a mailbox" (rfc7162.txt:422-428),
// as every mailbox here does, and its Example 1 answers a plain
// "A142 SELECT INBOX" with "[HIGHESTMODSEQ 715194045007]"
// (rfc7162.txt:476-487); only "some existing CONDSTORE servers" wait for
// an enabling command (rfc7162.txt:455-460). Thunderbird 153 with
// use_condstore uses CONDSTORE only with a mailbox whose plain SELECT
// carried it (conformance/TRANSCRIPTS.md "Thunderbird and CONDSTORE").
// Reporting it does not make the session CONDSTORE-aware: the server "MUST
// then include mod-sequence data" in FETCH responses only after an
// enabling command (rfc7162.txt:388-400).
// With CONDSTORE switched off (imapd_disable, imapd_disable:<user>) it is
// not sent.
func (c *Conn) selectReportsModSeq() bool {
	return c.condstoreAware() || c.capable("CONDSTORE")
}

// enableCondstore records one of the "CONDSTORE enabling commands"
// (rfc7162.txt:368-386).
// The first one with a mailbox selected "MUST cause the server to return
// HIGHESTMODSEQ" for it (rfc7162.txt:402-407), as an untagged OK before the
// command's own responses.
func (c *Conn) enableCondstore() error {
	if c.condstore {
		return nil
	}
	c.condstore = true
	if c.sel == nil {
		return nil
	}
	hm, err := c.Store().HighestModSeq(c.Ctx(), c.sel.mb.Box())
	if err != nil {
		return err
	}
	c.Untagged("OK [HIGHESTMODSEQ %d] highest mod-sequence", highestModSeq(hm))
	return nil
}

// highestModSeq is the HIGHESTMODSEQ reported for a mailbox whose
// counter is hm: at least 1, as the response code takes a
// mod-sequence-value, "1 <= n" (rfc7162.txt:2504, 2550-2553), and STATUS
// reports "the same value" (rfc7162.txt:1131-1137). A mailbox that never
// held a message has 0; 1 is below every modseq ever given out, as the
// store moves the sequence a million on at its first connection
// (store/gate.go afterRestart).
func highestModSeq(hm int64) int64 { return max(hm, 1) }

// parseModSeq parses mod-sequence-value (zero false) or
// mod-sequence-valzer (zero true): 1*DIGIT, "unsigned 63-bit values"
// (rfc7162.txt:297-300, 2550-2555).
func parseModSeq(v Value, zero bool) (int64, bool) {
	if v.Kind != Atom || v.S == "" || strings.TrimLeft(v.S, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.ParseUint(v.S, 10, 63)
	if err != nil || n == 0 && !zero {
		return 0, false
	}
	return int64(n), true
}

// parseModifier parses a parenthesised list holding one modifier name
// and its mod-sequence ("(CHANGEDSINCE 5)", "(UNCHANGEDSINCE 0)"), the only
// modifiers of FETCH and STORE this server knows (store-modifier,
// fetch-modifier, chgsince-fetch-mod: rfc7162.txt:2471-2473, 2475-2477,
// 2479-2481; RFC 4466 allows a list of several, each name at most once).
func parseModifier(v Value, name string, zero bool) (int64, error) {
	if v.Kind != List || len(v.List) != 2 || v.List[0].Kind != Atom || !strings.EqualFold(v.List[0].S, name) {
		return 0, Syntax("(" + name + " mod-sequence) expected")
	}
	n, ok := parseModSeq(v.List[1], zero)
	if !ok {
		return 0, Syntax("bad mod-sequence " + formatValue(v.List[1]))
	}
	return n, nil
}

// writeModSeq writes " MODSEQ (n)" (fetch-mod-resp, rfc7162.txt:2488).
func (c *Conn) writeModSeq(w *Writer, ms int64) {
	c.sentModSeq = max(c.sentModSeq, ms)
	w.Raw(" MODSEQ (")
	w.Number(uint64(ms))
	w.Raw(")")
}
