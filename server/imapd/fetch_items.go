package imapd

// Parsing of FETCH data items (RFC 3501 §6.4.5, grammar rfc3501.txt:4748-4755
// and section rfc3501.txt:4975-4994; OBJECTID items RFC 8474 §5.3,
// rfc8474.txt:353ff).

import (
	"strconv"
	"strings"

	"decimail/server/store"
)

type itemKind uint8

const (
	itemUID itemKind = iota
	itemFlags
	itemInternalDate
	itemSize
	itemEnvelope
	itemBody          // BODY: non-extensible BODYSTRUCTURE (rfc3501.txt:3043)
	itemBodyStructure // BODYSTRUCTURE, rfc3501.txt:3163
	itemSection       // BODY[...], BODY.PEEK[...], RFC822, RFC822.HEADER, RFC822.TEXT
	itemEmailID       // EMAILID, rfc8474.txt:289
	itemThreadID      // THREADID, rfc8474.txt:312
	itemModSeq        // MODSEQ, fetch-mod-sequence (rfc7162.txt:2486)
	itemBinary        // BINARY[part], BINARY.PEEK[part] (RFC 9051 §6.4.5, from RFC 3516)
	itemBinarySize    // BINARY.SIZE[part]
	itemSaveDate      // SAVEDATE fetch-att, rfc8514.txt:263
	itemPreview       // PREVIEW [(LAZY)] fetch-att, rfc8970.txt:345-346
)

// fetchItem is one requested data item.
type fetchItem struct {
	kind    itemKind
	name    string   // response name of a section item, e.g. "BODY[1.MIME]<0>", "RFC822.TEXT"
	part    []int    // section part path; nil for the whole message
	spec    string   // "", "HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT", "MIME"
	fields  []string // HEADER.FIELDS(.NOT) names as the client sent them
	seen    bool     // sets \Seen implicitly (rfc3501.txt:3156)
	partial bool     // <origin.count> given, "fetch a substring" (rfc3501.txt:3128)
	lazy    bool     // PREVIEW (LAZY)
	origin  uint64
	count   uint64
}

// fetchRequest is a parsed FETCH item list.
type fetchRequest struct {
	items    []fetchItem
	hasUID   bool // UID was requested explicitly
	hasFlags bool // FLAGS was requested explicitly
	seen     bool // some item sets \Seen
	modseq   bool // MODSEQ was requested (or implied by CHANGEDSINCE)
	// changedSince >= 0: the CHANGEDSINCE modifier, data "only returned for
	// messages that have a mod-sequence bigger than" it (rfc7162.txt:871-878).
	changedSince int64
}

// Macros ALL, FAST, FULL, only valid alone (rfc3501.txt:4748, 3017-3039).
var fetchMacros = map[string][]string{
	"ALL":  {"FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"},
	"FAST": {"FLAGS", "INTERNALDATE", "RFC822.SIZE"},
	"FULL": {"FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"},
}

// parseFetchItems parses the item argument of FETCH: a macro, one item, or
// a parenthesised non-empty list of items.
func (c *Conn) parseFetchItems(v Value) (*fetchRequest, error) {
	var atoms []string
	lazy := map[int]bool{} // atoms[i] is PREVIEW with the LAZY modifier
	switch v.Kind {
	case Atom:
		if m, ok := fetchMacros[strings.ToUpper(v.S)]; ok {
			atoms = m
		} else {
			atoms = []string{v.S}
		}
	case List:
		if len(v.List) == 0 { // rfc3501.txt:4749: at least one fetch-att
			return nil, Syntax("empty fetch item list")
		}
		for i, x := range v.List {
			if x.Kind == List && i > 0 && strings.EqualFold(v.List[i-1].S, "PREVIEW") && v.List[i-1].Kind == Atom {
				// "PREVIEW" [SP "(" preview-mod *(SP preview-mod) ")"], preview-mod = "LAZY" (rfc8970.txt:345-350)
				if !previewMods(x) {
					return nil, Syntax("PREVIEW modifiers: (LAZY)")
				}
				lazy[len(atoms)-1] = true
				continue
			}
			if x.Kind != Atom {
				return nil, Syntax("fetch item expected")
			}
			atoms = append(atoms, x.S)
		}
	default:
		return nil, Syntax("fetch items expected")
	}
	req := &fetchRequest{items: make([]fetchItem, 0, len(atoms)), changedSince: -1}
	for i, a := range atoms {
		it, err := c.parseFetchItem(a)
		if err != nil {
			return nil, err
		}
		it.lazy = lazy[i]
		switch it.kind {
		case itemUID:
			req.hasUID = true
		case itemFlags:
			req.hasFlags = true
		case itemModSeq:
			req.modseq = true
		}
		req.seen = req.seen || it.seen
		req.items = append(req.items, it)
	}
	return req, nil
}

// parseFetchItem parses one fetch-att (case-insensitive, rfc3501.txt:4751).
func (c *Conn) parseFetchItem(a string) (fetchItem, error) {
	if i := strings.IndexByte(a, '['); i >= 0 {
		if strings.HasPrefix(strings.ToUpper(a), "BINARY") && !c.capable("BINARY") {
			return fetchItem{}, Bad("", "unknown fetch item "+a)
		}
		return parseSectionItem(a, i)
	}
	switch strings.ToUpper(a) {
	case "UID":
		return fetchItem{kind: itemUID}, nil
	case "FLAGS":
		return fetchItem{kind: itemFlags}, nil
	case "INTERNALDATE":
		return fetchItem{kind: itemInternalDate}, nil
	case "RFC822.SIZE":
		return fetchItem{kind: itemSize}, nil
	case "ENVELOPE":
		return fetchItem{kind: itemEnvelope}, nil
	case "BODY":
		return fetchItem{kind: itemBody}, nil
	case "BODYSTRUCTURE":
		return fetchItem{kind: itemBodyStructure}, nil
	case "RFC822": // = BODY[] (rfc3501.txt:3179)
		return fetchItem{kind: itemSection, name: "RFC822", seen: true}, nil
	case "RFC822.HEADER": // = BODY.PEEK[HEADER] (rfc3501.txt:3183)
		return fetchItem{kind: itemSection, name: "RFC822.HEADER", spec: "HEADER"}, nil
	case "RFC822.TEXT": // = BODY[TEXT] (rfc3501.txt:3199)
		return fetchItem{kind: itemSection, name: "RFC822.TEXT", spec: "TEXT", seen: true}, nil
	case "EMAILID":
		if c.capable("OBJECTID") {
			return fetchItem{kind: itemEmailID}, nil
		}
	case "THREADID":
		if c.capable("OBJECTID") {
			return fetchItem{kind: itemThreadID}, nil
		}
	case "MODSEQ":
		if c.capable("CONDSTORE") {
			return fetchItem{kind: itemModSeq}, nil
		}
	case "SAVEDATE":
		if c.capable("SAVEDATE") {
			return fetchItem{kind: itemSaveDate}, nil
		}
	case "PREVIEW":
		if c.capable("PREVIEW") {
			return fetchItem{kind: itemPreview}, nil
		}
	}
	return fetchItem{}, Bad("", "unknown fetch item "+a)
}

// previewMods reports whether v is a list of PREVIEW modifiers (preview-mod); LAZY is
// the one there is (rfc8970.txt:350).
func previewMods(v Value) bool {
	for _, m := range v.List {
		if m.Kind != Atom || !strings.EqualFold(m.S, "LAZY") {
			return false
		}
	}
	return v.Kind == List && len(v.List) > 0
}

// parseSectionItem parses "BODY[section]<partial>" or the BODY.PEEK form;
// the reader delivers it as one atom with the section's raw text
// (wire_read.go readSection). lb is the index of "[".
func parseSectionItem(a string, lb int) (fetchItem, error) {
	it := fetchItem{kind: itemSection}
	switch strings.ToUpper(a[:lb]) {
	case "BODY":
		it.seen = true // "The \Seen flag is implicitly set", rfc3501.txt:3156
	case "BODY.PEEK": // rfc3501.txt:3159
	case "BINARY", "BINARY.PEEK", "BINARY.SIZE":
		return parseBinaryItem(a, lb)
	default:
		return it, Bad("", "unknown fetch item "+a)
	}
	rb := strings.LastIndexByte(a, ']')
	if rb < lb {
		return it, Syntax("unterminated section")
	}
	if err := it.parseSection(a[lb+1 : rb]); err != nil {
		return it, err
	}
	if err := it.parsePartial(a[rb+1:]); err != nil {
		return it, err
	}
	it.name = it.responseName()
	return it, nil
}

// parseBinaryItem parses "BINARY" ["." ("PEEK" / "SIZE")] section-binary
// [partial], section-binary = "[" [section-part] "]" (fetch-att,
// rfc9051.txt:6557ff; section-binary, rfc9051.txt:6987): BINARY.SIZE takes
// no partial. BINARY sets \Seen as BODY does.
func parseBinaryItem(a string, lb int) (fetchItem, error) {
	pre := strings.ToUpper(a[:lb])
	it := fetchItem{kind: itemBinary, seen: pre == "BINARY"}
	if pre == "BINARY.SIZE" {
		it.kind = itemBinarySize
	}
	rb := strings.IndexByte(a, ']')
	if rb < lb {
		return it, Syntax("unterminated section")
	}
	if err := it.parseSection(a[lb+1 : rb]); err != nil || it.spec != "" {
		return it, Syntax("BINARY takes part numbers only: " + a)
	}
	if err := it.parsePartial(a[rb+1:]); err != nil || it.partial && it.kind == itemBinarySize {
		return it, Syntax("invalid partial " + a[rb+1:])
	}
	it.name = strings.TrimSuffix(pre, ".PEEK") + partName(it.part) // BINARY.PEEK answers as BINARY
	if it.partial {
		it.name += "<" + strconv.FormatUint(uint64(it.origin), 10) + ">"
	}
	return it, nil
}

// partName renders "[1.2]".
func partName(part []int) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, p := range part {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(strconv.Itoa(p))
	}
	b.WriteByte(']')
	return b.String()
}

// parseSection parses section-spec (rfc3501.txt:4975-4994).
func (it *fetchItem) parseSection(s string) error {
	for s != "" && s[0] >= '0' && s[0] <= '9' {
		k := 0
		for k < len(s) && s[k] >= '0' && s[k] <= '9' {
			k++
		}
		n, err := strconv.ParseUint(s[:k], 10, 31)
		if err != nil || s[0] == '0' { // nz-number, rfc3501.txt:4981
			return Syntax("invalid section part " + s[:k])
		}
		it.part = append(it.part, int(n))
		s = s[k:]
		if s == "" {
			break
		}
		if s[0] != '.' || len(s) == 1 {
			return Syntax("invalid section")
		}
		s = s[1:]
	}
	up := strings.ToUpper(s)
	switch {
	case up == "" || up == "HEADER" || up == "TEXT":
		it.spec = up
	case up == "MIME" && it.part != nil: // rfc3501.txt:4993, only after a part
		it.spec = up
	case strings.HasPrefix(up, "HEADER.FIELDS.NOT "):
		it.spec = "HEADER.FIELDS.NOT"
		return it.parseHeaderList(s[len("HEADER.FIELDS.NOT "):])
	case strings.HasPrefix(up, "HEADER.FIELDS "):
		it.spec = "HEADER.FIELDS"
		return it.parseHeaderList(s[len("HEADER.FIELDS "):])
	default:
		return Syntax("invalid section [" + s + "]")
	}
	return nil
}

// parseHeaderList parses header-list = "(" header-fld-name *(SP
// header-fld-name) ")" with header-fld-name = astring (rfc3501.txt:4791).
func (it *fetchItem) parseHeaderList(s string) error {
	if len(s) < 2 || s[0] != '(' || s[len(s)-1] != ')' {
		return Syntax("header list expected")
	}
	s = s[1 : len(s)-1]
	for {
		var name string
		if s != "" && s[0] == '"' {
			var b strings.Builder
			i := 1
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				b.WriteByte(s[i])
			}
			if i == len(s) {
				return Syntax("unterminated quoted string in header list")
			}
			name, s = b.String(), s[i+1:]
		} else {
			i := 0
			for i < len(s) && s[i] != ' ' && isAtomChar(s[i]) {
				i++
			}
			name, s = s[:i], s[i:]
		}
		if name == "" {
			return Syntax("header field name expected")
		}
		it.fields = append(it.fields, name)
		if s == "" {
			return nil
		}
		if s[0] != ' ' || len(s) == 1 {
			return Syntax("invalid header list")
		}
		s = s[1:]
	}
}

// parsePartial parses ["<" number "." nz-number ">"] (rfc3501.txt:4754),
// whose numbers IMAP4rev2 widens to 63 bits (partial = "<" number64 "."
// nz-number64 ">", rfc9051.txt:6841); a part has fewer
// octets, so a partial past its end is empty. A zero count is not an
// nz-number, so <5.0> is BAD.
func (it *fetchItem) parsePartial(s string) error {
	if s == "" {
		return nil
	}
	dot := strings.IndexByte(s, '.')
	if s[0] != '<' || s[len(s)-1] != '>' || dot < 0 {
		return Syntax("invalid partial " + s)
	}
	o, err1 := strconv.ParseUint(s[1:dot], 10, 63)
	n, err2 := strconv.ParseUint(s[dot+1:len(s)-1], 10, 63)
	if err1 != nil || err2 != nil || n == 0 || s[1] == '+' || s[dot+1] == '+' || s[dot+1] == '0' {
		return Syntax("invalid partial " + s)
	}
	it.partial, it.origin, it.count = true, o, n
	return nil
}

// responseName renders "BODY[<section>]<origin>" (rfc3501.txt:4879ff: the
// partial names only the origin). Keywords are upper case, field names as
// the client sent them.
func (it *fetchItem) responseName() string {
	var b strings.Builder
	b.WriteString("BODY[")
	for i, p := range it.part {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(strconv.Itoa(p))
	}
	if it.part != nil && it.spec != "" {
		b.WriteByte('.')
	}
	b.WriteString(it.spec)
	if it.fields != nil {
		b.WriteString(" (")
		for i, f := range it.fields {
			if i > 0 {
				b.WriteByte(' ')
			}
			if isAtomString(f) {
				b.WriteString(f)
			} else {
				b.WriteByte('"')
				b.WriteString(quoteEscaper.Replace(f))
				b.WriteByte('"')
			}
		}
		b.WriteByte(')')
	}
	b.WriteByte(']')
	if it.partial {
		b.WriteByte('<')
		b.WriteString(strconv.FormatUint(uint64(it.origin), 10))
		b.WriteByte('>')
	}
	return b.String()
}

// cols returns the store columns the request needs (DESIGN "Performance
// rules": header-only sections read only the header column).
func (req *fetchRequest) cols(setSeen bool) store.FetchCols {
	var fc store.FetchCols
	for i := range req.items {
		it := &req.items[i]
		switch it.kind {
		case itemFlags:
			fc.Flags = true
		case itemInternalDate:
			fc.InternalDate = true
		case itemSize:
			fc.Size = true
		case itemEnvelope:
			fc.Envelope = true
		case itemBody:
			fc.BodySimple = true
		case itemBodyStructure:
			fc.BodyStructure = true
		case itemEmailID, itemThreadID:
			fc.IDs = true
		case itemModSeq:
			fc.ModSeq = true
		case itemBinary, itemBinarySize:
			fc.Header, fc.Body = true, true
		case itemSaveDate:
			fc.SaveDate = true
		case itemPreview:
			// Lazy: only stored previews. A PREVIEW without LAZY in the
			// same request makes every missing one anyway.
			if it.lazy && fc.Preview != store.PreviewMake {
				fc.Preview = store.PreviewStored
			} else {
				fc.Preview = store.PreviewMake
			}
		case itemSection:
			switch {
			case it.part != nil || it.spec == "":
				fc.Header, fc.Body = true, true
			case it.spec == "TEXT":
				fc.Body = true
			default: // HEADER, HEADER.FIELDS[.NOT]
				fc.Header = true
			}
		}
	}
	if setSeen {
		fc.Flags = true // to know which messages are newly \Seen
	}
	return fc
}
