package imapd

// FETCH and UID FETCH (RFC 3501 §6.4.5, §6.4.8, responses §7.4.2; OBJECTID
// items RFC 8474 §5). One store.Fetch per command reading only the columns
// the items need; responses are written straight into the buffered Writer.

import (
	"bufio"
	"bytes"
	"errors"
	"slices"
	"strconv"
	"strings"

	"decimail/server/message"
	"decimail/server/store"
)

func init() {
	register("FETCH", cmdSpec{states: selected, fn: func(c *Conn, cmd *Command) error { return cmdFetch(c, cmd, false) }})
	register("UID FETCH", cmdSpec{states: selected, fn: func(c *Conn, cmd *Command) error { return cmdFetch(c, cmd, true) }})
}

// cmdFetch implements FETCH (rfc3501.txt:2992) and UID FETCH (rfc3501.txt:3332).
//
// Implicit \Seen (rfc3501.txt:3156): the messages are fetched first (with
// their flags), the responses carry the flags with \Seen added, and then ONE
// StoreFlags sets \Seen on those that lacked it. Setting it before the fetch
// would make a message leave a view defined by UNSEEN (the "Unread" query
// mailbox) inside the StoreFlags transaction, so FETCH BODY[] there would
// return nothing. If StoreFlags fails the command ends NO [SERVERBUG].
func cmdFetch(c *Conn, cmd *Command, uid bool) error {
	if a := cmd.Args; len(a) == 3 && a[1].Kind == Atom && strings.EqualFold(a[1].S, "PREVIEW") && previewMods(a[2]) {
		// FETCH n PREVIEW (LAZY): one fetch-att with its modifier
		// (rfc8970.txt:345-346), not fetch-modifiers.
		cmd.Args = []Value{a[0], {Kind: List, List: a[1:]}}
	}
	if len(cmd.Args) != 2 && (len(cmd.Args) != 3 || !c.capable("CONDSTORE")) {
		return Syntax("FETCH needs a sequence set and fetch items")
	}
	req, err := c.parseFetchItems(cmd.Args[1])
	if err != nil {
		return err
	}
	vanished := false
	if len(cmd.Args) == 3 {
		if req.changedSince, vanished, err = c.fetchModifiers(cmd.Args[2], uid); err != nil {
			return err
		}
		if !req.modseq {
			// CHANGEDSINCE "implicitly adds the MODSEQ FETCH message data
			// item" (rfc7162.txt:877-878).
			req.modseq = true
			req.items = append(req.items, fetchItem{kind: itemModSeq})
		}
	}
	uids, err := c.resolveSet(cmd.Args[0], uid)
	if err != nil {
		return err
	}
	if req.modseq {
		// FETCH MODSEQ and CHANGEDSINCE enable CONDSTORE (rfc7162.txt:377-380).
		if err := c.enableCondstore(); err != nil {
			return err
		}
	}
	if vanished {
		// "before any FETCH responses" (rfc7162.txt:1714-1716).
		known, err := c.argSet(cmd.Args[0])
		if err != nil {
			return err
		}
		if err := c.writeVanishedEarlier(known, req.changedSince, 0); err != nil {
			return err
		}
	}
	return c.fetchUIDs(uids, req, uid)
}

// fetchModifiers parses FETCH's modifier list: CHANGEDSINCE n
// (chgsince-fetch-mod, rfc7162.txt:2475-2481) and, for UID FETCH in a
// session that enabled QRESYNC, VANISHED (rexpunges-fetch-mod,
// rfc7162.txt:2639): "NOT allowed with a FETCH command", only after
// "ENABLE QRESYNC", and "MUST only be specified together with the
// CHANGEDSINCE UID FETCH modifier" (rfc7162.txt:1693-1704); each at most
// once (RFC 4466).
func (c *Conn) fetchModifiers(v Value, uid bool) (changedSince int64, vanished bool, err error) {
	if v.Kind != List || len(v.List) == 0 {
		return 0, false, Syntax("(CHANGEDSINCE mod-sequence) expected")
	}
	changedSince = -1
	for l := v.List; len(l) > 0; {
		if l[0].Kind != Atom {
			return 0, false, Syntax("fetch modifier expected")
		}
		switch name := strings.ToUpper(l[0].S); {
		case name == "CHANGEDSINCE" && changedSince < 0 && len(l) > 1:
			// 0 is taken too, though chgsince-fetch-mod names a
			// mod-sequence-value, 1 or more (rfc7162.txt:2479-2481,
			// 2550-2553): every message has a mod-sequence above it, and
			// data is "only returned for messages that have a
			// mod-sequence bigger than" it (rfc7162.txt:871-875): every
			// message, as Dovecot
			// answers. A client workaround (README): Thunderbird 153
			// sends "UID fetch 1:* (FLAGS) (CHANGEDSINCE 0)" after it
			// reset a folder's stored HIGHESTMODSEQ, and shows an error
			// on BAD.
			if changedSince, err = parseModifier(Value{Kind: List, List: l[:2]}, "CHANGEDSINCE", true); err != nil {
				return 0, false, err
			}
			l = l[2:]
		case name == "VANISHED" && !vanished && uid && c.qresync:
			vanished, l = true, l[1:]
		default:
			return 0, false, Syntax("unknown or repeated fetch modifier " + formatValue(l[0]))
		}
	}
	if changedSince < 0 {
		return 0, false, Syntax("VANISHED needs CHANGEDSINCE") // rfc7162.txt:1701-1704
	}
	return changedSince, vanished, nil
}

// fetchUIDs fetches the items of req for uids (of the view), as UID FETCH
// when uid.
func (c *Conn) fetchUIDs(uids []uint32, req *fetchRequest, uid bool) error {
	s := c.sel
	if len(uids) == 0 {
		return nil
	}
	setSeen := req.seen && !s.readOnly // EXAMINE never changes flags ("No changes to the permanent state", rfc3501.txt:1870-1872)
	f := fetcher{c: c, w: c.Writer(), req: req, uid: uid, setSeen: setSeen}
	if (req.cols(setSeen) == store.FetchCols{Flags: true}) && s.view.KeepsFlags() {
		if err := f.fromView(uids); err != nil {
			return err
		}
		return f.served(uids)
	}
	if fc := req.cols(setSeen); fc.IsMeta() && !setSeen && req.changedSince < 0 && s.view.KeepsFlags() && s.view.KeepsIDs() {
		if ok, err := f.fromMeta(uids, fc); ok || err != nil {
			if err != nil {
				return err
			}
			return f.served(uids)
		}
	}
	if len(uids) == 1 && !setSeen && textOnly(req.cols(setSeen)) {
		// One message's text: the process's text cache or one read by id,
		// no membership (store.FetchText); a message deleted since goes
		// the way below.
		if id := s.view.ID(uids[0]); id != 0 {
			h, b, err := c.Store().FetchText(c.Ctx(), s.mb.Box(), id)
			if err == nil {
				f.w.Lock()
				err = f.row(&store.FetchRow{UID: uids[0], MessageID: id, Header: h, Body: b})
				f.w.Unlock()
				return err
			} else if !errors.Is(err, store.ErrNotFound) {
				return err
			}
		}
	}
	read := uids
	if len(uids) > 1 && !setSeen && textOnly(req.cols(setSeen)) {
		// Several messages' texts: those the process's text cache holds
		// are served from it, the others read together below.
		var err error
		if read, err = f.fromTextCache(uids); err != nil {
			return err
		}
	}
	// A message the client still has but the mailbox no longer holds (it
	// left a view, by this session's STORE or another's; or another
	// session expunged it, not yet announced) is served from the message
	// itself, by id, until its EXPUNGE is sent: RFC 2180 §4.1.1 lets the
	// server serve it, §4.1.2 answer NO; leaving it out with OK is neither.
	// One the view does not know is gone yet shows as a missing row: a
	// read of the store's changes finds it, and it is served after the
	// others (FETCH responses may come in any order).
	f.w.Lock()
	var err error
	if len(read) > 0 {
		err = c.Store().FetchHeld(c.Ctx(), s.mb.Box(), read, s.view.Gone(read, false), req.cols(setSeen), f.row)
	}
	if err == nil && len(f.got) < len(uids) {
		known := s.view.Gone(uids, false)
		if err = c.syncSelected(true); err == nil {
			late := c.sel.view.Gone(f.missing(uids), false)
			late = heldMinus(late, known)
			err = c.Store().FetchHeld(c.Ctx(), s.mb.Box(), late.UIDs, late, req.cols(setSeen), f.row)
		}
	}
	f.w.Unlock()
	var st *Status
	if err != nil && !errors.As(err, &st) {
		return err
	}
	// A NO for one message (BINARY's UNKNOWN-CTE) still sets \Seen on
	// those whose responses went out saying so.
	if len(f.newSeen) > 0 {
		if err := f.storeSeen(); err != nil {
			return err
		}
	}
	if err != nil {
		return err
	}
	return f.served(uids)
}

// fromTextCache serves the messages of uids whose texts the process's text
// cache holds (store.CachedText, by the id the view keeps) and returns the
// others, to be read. A FETCH of the same messages' bodies by a second
// client (phone and desktop both downloading new mail), or after a client
// read them one by one, costs no read of Postgres.
func (f *fetcher) fromTextCache(uids []uint32) ([]uint32, error) {
	v, b := f.c.sel.view, f.c.sel.mb.Box()
	var rest []uint32
	f.w.Lock()
	defer f.w.Unlock()
	for _, u := range uids {
		id := v.ID(u)
		if id == 0 {
			rest = append(rest, u)
			continue
		}
		h, body, ok := f.c.Store().CachedText(b, id)
		if !ok {
			rest = append(rest, u)
			continue
		}
		if err := f.row(&store.FetchRow{UID: u, MessageID: id, Header: h, Body: body}); err != nil {
			return nil, err
		}
	}
	return rest, nil
}

// textOnly: the items need the message's header or body and nothing else.
func textOnly(fc store.FetchCols) bool {
	return (fc.Header || fc.Body) && fc == store.FetchCols{Header: fc.Header, Body: fc.Body}
}

// missing returns the uids no row was served for.
func (f *fetcher) missing(uids []uint32) []uint32 {
	got := slices.Clone(f.got)
	slices.Sort(got)
	var out []uint32
	for _, u := range uids {
		if _, ok := slices.BinarySearch(got, u); !ok {
			out = append(out, u)
		}
	}
	return out
}

// heldMinus returns the pairs of h whose UIDs are not in x.
func heldMinus(h, x store.Held) store.Held {
	var out store.Held
	for i, u := range h.UIDs {
		if !slices.Contains(x.UIDs, u) {
			out.UIDs, out.IDs = append(out.UIDs, u), append(out.IDs, h.IDs[i])
		}
	}
	return out
}

// served answers a FETCH some of whose messages had no data: deleted
// everywhere since the client was told of them, their EXPUNGE not yet
// sent. The others were served; the tagged reply is NO [EXPUNGEISSUED]
// (RFC 2180 §4.1.2; EXPUNGEISSUED: "Someone else has issued an EXPUNGE
// for the same mailbox", rfc5530.txt:202-205).
//
// Not for UID FETCH: a UID that names no message is no error there, and the
// message's EXPUNGE goes out with this command's response (EXPUNGE may be
// sent during UID commands, rfc3501.txt:4053-4063), as Dovecot does.
func (f *fetcher) served(uids []uint32) error {
	if f.uid || len(f.got) >= len(uids) {
		return nil
	}
	for _, u := range f.missing(uids) {
		if f.c.sel.view.Seq(u) != 0 {
			return No(CodeExpungeIssued, "some of the requested messages no longer exist")
		}
	}
	return nil
}

// fromView answers FETCH (UID FLAGS) — a client's resync of a mailbox it
// has cached — from the flags the view keeps, after bringing the view up to
// date with the store (one ChangesSince: as fresh as a query, without
// reading 10,000 rows). Updates found are announced first, EXPUNGE excepted
// (rfc3501.txt:4053). Messages another session took out of the mailbox
// (not yet announced) are read by id: the view does not follow their
// flags; those this session's own command took out, it does.
func (f *fetcher) fromView(uids []uint32) error {
	if err := f.c.pollSelected(false, true); err != nil {
		return err
	}
	v := f.c.sel.view
	others, err := f.c.othersFlags(uids)
	if err != nil {
		return err
	}
	f.w.Lock()
	defer f.w.Unlock()
	if len(others) == 0 && slices.Equal(uids, v.UIDs()) {
		// The whole view (1:*, a resync): walked by index, without a
		// search for each message's flags and sequence number.
		for i, u := range uids {
			if err := f.rowSeq(&store.FetchRow{UID: u, Flags: v.FlagsAt(i, true)}, uint32(i+1)); err != nil {
				return err
			}
		}
		return nil
	}
	for _, u := range uids {
		fl, ok := v.Flags(u)
		if of, other := others[u]; other {
			fl, ok = derefFlags(of)
		}
		if !ok {
			continue
		}
		if err := f.row(&store.FetchRow{UID: u, Flags: fl}); err != nil {
			return err
		}
	}
	return nil
}

// fromMeta answers a FETCH of flags and unchanging data (size, dates,
// ENVELOPE, BODYSTRUCTURE: store.FetchCols.IsMeta), what a client lists a
// mailbox with, from the view's flags, brought up to date with the store
// first as fromView does, and the process's cache of the rest
// (store.FetchMeta): no round trip when the view is current and the
// messages were read before. Not when a message is gone from the mailbox
// (its EXPUNGE not sent yet): the caller's path serves those.
func (f *fetcher) fromMeta(uids []uint32, fc store.FetchCols) (bool, error) {
	if err := f.c.syncSelected(true); err != nil {
		return false, err
	}
	v := f.c.sel.view
	ids := make([]int64, 0, len(uids))
	us := uids
	for i, u := range uids {
		if v.Expunged(u) {
			// Deleted through this process: no row, as the read by id
			// below would find (the caller says NO [EXPUNGEISSUED] for
			// FETCH); otherwise that read serves it.
			if v.IsHeld(u) || !f.c.Store().Deleted(v.Gone([]uint32{u}, false).IDs) {
				return false, nil
			}
			if len(us) == len(uids) {
				us = slices.Clone(uids[:i])
			}
			continue
		}
		id := v.ID(u)
		if id == 0 {
			return false, nil
		}
		ids = append(ids, id)
		if len(us) < len(uids) {
			us = append(us, u)
		}
	}
	f.w.Lock()
	defer f.w.Unlock()
	err := f.c.Store().FetchMeta(f.c.Ctx(), f.c.sel.mb.Box(), us, ids, fc, func(r *store.FetchRow) error {
		if fc.Flags {
			fl, ok := v.Flags(r.UID)
			if !ok {
				return nil
			}
			r.Flags = fl
		}
		return f.row(r)
	})
	return true, err
}

// othersFlags reads the current flags of the messages among uids that
// another session took out of the mailbox (their EXPUNGE not sent yet):
// the view does not follow them (it follows those this session's own
// command took out). A message deleted meanwhile maps to nil.
func (c *Conn) othersFlags(uids []uint32) (map[uint32]*store.Flags, error) {
	v := c.sel.view
	if len(v.gone) == 0 {
		return nil, nil
	}
	var others map[uint32]*store.Flags
	for _, u := range uids {
		if v.Expunged(u) && !v.IsHeld(u) {
			if others == nil {
				others = map[uint32]*store.Flags{}
			}
			others[u] = nil
		}
	}
	if others == nil {
		return nil, nil
	}
	h := v.Gone(sortedKeysOf(others), false)
	if len(h.IDs) == 0 || c.Store().Deleted(h.IDs) {
		// Deleted through this process: no flags, as the read would say
		// (issue 13: under 50 sessions expunging, one SEARCH in ten read
		// them).
		return others, nil
	}
	err := c.Store().FetchHeld(c.Ctx(), c.sel.mb.Box(), h.UIDs, h, store.FetchCols{Flags: true}, func(r *store.FetchRow) error {
		fl := r.Flags // r is reused after fn returns
		others[r.UID] = &fl
		return nil
	})
	return others, err
}

func derefFlags(f *store.Flags) (store.Flags, bool) {
	if f == nil {
		return store.Flags{}, false
	}
	return *f, true
}

// fetcher writes the FETCH responses of one command.
type fetcher struct {
	c       *Conn
	w       *Writer
	req     *fetchRequest
	uid     bool
	setSeen bool
	num     []byte // scratch for numbers and dates
	raw     []byte // scratch for header+body of part sections

	newSeen []uint32               // messages whose \Seen this command sets
	shown   map[uint32]store.Flags // the flags sent for them
	got     []uint32               // messages served
}

// row writes "* <seq> FETCH (...)" for one message (rfc3501.txt:4071).
func (f *fetcher) row(r *store.FetchRow) error {
	seq := f.c.sel.view.Seq(r.UID)
	if seq == 0 {
		return nil
	}
	return f.rowSeq(r, seq)
}

// rowSeq is row of the message at sequence number seq.
func (f *fetcher) rowSeq(r *store.FetchRow, seq uint32) error {
	f.got = append(f.got, r.UID)
	if f.req.changedSince >= 0 && r.ModSeq <= f.req.changedSince {
		return nil // "only returned for messages that have a mod-sequence bigger than" it (rfc7162.txt:871-875)
	}
	// BINARY data is decoded before the response starts: an encoding it
	// cannot undo fails the command (binary.go).
	bin, err := f.binaries(r)
	if err != nil {
		return err
	}
	seeing := f.setSeen && !r.Flags.Seen
	if seeing {
		r.Flags.Seen = true
		f.newSeen = append(f.newSeen, r.UID)
		if f.shown == nil {
			f.shown = map[uint32]store.Flags{}
		}
		f.shown[r.UID] = r.Flags
	}
	if f.req.hasFlags || seeing {
		// Flags read from the store may carry a keyword whose change the
		// session has not polled yet: FLAGS first (keywords.go).
		f.c.announceKeywords(r.Flags.Keywords)
	}
	w := f.w
	w.Untagged()
	f.number(uint64(seq))
	w.Raw(" FETCH (")
	sp := false
	if f.uid && !f.req.hasUID { // UID FETCH always reports the UID (rfc3501.txt:3397)
		w.Raw("UID ")
		f.number(uint64(r.UID))
		sp = true
	}
	raw := f.raw[:0]
	for i := range f.req.items {
		if sp {
			w.SP()
		}
		sp = true
		it := &f.req.items[i]
		switch it.kind {
		case itemUID:
			w.Raw("UID ")
			f.number(uint64(r.UID))
		case itemFlags:
			f.flags(r)
		case itemInternalDate: // date-time, rfc3501.txt:4713
			w.Raw("INTERNALDATE ")
			f.num = r.InternalDate.AppendFormat(f.num[:0], `"02-Jan-2006 15:04:05 -0700"`)
			f.bytes(f.num)
		case itemSaveDate: // "SAVEDATE" SP (date-time / nil), rfc8514.txt:265; in UTC, the zone SEARCH SAVEDON compares in
			if r.SaveDate == nil { // a message the session holds after it left the mailbox
				w.Raw("SAVEDATE NIL")
				break
			}
			w.Raw("SAVEDATE ")
			f.num = r.SaveDate.UTC().AppendFormat(f.num[:0], `"02-Jan-2006 15:04:05 -0700"`)
			f.bytes(f.num)
		case itemPreview: // msg-att-dynamic, rfc8970.txt:348; NIL only for LAZY (rfc8970.txt:185-188)
			w.Raw("PREVIEW ")
			w.NString(r.Preview.String, r.Preview.Valid)
		case itemSize:
			w.Raw("RFC822.SIZE ")
			f.number(uint64(r.Size))
		case itemEnvelope:
			w.Raw("ENVELOPE ")
			f.bytes(r.Envelope)
		case itemBody:
			w.Raw("BODY ")
			f.bytes(r.BodySimple)
		case itemBodyStructure:
			w.Raw("BODYSTRUCTURE ")
			f.bytes(r.BodyStructure)
		case itemEmailID: // EMAILID, rfc8474.txt:289
			w.Raw("EMAILID (" + f.c.Store().ObjectIDs().Email(r.MessageID) + ")")
		case itemThreadID: // rfc8474.txt:343: NIL when there is no thread
			if r.ThreadID == 0 {
				w.Raw("THREADID NIL")
				break
			}
			w.Raw("THREADID (" + f.c.Store().ObjectIDs().Thread(r.ThreadID) + ")")
		case itemSection:
			raw = f.section(it, r, raw)
		case itemBinary, itemBinarySize:
			f.binary(it, bin[i])
		case itemModSeq: // fetch-mod-resp, rfc7162.txt:2488
			w.Raw("MODSEQ (")
			f.number(uint64(r.ModSeq))
			w.Raw(")")
			f.c.sentModSeq = max(f.c.sentModSeq, r.ModSeq)
		}
	}
	f.raw = raw
	if seeing && !f.req.hasFlags { // rfc3501.txt:3156-3157: changed flags "SHOULD be included as part of the FETCH responses"
		w.SP()
		f.flags(r)
	}
	w.Raw(")")
	w.CRLF()
	return nil
}

func (f *fetcher) flags(r *store.FetchRow) {
	f.w.Raw("FLAGS ")
	f.w.FlagSet(r.Flags, f.c.showsRecent(r.UID))
}

// section writes one BODY[...] / RFC822* item. raw is the reassembled
// message of this row (built on first need) and is returned for reuse.
func (f *fetcher) section(it *fetchItem, r *store.FetchRow, raw []byte) []byte {
	f.w.Raw(it.name)
	f.w.SP()
	var a, b []byte // the data is a followed by b
	switch {
	case it.part == nil && it.spec == "":
		a, b = r.Header, r.Body
	case it.part == nil && it.spec == "HEADER":
		a = r.Header
	case it.part == nil && it.spec == "TEXT":
		a = r.Body
	default:
		src := r.Header // top-level HEADER.FIELDS[.NOT] needs only the header
		if it.part != nil {
			if len(raw) == 0 {
				raw = append(append(raw, r.Header...), r.Body...)
			}
			src = raw
		}
		data, err := message.Section(src, it.part, it.spec, it.fields)
		if err != nil || data == nil { // a part that does not exist (rfc9051.txt nstring)
			f.w.Raw("NIL")
			return raw
		}
		a = data
	}
	if it.partial { // "fetch a substring", rfc3501.txt:3128-3154
		a, b = cut(a, b, uint64(it.origin), uint64(it.count))
	}
	f.literal(a, b)
	return raw
}

// cut returns the octets [origin, origin+count) of a followed by b, clamped
// to the end.
func cut(a, b []byte, origin, count uint64) ([]byte, []byte) {
	if la := uint64(len(a)); origin >= la {
		origin -= la
		if origin >= uint64(len(b)) {
			return nil, nil
		}
		b = b[origin:]
		return nil, b[:min(count, uint64(len(b)))]
	}
	a = a[origin:]
	if count <= uint64(len(a)) {
		return a[:count], nil
	}
	return a, b[:min(count-uint64(len(a)), uint64(len(b)))]
}

// literal writes a followed by b as one literal, or "" when both are empty
// (a partial beyond the end: "an empty string is returned", rfc3501.txt:3132-3133).
func (f *fetcher) literal(a, b []byte) {
	n := len(a) + len(b)
	if n == 0 {
		f.w.Raw(`""`)
		return
	}
	f.w.literalHeader(int64(n))
	writeNoNUL(f.w.bw, a)
	writeNoNUL(f.w.bw, b)
}

// writeNoNUL writes p with every NUL octet sent as 0x80. A literal is CHAR8,
// "any OCTET except NUL, %x00" (rfc3501.txt:4662-4663), but a message may
// hold NULs (a broken header field, a binary part sent unencoded): they go
// out as 0x80, as Dovecot sends them, so the size, the offsets of partial
// fetches and RFC822.SIZE stay right. The store keeps the message as it
// came; only BINARY (RFC 3516 literal8, not implemented) could send NULs.
func writeNoNUL(w *bufio.Writer, p []byte) {
	for len(p) > 0 {
		i := bytes.IndexByte(p, 0)
		if i < 0 {
			w.Write(p)
			return
		}
		w.Write(p[:i])
		w.WriteByte(0x80)
		p = p[i+1:]
	}
}

func (f *fetcher) number(n uint64) {
	f.num = strconv.AppendUint(f.num[:0], n, 10)
	f.bytes(f.num)
}

// bytes writes b raw, without converting it to a string (Writer.Raw takes a
// string; ENVELOPE and BODYSTRUCTURE are stored wire bytes).
func (f *fetcher) bytes(b []byte) {
	w := f.w
	w.bw.Write(b)
	if w.logf != nil && len(w.logb) < maxLogLineLen {
		w.logb = append(w.logb, b...)
	}
}

// storeSeen sets \Seen on the messages this FETCH showed as newly seen, in
// ONE StoreFlags. The session already reported their flags: Told keeps the
// post-command poll from repeating them, unless the store's flags differ
// from what was sent (another session changed them meanwhile).
func (f *fetcher) storeSeen() error {
	s := f.c.sel
	slices.Sort(f.newSeen)
	chs, err := f.c.Store().StoreFlagsHeld(f.c.Ctx(), s.mb.Box(), f.newSeen, s.view.Gone(f.newSeen, false),
		store.FlagsAdd, store.Flags{Seen: true})
	if err != nil {
		return err
	}
	s.dirty = true
	// Reading a message in Unread takes it out of the view: held until a
	// sync point, like a STORE's (storecmd.go ownChanges).
	f.c.ownChanges(chs)
	for _, ch := range chs {
		s.view.SetFlags(ch.UID, ch.Flags)
		// A CONDSTORE-aware client is not told here: the poll after the
		// command reports the new flags with their new mod-sequence, which
		// the responses above (written before the change) could not carry
		// (the server "MUST automatically include both UID and
		// mod-sequence data", rfc7162.txt:1421-1430).
		if sent, ok := f.shown[ch.UID]; ok && slices.Equal(sent.Names(), ch.Flags.Names()) && !f.c.condstoreAware() {
			s.view.Told(ch.UID, ch.ModSeq)
		}
	}
	return nil
}
