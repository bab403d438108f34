package message

import (
	"mime"
	"net/mail"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-message/charset" // legacy charsets for RFC 2047 and bodies
)

var wordDecoder = &mime.WordDecoder{CharsetReader: charset.Reader}

// decodeHeader decodes RFC 2047 encoded words (rfc2047.txt) and returns
// valid UTF-8 without NUL (the store keeps it in Postgres text columns).
func decodeHeader(s string) string {
	if strings.Contains(s, "=?") {
		if d, err := wordDecoder.DecodeHeader(s); err == nil {
			s = d
		}
	}
	return cleanText(s)
}

func cleanText(s string) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", "")
	}
	return s
}

// address is one ENVELOPE "address structure" (rfc3501.txt:4292-4295). A group start has
// host "" and group=true with mailbox the group name; a group end has all empty.
type address struct {
	name, adl, mailbox, host string
	groupStart, groupEnd     bool
}

// missingDomain stands in for an absent domain so that the address is not
// read as group syntax (NIL host, rfc3501.txt:4297); Dovecot does the same.
const missingDomain = "MISSING_DOMAIN"

// addrParser is a lenient RFC 5322 address-list parser (rfc5322.txt
// section 3.4) over the raw, still RFC 2047 encoded, header value.
type addrParser struct {
	s       string
	i       int
	comment string // last comment seen, used as the name of "addr (Name)"
}

type tokKind int

const (
	tEOF tokKind = iota
	tAtom
	tQuoted
	tLiteral // [domain literal]
	tSpecial
)

func (p *addrParser) skipCFWS() {
	for p.i < len(p.s) {
		switch c := p.s[p.i]; {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			p.i++
		case c == '(':
			depth, start := 0, p.i
			for p.i < len(p.s) {
				c := p.s[p.i]
				p.i++
				if c == '\\' {
					p.i++
				} else if c == '(' {
					depth++
				} else if c == ')' {
					if depth--; depth == 0 {
						break
					}
				}
			}
			p.comment = strings.TrimSpace(strings.Trim(p.s[start:min(p.i, len(p.s))], "()"))
		default:
			return
		}
	}
}

// next returns the next token; atoms include '.' (obs-phrase, dot-atom).
func (p *addrParser) next() (tokKind, string) {
	p.skipCFWS()
	if p.i >= len(p.s) {
		return tEOF, ""
	}
	c := p.s[p.i]
	switch {
	case c == '"':
		var b strings.Builder
		p.i++
		for p.i < len(p.s) && p.s[p.i] != '"' {
			if p.s[p.i] == '\\' && p.i+1 < len(p.s) {
				p.i++
			}
			if c := p.s[p.i]; c != '\r' && c != '\n' {
				b.WriteByte(c)
			}
			p.i++
		}
		p.i++
		return tQuoted, b.String()
	case c == '[':
		j := strings.IndexByte(p.s[p.i:], ']')
		if j < 0 {
			j = len(p.s) - p.i - 1
		}
		v := p.s[p.i : p.i+j+1]
		p.i += j + 1
		return tLiteral, v
	case strings.IndexByte("<>@,;:\\)", c) >= 0:
		p.i++
		return tSpecial, string(c)
	}
	start := p.i
	for p.i < len(p.s) && strings.IndexByte("<>@,;:\\\"()[] \t\r\n", p.s[p.i]) < 0 {
		p.i++
	}
	if p.i == start { // a stray ']': always make progress
		p.i++
		return tSpecial, p.s[start:p.i]
	}
	return tAtom, p.s[start:p.i]
}

func (p *addrParser) peek() (tokKind, string) {
	i, c := p.i, p.comment
	k, v := p.next()
	p.i, p.comment = i, c
	return k, v
}

// domain reads a domain after '@': atoms joined by dots, or a literal.
func (p *addrParser) domain() string {
	var b strings.Builder
	for {
		k, v := p.peek()
		if k != tAtom && k != tLiteral {
			return b.String()
		}
		if s := b.String(); s != "" && !strings.HasSuffix(s, ".") && !strings.HasPrefix(v, ".") {
			return s // a new word: the next address is missing its comma
		}
		p.next()
		b.WriteString(v)
	}
}

// angleAddr reads [route ':'] local-part '@' domain up to '>'.
func (p *addrParser) angleAddr() address {
	var a address
	if k, v := p.peek(); k == tSpecial && v == "@" { // obs-route
		var b strings.Builder
		for {
			k, v := p.next()
			if k == tEOF || k == tSpecial && (v == ":" || v == ">") {
				if v == ">" {
					p.i--
				}
				break
			}
			b.WriteString(v)
		}
		a.adl = b.String()
	}
	var lp strings.Builder
	for {
		k, v := p.peek()
		if k == tAtom || k == tQuoted {
			p.next()
			lp.WriteString(v)
			continue
		}
		break
	}
	a.mailbox = lp.String()
	if k, v := p.peek(); k == tSpecial && v == "@" {
		p.next()
		a.host = p.domain()
	}
	// skip to '>'
	for {
		k, v := p.next()
		if k == tEOF || k == tSpecial && v == ">" {
			break
		}
	}
	return a
}

func parseAddressList(s string) []address {
	p := &addrParser{s: s}
	var out []address
	inGroup := false
	for guard := 0; p.i < len(p.s) && guard <= len(p.s); guard++ {
		p.comment = ""
		var words []string
		var a address
		done := false
		for !done {
			k, v := p.next()
			switch {
			case k == tEOF:
				done = true
			case k == tAtom || k == tQuoted || k == tLiteral:
				words = append(words, v)
			case v == "<":
				a = p.angleAddr()
				a.name = strings.Join(words, " ")
				words = nil
				// trailing comment/garbage until ',' or ';'
				for {
					k, v := p.peek()
					if k == tEOF || k == tSpecial && (v == "," || v == ";") {
						break
					}
					p.next()
				}
				done = true
			case v == "@":
				// addr-spec: words form the local part
				a.mailbox = strings.Join(words, "")
				words = nil
				p.comment = ""
				a.host = p.domain()
				p.skipCFWS()
				a.name = p.comment
				done = true
			case v == ":" && !inGroup:
				out = append(out, address{mailbox: strings.Join(words, " "), groupStart: true})
				words = nil
				inGroup = true
			case v == "," || v == ";":
				p.i-- // handled below
				done = true
			default: // stray '>', ')', ':' or '\'
			}
		}
		if len(words) > 0 { // a bare local part without domain
			a.mailbox = strings.Join(words, "")
		}
		if a.mailbox != "" || a.host != "" {
			if a.host == "" {
				a.host = missingDomain
			}
			if a.mailbox == "" {
				a.mailbox = "MISSING_MAILBOX"
			}
			out = append(out, a)
		}
		if k, v := p.peek(); k == tSpecial && (v == "," || v == ";") {
			p.next()
			if v == ";" && inGroup {
				out = append(out, address{groupEnd: true})
				inGroup = false
			}
		}
	}
	if inGroup {
		out = append(out, address{groupEnd: true})
	}
	return out
}

// writeString appends an IMAP string (rfc3501.txt:5057 string): quoted when
// possible, else a literal.
func writeString(b []byte, s string) []byte {
	quoted := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '\r' || c == '\n' || c == 0 || c >= 0x80 {
			quoted = false
			break
		}
	}
	if !quoted {
		s = strings.ReplaceAll(s, "\x00", "")
		b = append(b, '{')
		b = strconv.AppendInt(b, int64(len(s)), 10)
		b = append(b, "}\r\n"...)
		return append(b, s...)
	}
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b = append(b, '\\')
		}
		b = append(b, s[i])
	}
	return append(b, '"')
}

func writeNString(b []byte, s string, ok bool) []byte {
	if !ok {
		return append(b, "NIL"...)
	}
	return writeString(b, s)
}

func writeAddrs(b []byte, as []address) []byte {
	if len(as) == 0 {
		return append(b, "NIL"...)
	}
	b = append(b, '(')
	for _, a := range as {
		b = append(b, '(')
		switch {
		case a.groupEnd:
			b = append(b, "NIL NIL NIL NIL"...)
		case a.groupStart:
			b = append(b, "NIL NIL "...)
			b = writeString(b, a.mailbox)
			b = append(b, " NIL"...)
		default:
			b = writeNString(b, a.name, a.name != "")
			b = append(b, ' ')
			b = writeNString(b, a.adl, a.adl != "")
			b = append(b, ' ')
			b = writeString(b, a.mailbox)
			b = append(b, ' ')
			b = writeString(b, a.host)
		}
		b = append(b, ')')
	}
	return append(b, ')')
}

// envelope appends the ENVELOPE of the message whose top entity is en
// (rfc3501.txt:4279-4344). Values are raw (RFC 2047 still encoded), unfolded.
func (t *tree) envelope(b []byte, en *entity) []byte {
	str := func(name string) {
		if f := en.first(name); f != nil {
			b = writeString(b, t.value(f)) // "present but empty": "" (rfc3501.txt:4304-4308)
		} else {
			b = append(b, "NIL"...)
		}
	}
	addrs := func(name string) []address {
		if f := en.first(name); f != nil {
			return parseAddressList(t.value(f))
		}
		return nil
	}
	from := addrs("from")
	sender, replyTo := addrs("sender"), addrs("reply-to")
	if len(sender) == 0 { // "the same value as the from member", rfc3501.txt:4336-4340
		sender = from
	}
	if len(replyTo) == 0 {
		replyTo = from
	}
	b = append(b, '(')
	str("date")
	b = append(b, ' ')
	str("subject")
	for _, l := range [][]address{from, sender, replyTo, addrs("to"), addrs("cc"), addrs("bcc")} {
		b = append(b, ' ')
		b = writeAddrs(b, l)
	}
	b = append(b, ' ')
	str("in-reply-to")
	b = append(b, ' ')
	str("message-id")
	return append(b, ')')
}

// formatAddrs renders decoded "Name <mbox@host>, ..." for search columns.
//
// Groups keep their names, "team: a@x, b@x;", as the ENVELOPE does (group
// syntax in ENVELOPE: "group syntax is indicated by a special form of
// address structure", rfc3501.txt:4297-4302): SEARCH TO team matches
// the envelope's field (issue 14).
func formatAddrs(raw string) string {
	as := parseAddressList(raw)
	var parts []string
	for i := 0; i < len(as); i++ {
		a := as[i]
		if a.groupStart {
			var members []string
			for i++; i < len(as) && !as[i].groupEnd; i++ {
				members = append(members, formatAddr(as[i]))
			}
			parts = append(parts, decodeHeader(a.mailbox)+": "+strings.Join(members, ", ")+";")
			continue
		}
		if a.groupEnd {
			continue
		}
		parts = append(parts, formatAddr(a))
	}
	if len(parts) == 0 {
		return decodeHeader(raw)
	}
	return cleanText(strings.Join(parts, ", "))
}

// formatAddr is one address as "Name <mailbox@host>".
func formatAddr(a address) string {
	s := a.mailbox + "@" + a.host
	if a.host == missingDomain {
		s = a.mailbox
	}
	if a.name != "" {
		s = decodeHeader(a.name) + " <" + s + ">"
	}
	return s
}

// msgIDs extracts "<...>" msg-ids in order; a value without brackets is
// taken whole (best effort).
func msgIDs(v string) []string {
	var ids []string
	for {
		i := strings.IndexByte(v, '<')
		if i < 0 {
			break
		}
		j := strings.IndexByte(v[i:], '>')
		if j < 0 {
			break
		}
		ids = append(ids, v[i:i+j+1])
		v = v[i+j+1:]
	}
	if len(ids) == 0 && strings.TrimSpace(v) != "" && !strings.ContainsAny(v, " \t") {
		ids = append(ids, strings.TrimSpace(v))
	}
	return ids
}

// fillHeaderFields sets the decoded header columns of p.
func (t *tree) fillHeaderFields(p *Parsed, en *entity) {
	var ht strings.Builder
	for i := range en.fields {
		f := &en.fields[i]
		v := t.value(f)
		dv := decodeHeader(v)
		ht.WriteString(cleanText(f.name))
		ht.WriteString(": ")
		ht.WriteString(dv)
		ht.WriteByte('\n')
		switch strings.ToLower(f.name) {
		case "subject":
			if p.Subject == "" {
				p.Subject = dv
			}
		case "date":
			if p.SentDate.IsZero() {
				p.SentDate = parseDate(v)
			}
		case "from":
			if p.From == "" {
				p.From = formatAddrs(v)
				p.FromMailbox = FirstMailbox(v)
				p.FromDisplay = FirstDisplay(v)
				for _, a := range parseAddressList(v) {
					if !a.groupStart && !a.groupEnd && a.host != missingDomain {
						p.FromAddr = cleanText(strings.ToLower(a.mailbox + "@" + a.host))
						break
					}
				}
			}
		case "to":
			p.To = joinList(p.To, formatAddrs(v))
			if p.ToMailbox == "" {
				p.ToMailbox = FirstMailbox(v)
				p.ToDisplay = FirstDisplay(v)
			}
		case "cc":
			p.Cc = joinList(p.Cc, formatAddrs(v))
			if p.CcMailbox == "" {
				p.CcMailbox = FirstMailbox(v)
			}
		case "bcc":
			p.Bcc = joinList(p.Bcc, formatAddrs(v))
		case "reply-to":
			if p.ReplyTo == "" {
				p.ReplyTo = formatAddrs(v)
			}
		case "message-id":
			if p.MessageID == "" {
				p.MessageID = cleanText(v)
			}
		case "in-reply-to":
			if ids := msgIDs(v); p.InReplyTo == "" && len(ids) > 0 {
				p.InReplyTo = cleanText(ids[0])
			}
		case "references":
			if p.References == nil {
				for _, id := range msgIDs(v) {
					p.References = append(p.References, cleanText(id))
				}
			}
		}
	}
	p.HeaderText = ht.String()
	p.BaseSubject, p.SubjectReply = BaseSubject(p.Subject)
}

func joinList(a, b string) string {
	if a == "" || b == "" {
		return a + b
	}
	return a + ", " + b
}

// obsZones are the obsolete zone names of rfc5322.txt section 4.3.
var obsZones = map[string]int{"UT": 0, "GMT": 0, "EST": -5, "EDT": -4, "CST": -6, "CDT": -5, "MST": -7, "MDT": -6, "PST": -8, "PDT": -7}

// parseDate parses an RFC 5322 date (net/mail also takes the obsolete forms),
// with a few fallbacks for common malformations.
func parseDate(v string) time.Time {
	t, err := mail.ParseDate(v)
	if err != nil {
		// "Tue, 3 Jun 2025 10:00:00 +0000 (UTC) extra" and similar: cut at '('.
		if i := strings.IndexByte(v, '('); i > 0 {
			t, err = mail.ParseDate(strings.TrimSpace(v[:i]))
		}
	}
	if err != nil {
		return time.Time{}
	}
	if name, off := t.Zone(); off == 0 {
		if h, ok := obsZones[name]; ok && h != 0 { // net/mail leaves these at +0000
			t = time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), 0, time.FixedZone(name, h*3600))
		}
	}
	return t
}
