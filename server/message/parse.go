// Package message parses a message once, at delivery time, and precomputes
// everything the IMAP server needs (ENVELOPE, BODYSTRUCTURE, decoded header
// and body text for SEARCH). It also serves FETCH BODY[<section>] from the raw
// bytes. It knows no database and no network.
//
// The MIME structure is kept as byte offsets into the raw message, which is
// never rewritten: CRLF and bare LF input are both handled as they are.
package message

import (
	"bytes"
	"strings"
	"time"
)

// Parsed holds what is computed once when a message is stored.
type Parsed struct {
	HeaderLen     int       // header section incl. the blank line ending it; len(raw) if none
	Size          int       // len(raw) (RFC822.SIZE)
	Envelope      []byte    // IMAP ENVELOPE, wire form
	BodyStructure []byte    // extended BODYSTRUCTURE, wire form
	Body          []byte    // non-extended BODY, wire form
	SentDate      time.Time // Date: header; zero if absent or unparseable
	Subject       string    // RFC 2047 decoded, UTF-8, unfolded

	From, To, Cc, Bcc, ReplyTo string // decoded "Name <addr>, ..." lists

	FromAddr   string   // first From addr-spec, lowercased
	MessageID  string   // as in the header, trimmed
	InReplyTo  string   // first msg-id of In-Reply-To
	References []string // msg-ids of References, in order
	HeaderText string   // "Name: decoded value\n" per field
	BodyText   string   // decoded text/* parts joined with "\n", capped at MaxBodyText
	Preview    string   // PREVIEW (RFC 8970) of the first text part, "" if none (preview.go)
	Lines      int      // body lines of the message
	Broken     bool     // malformed (the bytes are still stored exactly)

	// SORT and THREAD keys (RFC 5256, basesubject.go).
	BaseSubject  string // base subject of Subject, case kept
	SubjectReply bool   // the base subject extraction removed a reply/forward marker
	FromMailbox  string // addr-mailbox of the first From address
	ToMailbox    string // addr-mailbox of the first To address
	CcMailbox    string // addr-mailbox of the first Cc address
	// SORT=DISPLAY keys (RFC 5957): the first From and To address's
	// display-name, decoded, else its addr-spec (FirstDisplay).
	FromDisplay, ToDisplay string
}

// MaxBodyText caps Parsed.BodyText.
const MaxBodyText = 4 << 20

// maxDepth bounds multipart/message nesting; deeper parts are opaque leaves.
const maxDepth = 64

// maxParts bounds the entities of a message: a part costs about 900 bytes
// parsed, so 10 MB of empty parts took 900 MB (issue 13). Past it, the rest
// of a multipart is one opaque application/octet-stream part and the
// message is Broken.
const maxParts = 10000

// ThreadKey returns the root msg-id for thread grouping: first of
// References, else InReplyTo, else MessageID.
func (p *Parsed) ThreadKey() string {
	if len(p.References) > 0 {
		return p.References[0]
	}
	if p.InReplyTo != "" {
		return p.InReplyTo
	}
	return p.MessageID
}

// field is one header field; offsets are into raw.
type field struct {
	name       string // as written, surrounding blanks trimmed
	start, end int    // the whole field incl. folded lines and final line ending
	val        int    // first byte after the colon
}

type param struct{ name, value string } // name lowercase; value unquoted

// entity is a MIME entity: a message or a body part.
type entity struct {
	start, hdrEnd, end int // header is raw[start:hdrEnd] (incl. blank line), body raw[hdrEnd:end]
	blank              bool
	fields             []field
	typ, sub           string // lowercase media type and subtype
	params             []param
	children           []*entity // multipart
	msg                *entity   // message/rfc822: top entity of the encapsulated message
}

func (e *entity) multipart() bool { return e.typ == "multipart" }

// first returns the first field named name (lowercase), or nil.
func (e *entity) first(name string) *field {
	for i := range e.fields {
		if strings.EqualFold(e.fields[i].name, name) {
			return &e.fields[i]
		}
	}
	return nil
}

// tree holds the parsed structure of one raw message.
type tree struct {
	raw    []byte
	root   *entity
	broken bool
	parts  int // entities made so far (maxParts)
}

func parseTree(raw []byte) *tree {
	t := &tree{raw: raw}
	t.root = t.entity(0, len(raw), false, 0)
	return t
}

// value returns the field value unfolded (CR and LF removed, the folding
// whitespace kept, rfc5322.txt section 2.2.3) and trimmed.
func (t *tree) value(f *field) string {
	return strings.TrimSpace(unfold(t.raw[f.val:f.end]))
}

func unfold(b []byte) string {
	if bytes.IndexByte(b, '\n') < 0 && bytes.IndexByte(b, '\r') < 0 {
		return string(b)
	}
	out := make([]byte, 0, len(b))
	for _, c := range b {
		if c != '\r' && c != '\n' {
			out = append(out, c)
		}
	}
	return string(out)
}

// header parses the header of the entity starting at s, bounded by e.
func (t *tree) header(en *entity) {
	raw, pos, e := t.raw, en.start, en.end
	en.hdrEnd = e
	for pos < e {
		lineEnd := e
		if i := bytes.IndexByte(raw[pos:e], '\n'); i >= 0 {
			lineEnd = pos + i + 1
		}
		line := raw[pos:lineEnd]
		if len(line) == 1 && line[0] == '\n' || len(line) == 2 && line[0] == '\r' && line[1] == '\n' {
			en.hdrEnd, en.blank = lineEnd, true
			return
		}
		if line[0] == ' ' || line[0] == '\t' {
			if n := len(en.fields); n > 0 {
				en.fields[n-1].end = lineEnd // continuation line
			} else {
				t.broken = true
			}
			pos = lineEnd
			continue
		}
		colon := bytes.IndexByte(line, ':')
		name := ""
		if colon > 0 {
			name = string(bytes.TrimRight(line[:colon], " \t"))
		}
		if name == "" || strings.ContainsAny(name, " \t\r\n") {
			t.broken = true // not a header field (e.g. an mbox "From " line)
			pos = lineEnd
			continue
		}
		en.fields = append(en.fields, field{name: name, start: pos, end: lineEnd, val: pos + colon + 1})
		pos = lineEnd
	}
}

// entity parses raw[s:e] as a MIME entity. digest selects the
// multipart/digest default type (rfc2046 section 5.1.5).
func (t *tree) entity(s, e int, digest bool, depth int) *entity {
	t.parts++
	en := &entity{start: s, end: e}
	t.header(en)
	en.typ, en.sub = "text", "plain"
	if digest {
		en.typ, en.sub = "message", "rfc822"
	}
	if f := en.first("content-type"); f != nil {
		typ, sub, params, ok := parseContentType(t.value(f))
		if ok {
			en.typ, en.sub, en.params = typ, sub, params
		} else {
			t.broken = true // rfc2045: a bad Content-Type means text/plain; charset=us-ascii
			if digest {
				en.typ, en.sub = "text", "plain"
			}
		}
	}
	if depth >= maxDepth {
		if en.typ == "multipart" || en.typ == "message" && en.sub == "rfc822" {
			t.broken = true
			en.typ, en.sub, en.params = "application", "octet-stream", nil
		}
		return en
	}
	switch {
	case en.multipart():
		t.multipart(en, depth)
	case en.typ == "message" && en.sub == "rfc822":
		// An encoded message/rfc822 (rfc2046 section 5.2.1 forbids it) is
		// left opaque, as Dovecot does.
		switch t.cte(en) {
		case "", "7bit", "8bit", "binary":
			en.msg = t.entity(en.hdrEnd, e, false, depth+1)
		}
	}
	return en
}

func (t *tree) cte(en *entity) string {
	if f := en.first("content-transfer-encoding"); f != nil {
		return strings.ToLower(t.value(f))
	}
	return ""
}

func paramValue(ps []param, name string) (string, bool) {
	for _, p := range ps {
		if p.name == name {
			return p.value, true
		}
	}
	return "", false
}

// multipart splits the body of en at its boundary (rfc2046 section 5.1.1):
// the line break before a delimiter belongs to the delimiter; a missing
// close delimiter still yields the parts found (and marks the tree broken).
func (t *tree) multipart(en *entity, depth int) {
	boundary, _ := paramValue(en.params, "boundary")
	if boundary == "" {
		t.broken = true
		return
	}
	raw, e := t.raw, en.end
	delim := "--" + boundary
	digest := en.sub == "digest"
	partStart := -1
	closed := false
	for pos := en.hdrEnd; pos < e; {
		i := bytes.Index(raw[pos:e], []byte(delim))
		if i < 0 {
			break
		}
		pos += i
		if pos > en.hdrEnd && raw[pos-1] != '\n' { // not at a line start
			pos += len(delim)
			continue
		}
		lineEnd := e
		if i := bytes.IndexByte(raw[pos:e], '\n'); i >= 0 {
			lineEnd = pos + i + 1
		}
		rest := raw[pos+len(delim) : lineEnd]
		isClose := bytes.HasPrefix(rest, []byte("--"))
		if isClose || len(bytes.Trim(rest, " \t\r\n")) == 0 {
			if partStart >= 0 && t.parts >= maxParts {
				t.broken = true
				en.children = append(en.children, &entity{start: partStart, hdrEnd: partStart, end: e,
					typ: "application", sub: "octet-stream"})
				return
			}
			if partStart >= 0 {
				pe := pos
				if pe > partStart && raw[pe-1] == '\n' {
					pe--
					if pe > partStart && raw[pe-1] == '\r' {
						pe--
					}
				}
				en.children = append(en.children, t.entity(partStart, pe, digest, depth+1))
			}
			if isClose {
				closed = true
				break
			}
			partStart = lineEnd
		}
		pos = lineEnd
	}
	if !closed {
		t.broken = true
		if partStart >= 0 {
			en.children = append(en.children, t.entity(partStart, e, digest, depth+1))
		}
	}
	if len(en.children) == 0 {
		t.broken = true
	}
}

// parseContentType parses "type/subtype *(; param)" leniently, keeping the
// parameter order. RFC 2231 continuations (rfc2231.txt section 3) are joined;
// an extended value keeps its "*" name and charset”percent-encoding, as
// Dovecot passes it through.
func parseContentType(v string) (typ, sub string, params []param, ok bool) {
	mt, rest, _ := strings.Cut(v, ";")
	typ, sub, ok = strings.Cut(strings.TrimSpace(mt), "/")
	typ, sub = strings.ToLower(strings.TrimSpace(typ)), strings.ToLower(strings.TrimSpace(sub))
	if !ok || !isToken(typ) || !isToken(sub) {
		return "", "", nil, false
	}
	return typ, sub, parseParams(rest), true
}

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`()<>@,;:\"/[]?=`, c) >= 0 {
			return false
		}
	}
	return true
}

// parseParams parses ";"-separated attribute=value pairs, lowercasing names.
func parseParams(s string) []param {
	var ps []param
	for s != "" {
		s = strings.TrimLeft(s, " \t;")
		if s == "" {
			break
		}
		eq := strings.IndexAny(s, "=;")
		if eq < 0 || s[eq] == ';' {
			// attribute without value: skip it
			if eq < 0 {
				break
			}
			s = s[eq:]
			continue
		}
		name := strings.ToLower(strings.TrimSpace(s[:eq]))
		s = strings.TrimLeft(s[eq+1:], " \t")
		var val string
		if strings.HasPrefix(s, `"`) {
			var b strings.Builder
			i := 1
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				b.WriteByte(s[i])
			}
			val = b.String()
			s = s[min(i+1, len(s)):]
			if j := strings.IndexByte(s, ';'); j >= 0 {
				s = s[j:]
			} else {
				s = ""
			}
		} else {
			j := strings.IndexByte(s, ';')
			if j < 0 {
				j = len(s)
			}
			val = strings.TrimSpace(s[:j])
			s = s[j:]
		}
		if name != "" {
			ps = append(ps, param{name, val})
		}
	}
	return joinContinuations(ps)
}

// joinContinuations merges name*0, name*1*, ... into one parameter
// (rfc2231.txt section 3); "name*" is kept when any segment is extended.
func joinContinuations(ps []param) []param {
	has := false
	for _, p := range ps {
		if strings.Contains(p.name, "*") {
			has = true
			break
		}
	}
	if !has {
		return ps
	}
	out := make([]param, 0, len(ps))
	idx := map[string]int{}
	for _, p := range ps {
		base, sect, isCont := strings.Cut(p.name, "*")
		if !isCont {
			out = append(out, p)
			continue
		}
		ext := strings.HasSuffix(sect, "*") || sect == ""
		if sect == "" { // name*=charset'lang'value: not a continuation
			out = append(out, p)
			continue
		}
		if i, ok := idx[base]; ok {
			out[i].value += p.value
			if ext && !strings.HasSuffix(out[i].name, "*") {
				out[i].name += "*"
			}
			continue
		}
		name := base
		if ext {
			name += "*"
		}
		idx[base] = len(out)
		out = append(out, param{name, p.value})
	}
	return out
}

// countLines counts text lines: line feeds, plus an unterminated last line.
func countLines(b []byte) int {
	n := bytes.Count(b, []byte{'\n'})
	if len(b) > 0 && b[len(b)-1] != '\n' {
		n++
	}
	return n
}

// Parse never fails and never panics: a corrupt or truncated message yields
// best-effort fields and Broken=true.
func Parse(raw []byte) (p *Parsed) {
	defer func() {
		if r := recover(); r != nil { // last resort; FuzzParse calls parse to keep this unreachable
			p = &Parsed{HeaderLen: len(raw), Size: len(raw), Broken: true,
				Envelope:      []byte("(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)"),
				BodyStructure: []byte(emptyBody + " NIL NIL NIL NIL)"),
				Body:          []byte(emptyBody + ")")}
		}
	}()
	return parse(raw)
}

// parse is Parse without the recover, so that fuzzing sees panics.
func parse(raw []byte) *Parsed {
	t := parseTree(raw)
	r := t.root
	p := &Parsed{HeaderLen: r.hdrEnd, Size: len(raw), Lines: countLines(raw[r.hdrEnd:])}
	t.fillHeaderFields(p, r)
	p.Envelope = t.envelope(make([]byte, 0, 512), r)
	p.BodyStructure = t.bodyStructure(make([]byte, 0, 256), r, true)
	p.Body = t.bodyStructure(make([]byte, 0, 256), r, false)
	var bt bodyText
	bt.b.Grow(min(len(raw)-r.hdrEnd, MaxBodyText))
	t.collectText(&bt, r)
	p.BodyText = bt.String()
	p.Preview = t.preview(r)
	p.Broken = t.broken
	return p
}
