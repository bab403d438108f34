package imapd

// CATENATE (RFC 4469): APPEND builds a message from literals and parts of
// the user's own messages, named by relative IMAP URLs (RFC 5092 §3,
// "/" enc-mailbox [";UIDVALIDITY=" n] "/;UID=" n ["/;SECTION=" s]
// ["/;PARTIAL=" o["." n]]). Only relative URLs are taken ("only relative
// IMAP message or message part URLs", rfc4469.txt:160-166); an absolute
// one, another user's mailbox or a message that is not there is
// NO [BADURL url] (rfc4469.txt:215-222). The mailbox is looked up among the
// session user's mailboxes only, so no URL reaches another user's mail.

import (
	"errors"
	"net/url"
	"strconv"
	"strings"

	"decimail/server/message"
	"decimail/server/store"
)

// catenate joins the cat-parts (cat-part = text-literal / url,
// rfc4469.txt:253-257) into a new message in a spool file: one part is in
// memory at a time.
func (c *Conn) catenate(parts []Value) (*store.Incoming, error) {
	if len(parts)%2 != 0 {
		return nil, Syntax("CATENATE (TEXT literal / URL url ...)")
	}
	in, err := c.Store().NewIncoming()
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			in.Close()
		}
	}()
	for i := 0; i < len(parts); i += 2 {
		kind, v := parts[i], parts[i+1]
		if kind.Kind != Atom {
			return nil, Syntax("TEXT or URL expected")
		}
		var data, more []byte // the part is data followed by more
		switch strings.ToUpper(kind.S) {
		case "TEXT": // text-literal = "TEXT" SP literal, rfc4469.txt:255
			if v.Kind != Literal && !(v.Kind == Literal8 && c.capAdvertised("BINARY")) {
				return nil, Syntax("TEXT needs a literal")
			}
			if data, err = literalBytes(v); err != nil {
				return nil, err
			}
		case "URL": // url = "URL" SP astring, rfc4469.txt:257
			s, isStr := v.AString()
			if !isStr {
				return nil, Syntax("URL needs a string")
			}
			if data, more, err = c.urlData(s); err != nil {
				return nil, err
			}
		default:
			return nil, Syntax("TEXT or URL expected")
		}
		if in.Size()+int64(len(data)+len(more)) > c.srv.cfg.MaxAppendLiteral {
			// TOOBIG "if the resulting message exceeds a server-specific
			// message size limit" (rfc4469.txt:231-240).
			return nil, No(CodeTooBig, "catenated message too big")
		}
		if _, err := in.Write(data); err != nil {
			return nil, err
		}
		if _, err := in.Write(more); err != nil {
			return nil, err
		}
	}
	ok = true
	return in, nil
}

// literalBytes returns a literal's octets, from memory or its spool file.
func literalBytes(v Value) ([]byte, error) {
	if v.File != nil {
		return v.File.Bytes()
	}
	return []byte(v.S), nil
}

// catURL is a parsed relative IMAP URL to a message or a part of one.
type catURL struct {
	mailbox     string
	uidValidity uint32 // 0: not given
	uid         uint32
	section     fetchItem // part, spec, fields, partial
}

// parseCatURL parses "/" enc-mailbox [uidvalidity] iuid [isection]
// [ipartial] (RFC 5092 §9, imessagepart); keys are case-insensitive,
// values percent-encoded, the mailbox name is UTF-8 (RFC 5092 §5).
func parseCatURL(s string) (catURL, bool) {
	var u catURL
	if !strings.HasPrefix(s, "/") || strings.HasPrefix(s, "//") {
		return u, false // absolute, or with an iserver: not this session's
	}
	segs := strings.Split(s[1:], "/")
	box, uv, found := strings.Cut(segs[0], ";")
	name, err := url.PathUnescape(box)
	if err != nil || name == "" || strings.IndexByte(name, 0) >= 0 {
		return u, false
	}
	u.mailbox = store.NormName(name)
	if found {
		k, v, _ := strings.Cut(uv, "=")
		n, err := strconv.ParseUint(v, 10, 32)
		if !strings.EqualFold(k, "UIDVALIDITY") || err != nil || n == 0 {
			return u, false
		}
		u.uidValidity = uint32(n)
	}
	seen := map[string]bool{}
	for i, seg := range segs[1:] {
		k, v, ok := strings.Cut(strings.TrimPrefix(seg, ";"), "=")
		k = strings.ToUpper(k)
		if !ok || !strings.HasPrefix(seg, ";") || seen[k] || (i == 0) != (k == "UID") {
			return u, false
		}
		seen[k] = true
		v, err := url.PathUnescape(v)
		if err != nil {
			return u, false
		}
		switch k {
		case "UID":
			n, err := strconv.ParseUint(v, 10, 32)
			if err != nil || n == 0 || v[0] == '+' {
				return u, false
			}
			u.uid = uint32(n)
		case "SECTION":
			if seen["PARTIAL"] || u.section.parseSection(v) != nil {
				return u, false
			}
		case "PARTIAL": // partial-range = number ["." nz-number]
			o, n, hasLen := strings.Cut(v, ".")
			origin, err1 := strconv.ParseUint(o, 10, 32)
			count, err2 := uint64(1<<32-1), error(nil)
			if hasLen {
				count, err2 = strconv.ParseUint(n, 10, 32)
			}
			if err1 != nil || err2 != nil || count == 0 || o == "" || o[0] == '+' {
				return u, false
			}
			u.section.partial, u.section.origin, u.section.count = true, origin, count
		default:
			return u, false
		}
	}
	return u, u.uid != 0
}

// urlData returns the octets a URL names ("If a message URL is specified"),
// as BODY[section] would:
// "as if the literal returned in a FETCH BODY response were put in place"
// of the URL; "does not cause the \Seen flag to be set" (rfc4469.txt:147-158).
func (c *Conn) urlData(s string) (data, more []byte, err error) {
	bad := No("BADURL "+strings.Map(urlRespChar, s), "bad URL") // rfc4469.txt:215-222, 263-268
	u, ok := parseCatURL(s)
	if !ok {
		return nil, nil, bad
	}
	mb, err := c.Store().Mailbox(c.Ctx(), c.User().ID, u.mailbox)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, bad
	} else if err != nil {
		return nil, nil, err
	}
	if u.uidValidity != 0 && u.uidValidity != mb.UIDValidity {
		return nil, nil, bad
	}
	found := false
	err = c.Store().Fetch(c.Ctx(), mb.Box(), []uint32{u.uid}, store.FetchCols{Header: true, Body: true}, func(r *store.FetchRow) error {
		it := &u.section
		data, more = r.Header, r.Body
		if it.part != nil || it.spec != "" {
			var err error
			data, err = message.Section(append(r.Header, r.Body...), it.part, it.spec, it.fields)
			if err != nil || data == nil {
				return nil // no such part
			}
			more = nil
		}
		if it.partial {
			data, more = cut(data, more, uint64(it.origin), uint64(it.count))
		}
		found = true
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	if !found {
		return nil, nil, bad
	}
	return data, more, nil
}

// urlRespChar keeps a URL printable in the BADURL code (url-resp-text: any
// TEXT-CHAR except "]", rfc4469.txt:265-268).
func urlRespChar(r rune) rune {
	if r == ']' || r < ' ' || r == 0x7f {
		return -1
	}
	return r
}
