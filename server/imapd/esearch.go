package imapd

import (
	"strconv"
	"strings"

	"decimail/server/query"
)

// ESEARCH (RFC 4731): SEARCH and UID SEARCH with result options, answered
// by one "* ESEARCH" response instead of "* SEARCH". The options and the
// response are RFC 9051's (rfc9051.txt:6918-6919, search-return-opts),
// which folds in RFC 4731 and the SAVE option of SEARCHRES (searchres.go).
//
// ESORT (RFC 5267 §3) gives SORT the same options, answered in sort order
// (sort.go). CONTEXT=SEARCH and CONTEXT=SORT (RFC 5267 §4) add three
// options: CONTEXT, a hint (ignored, rfc5267.txt:275-278), PARTIAL
// (rfc5267.txt:544-549), and UPDATE, the live updates of the result
// (ctxupdate.go), refused with "* NO [NOUPDATE tag]" beyond the session's
// limits (rfc5267.txt:359-368), the other options honoured.

// searchReturn is a SEARCH's result options; nil: a plain SEARCH, answered
// "* SEARCH".
type searchReturn struct {
	min, max, all, count, save bool
	update                     bool      // UPDATE (ctxupdate.go)
	partial                    [2]uint32 // PARTIAL lo:hi, 1-based positions in the result; lo 0: none
}

// parseReturn reads "RETURN (option ...)" at the start of a SEARCH's
// arguments (search-return-opts, rfc9051.txt:6967-6968) and returns the
// arguments after it. Without ESEARCH "RETURN" is left to the search
// program, which does not know it: BAD.
//
// ext is the capability that brings RETURN (ESEARCH for SEARCH, ESORT for
// SORT), context the one of CONTEXT's options (CONTEXT=SEARCH, CONTEXT=SORT).
func (c *Conn) parseReturn(args []Value, ext, context string) (*searchReturn, []Value, error) {
	if len(args) == 0 || args[0].Kind != Atom || !strings.EqualFold(args[0].S, "RETURN") || !c.capable(ext) {
		return nil, args, nil
	}
	if len(args) < 2 || args[1].Kind != List {
		return nil, nil, Syntax("RETURN takes a list of result options")
	}
	r := &searchReturn{}
	opts := args[1].List
	for i := 0; i < len(opts); i++ {
		o := opts[i]
		if o.Kind != Atom {
			return nil, nil, Syntax("result option expected")
		}
		switch name := strings.ToUpper(o.S); {
		case (name == "CONTEXT" || name == "UPDATE" || name == "PARTIAL") && c.capable(context):
			switch name {
			case "UPDATE":
				r.update = true
			case "PARTIAL": // modifier-partial = "PARTIAL" SP partial-range (rfc5267.txt:640)
				i++
				if i == len(opts) || r.partial[0] != 0 || !parsePartialRange(opts[i], &r.partial) {
					return nil, nil, Syntax("PARTIAL takes one range lo:hi of positive numbers")
				}
			}
			continue
		}
		switch strings.ToUpper(o.S) {
		case "MIN":
			r.min = true
		case "MAX":
			r.max = true
		case "ALL":
			r.all = true
		case "COUNT":
			r.count = true
		case "SAVE":
			if !c.capable("SEARCHRES") {
				return nil, nil, Syntax("unknown result option SAVE")
			}
			r.save = true
		default:
			// "Any options not defined by extensions that the server
			// supports MUST be rejected with a BAD response"
			// (rfc9051.txt:3745-3746).
			return nil, nil, Syntax("unknown result option " + o.S)
		}
	}
	if r.all && r.partial[0] != 0 {
		// "either one PARTIAL, one ALL, or neither" (rfc5267.txt:551-553)
		return nil, nil, Syntax("PARTIAL and ALL exclude each other")
	}
	if !r.min && !r.max && !r.count && !r.save && r.partial[0] == 0 && !r.update {
		// "If the list of result options is empty, that requests the
		// server to return an ESEARCH response instead of the SEARCH
		// response.  This is equivalent to "(ALL)"" (rfc4731.txt:149-151).
		// CONTEXT, a hint the server "MAY ignore" (rfc5267.txt:275-278),
		// leaves it empty; UPDATE does not: RETURN (UPDATE) is answered
		// "* ESEARCH (TAG "t")" with no result, as by Dovecot (the updates
		// are about the result, "no interaction between UPDATE and any
		// other return options", rfc5267.txt:328-334).
		r.all = true
	}
	return r, args[2:], nil
}

// parsePartialRange reads partial-range = nz-number ":" nz-number, "500:400
// is the same as 400:500" (rfc5267.txt:642-645).
func parsePartialRange(v Value, r *[2]uint32) bool {
	a, b, ok := strings.Cut(v.S, ":")
	lo, err1 := strconv.ParseUint(a, 10, 32)
	hi, err2 := strconv.ParseUint(b, 10, 32)
	if v.Kind != Atom || !ok || err1 != nil || err2 != nil || lo == 0 || hi == 0 || a[0] == '+' || b[0] == '+' {
		return false
	}
	*r = [2]uint32{uint32(min(lo, hi)), uint32(max(lo, hi))}
	return true
}

// hits is the answer of one SEARCH, fed its matches in ascending order by
// both search paths (the store's and the view's): a plain SEARCH writes
// its "* SEARCH" line as they come; with result options they are counted
// and kept for the ESEARCH response and the saved result, written by
// finish.
type hits struct {
	w   *Writer
	uid bool
	ret *searchReturn

	n           int
	first, last [2]uint32  // (UID, sequence number) of the lowest and highest match
	nums        []uint32   // the matches in the response's numbering (ALL), or those PARTIAL asks for
	uids        []uint32   // the matches' UIDs (SAVE of all found messages)
	any         bool       // a plain SEARCH wrote a number
	modseq      int64      // > 0: the program had a MODSEQ key; the matches' highest mod-sequence
	found       []uint32   // UPDATE: every match's UID, ascending (ctxupdate.go)
	refused     string     // UPDATE refused: the text of NOUPDATE
	prog        query.Node // UPDATE: the program
}

func newHits(uid bool, ret *searchReturn) *hits { return &hits{uid: uid, ret: ret} }

// start begins the response, under w's lock.
func (h *hits) start(w *Writer) {
	h.w = w
	if h.ret == nil {
		w.Untagged()
		w.Raw("SEARCH") // rfc3501.txt:3927: "* SEARCH" even when nothing matched
	}
}

// writeHit adds one match: a plain SEARCH writes its number, the UID or
// the sequence number.
func (h *hits) writeHit(u, seq uint32) {
	num := seq
	if h.uid {
		num = u
	}
	if h.ret == nil {
		h.w.SP()
		h.w.Number(uint64(num))
		h.any = true
		return
	}
	if h.n == 0 {
		h.first = [2]uint32{u, seq}
	}
	h.last = [2]uint32{u, seq}
	h.n++
	if p := h.ret.partial; h.ret.all || p[0] != 0 && uint32(h.n) >= p[0] && uint32(h.n) <= p[1] {
		h.nums = append(h.nums, num)
	}
	if h.ret.save && h.savesAll() {
		h.uids = append(h.uids, u)
	}
	if h.ret.update {
		h.found = append(h.found, u)
	}
}

// savesAll: SAVE keeps every match unless MIN and/or MAX come without ALL
// and COUNT ("the "$" marker would contain a single message as returned in
// the MIN/MAX return item", rfc9051.txt:4085-4098).
func (h *hits) savesAll() bool {
	r := h.ret
	return r.all || r.count || !r.min && !r.max
}

// finish ends the response: the SEARCH line, or the ESEARCH response of
// the command tagged tag (esearch-response, rfc9051.txt:6546-6549). MIN,
// MAX and ALL are left out when nothing matched ("MUST NOT include the
// MIN result option", rfc4731.txt:98-100, 128-135), COUNT "MUST always be
// included" (rfc4731.txt:132-135); a UID SEARCH answers "with the UID
// indicator present" (rfc4731.txt:141-142). SAVE alone "suppresses any ESEARCH response"
// (rfc9051.txt:3800-3802).
func (h *hits) finish(tag string) {
	w, r := h.w, h.ret
	if r == nil {
		if h.modseq > 0 && h.any {
			// search-sort-mod-seq after the numbers: the server "MUST also append" it (rfc7162.txt:1109-1113, 2565-2566)
			w.Raw(" (MODSEQ ")
			w.Number(uint64(h.modseq))
			w.Raw(")")
		}
		w.CRLF()
		return
	}
	if !r.min && !r.max && !r.all && !r.count && r.partial[0] == 0 && !r.update {
		// SAVE alone: "In absence of any other SEARCH result option, the
		// SAVE result option also suppresses any ESEARCH response"
		// (rfc9051.txt:3800-3802); with UPDATE it is not alone.
		return
	}
	w.Untagged()
	w.Raw("ESEARCH (TAG ")
	w.String(tag)
	w.Raw(")")
	if h.uid {
		w.Raw(" UID")
	}
	pick := func(m [2]uint32) uint64 {
		if h.uid {
			return uint64(m[0])
		}
		return uint64(m[1])
	}
	if r.min && h.n > 0 {
		w.Raw(" MIN ")
		w.Number(pick(h.first))
	}
	if r.max && h.n > 0 {
		w.Raw(" MAX ")
		w.Number(pick(h.last))
	}
	if r.all && h.n > 0 {
		w.Raw(" ALL ")
		writeSeqSet(w, h.nums)
	}
	if p := r.partial; p[0] != 0 {
		// ret-data-partial = "PARTIAL" SP "(" partial-range SP
		// partial-results ")", NIL when no result is in the range
		// (rfc5267.txt:662-668)
		w.Raw(" PARTIAL (" + strconv.FormatUint(uint64(p[0]), 10) + ":" + strconv.FormatUint(uint64(p[1]), 10) + " ")
		if len(h.nums) == 0 {
			w.Raw("NIL")
		} else {
			writeSeqSet(w, h.nums)
		}
		w.Raw(")")
	}
	if r.count {
		w.Raw(" COUNT ")
		w.Number(uint64(h.n))
	}
	if h.modseq > 0 && h.n > 0 {
		// "the ESEARCH response containing the MODSEQ result option"
		// (rfc7162.txt:1208-1212)
		w.Raw(" MODSEQ ")
		w.Number(uint64(h.modseq))
	}
	w.CRLF()
	h.noUpdate(tag)
}

// noUpdate refuses UPDATE: "an untagged NO is generated during
// processing of the command with a response-code of NOUPDATE"
// (rfc5267.txt:361-366).
func (h *hits) noUpdate(tag string) {
	if !h.ret.update || h.refused == "" {
		return
	}
	h.w.Untagged()
	h.w.Raw("NO [NOUPDATE ")
	h.w.String(tag)
	h.w.Raw("] " + h.refused)
	h.w.CRLF()
}

// saved is the search result variable SAVE sets, "the list of messages
// found" (rfc9051.txt:4046-4049, and the MIN/MAX rules of savesAll): UIDs,
// ascending.
func (h *hits) saved() []uint32 {
	switch {
	case h.n == 0:
		return nil
	case h.savesAll():
		return h.uids
	}
	var out []uint32
	if h.ret.min {
		out = append(out, h.first[0])
	}
	if h.ret.max && (out == nil || h.last[0] != out[0]) {
		out = append(out, h.last[0])
	}
	return out
}

// writeSeqSet writes ascending numbers as a sequence-set of ranges
// ("2,10:15,21"): ALL is returned "using the sequence-set syntax"
// (rfc4731.txt:119-126).
func writeSeqSet(w *Writer, nums []uint32) { w.Raw(numSet(nums)) }
