package message

import (
	"bytes"
	"encoding/base64"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/emersion/go-message/charset"
)

// emptyBody stands in for a multipart without parts, which IMAP cannot
// express (rfc3501.txt:4634 body-type-mpart = 1*body); Dovecot does the same.
const emptyBody = `("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 0 0`

// bodyStructure appends BODYSTRUCTURE (ext=true) or BODY (ext=false) of en
// (rfc3501.txt:4083-4277, grammar rfc3501.txt:4584-4640).
func (t *tree) bodyStructure(b []byte, en *entity, ext bool) []byte {
	b = append(b, '(')
	if en.multipart() {
		if len(en.children) == 0 {
			b = append(b, emptyBody...)
			if ext {
				b = append(b, " NIL NIL NIL NIL"...)
			}
			b = append(b, ')')
		}
		for _, c := range en.children {
			b = t.bodyStructure(b, c, ext) // no space between parts (body-type-mpart = 1*body, rfc3501.txt:4634)
		}
		b = append(b, ' ')
		b = writeString(b, strings.ToUpper(en.sub))
		if ext { // body-ext-mpart: params disposition language location (rfc3501.txt:4599)
			b = append(b, ' ')
			b = writeParams(b, en.params)
			b = t.extTail(b, en)
		}
		return append(b, ')')
	}
	// body-type-basic / -msg / -text: body-fields (rfc3501.txt:4604)
	b = writeString(b, strings.ToUpper(en.typ))
	b = append(b, ' ')
	b = writeString(b, strings.ToUpper(en.sub))
	b = append(b, ' ')
	params := en.params
	if en.typ == "text" {
		if _, ok := paramValue(params, "charset"); !ok {
			// rfc2045: text defaults to charset=us-ascii; Dovecot shows it.
			params = append([]param{{"charset", "us-ascii"}}, params...)
		}
	}
	b = writeParams(b, params)
	for _, name := range []string{"content-id", "content-description"} {
		b = append(b, ' ')
		f := en.first(name)
		if f != nil {
			b = writeString(b, t.value(f))
		} else {
			b = append(b, "NIL"...)
		}
	}
	b = append(b, ' ')
	enc := "7BIT" // body-fld-enc default (rfc2045.txt section 6.1)
	if f := en.first("content-transfer-encoding"); f != nil && t.value(f) != "" {
		enc = strings.ToUpper(t.value(f))
	}
	b = writeString(b, enc)
	b = append(b, ' ')
	body := t.raw[en.hdrEnd:en.end]
	b = strconv.AppendInt(b, int64(len(body)), 10)
	switch {
	case en.msg != nil: // body-type-msg: envelope, body and lines of the encapsulated message (rfc3501.txt:4637)
		b = append(b, ' ')
		b = t.envelope(b, en.msg)
		b = append(b, ' ')
		b = t.bodyStructure(b, en.msg, ext)
		b = append(b, ' ')
		b = strconv.AppendInt(b, int64(countLines(body)), 10)
	case en.typ == "text":
		b = append(b, ' ')
		b = strconv.AppendInt(b, int64(countLines(body)), 10)
	}
	if ext { // body-ext-1part: md5 disposition language location (rfc3501.txt:4584)
		b = append(b, ' ')
		if f := en.first("content-md5"); f != nil {
			b = writeString(b, t.value(f))
		} else {
			b = append(b, "NIL"...)
		}
		b = t.extTail(b, en)
	}
	return append(b, ')')
}

// extTail appends " disposition language location" ("body disposition" to
// "body location", rfc3501.txt:4169-4180).
func (t *tree) extTail(b []byte, en *entity) []byte {
	b = append(b, ' ')
	if f := en.first("content-disposition"); f != nil {
		v := t.value(f)
		d, rest, _ := strings.Cut(v, ";")
		d = strings.TrimSpace(d)
		if d == "" {
			b = append(b, "NIL"...)
		} else {
			b = append(b, '(')
			b = writeString(b, strings.ToUpper(d))
			b = append(b, ' ')
			b = writeParams(b, parseParams(rest))
			b = append(b, ')')
		}
	} else {
		b = append(b, "NIL"...)
	}
	b = append(b, ' ')
	var langs []string
	if f := en.first("content-language"); f != nil {
		for _, l := range strings.FieldsFunc(t.value(f), func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
			langs = append(langs, l)
		}
	}
	switch len(langs) {
	case 0:
		b = append(b, "NIL"...)
	case 1:
		b = writeString(b, langs[0])
	default:
		b = append(b, '(')
		for i, l := range langs {
			if i > 0 {
				b = append(b, ' ')
			}
			b = writeString(b, l)
		}
		b = append(b, ')')
	}
	b = append(b, ' ')
	if f := en.first("content-location"); f != nil {
		return writeString(b, strings.Join(strings.Fields(t.value(f)), ""))
	}
	return append(b, "NIL"...)
}

// writeParams appends body-fld-param: ("NAME" "value" ...) or NIL.
func writeParams(b []byte, ps []param) []byte {
	if len(ps) == 0 {
		return append(b, "NIL"...)
	}
	b = append(b, '(')
	for i, p := range ps {
		if i > 0 {
			b = append(b, ' ')
		}
		b = writeString(b, strings.ToUpper(p.name))
		b = append(b, ' ')
		b = writeString(b, p.value)
	}
	return append(b, ')')
}

// bodyText accumulates decoded text up to MaxBodyText.
type bodyText struct {
	b    strings.Builder
	full bool
}

func (bt *bodyText) add(s string) {
	if bt.full || s == "" {
		return
	}
	if bt.b.Len() > 0 {
		bt.b.WriteByte('\n')
	}
	if room := MaxBodyText - bt.b.Len(); len(s) > room {
		s = strings.ToValidUTF8(s[:max(room, 0)], "")
		bt.full = true
	}
	bt.b.WriteString(s)
}

func (bt *bodyText) String() string { return bt.b.String() }

// collectText adds the decoded text of every text/* leaf below en.
func (t *tree) collectText(bt *bodyText, en *entity) {
	switch {
	case bt.full:
	case en.multipart():
		for _, c := range en.children {
			t.collectText(bt, c)
		}
	case en.msg != nil:
		t.collectText(bt, en.msg)
	case en.typ == "text":
		cte := t.cte(en)
		cs, _ := paramValue(en.params, "charset")
		cs = strings.ToLower(strings.Trim(cs, `" `))
		// Decode no more than can fill the rest of the text: a large part
		// used to be copied whole two or three times (decoded, converted
		// to a string) to keep MaxBodyText of it. Input bytes per output
		// byte: 1 unencoded, 4/3 (and line ends) in base64, up to 3 in
		// quoted-printable ("=XX"), twice that from a two-byte charset.
		raw, room := t.raw[en.hdrEnd:en.end], MaxBodyText-bt.b.Len()
		var lim int
		switch cte {
		case "", "7bit", "8bit", "binary":
			lim = room + utf8.UTFMax
		case "base64":
			lim = room*3/2 + 128
		default:
			lim = 3*room + 64
		}
		if !isUTF8Charset(cs) {
			lim *= 2
		}
		if len(raw) > lim {
			raw = raw[:lim]
		}
		bt.add(decodeCharset(cs, decodeCTE(cte, raw)))
	}
}

// decodeCTE undoes a content-transfer-encoding leniently (rfc2045.txt 6.7, 6.8).
func decodeCTE(cte string, b []byte) []byte {
	switch cte {
	case "base64":
		clean := make([]byte, 0, len(b))
		for _, c := range b {
			if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/' {
				clean = append(clean, c)
			}
		}
		if len(clean)%4 == 1 { // a dangling sextet carries no byte
			clean = clean[:len(clean)-1]
		}
		out := make([]byte, base64.RawStdEncoding.DecodedLen(len(clean)))
		n, _ := base64.RawStdEncoding.Decode(out, clean)
		return out[:n]
	case "quoted-printable":
		return decodeQP(b)
	}
	return b
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

func decodeQP(b []byte) []byte {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c != '=' {
			out = append(out, c)
			continue
		}
		rest := b[i+1:]
		if t := bytes.TrimLeft(rest, " \t"); len(t) > 0 && t[0] == '\n' { // soft break
			i += len(rest) - len(t) + 1
			continue
		} else if len(t) > 1 && t[0] == '\r' && t[1] == '\n' {
			i += len(rest) - len(t) + 2
			continue
		}
		if len(rest) >= 2 {
			if h, ok := unhex(rest[0]); ok {
				if l, ok := unhex(rest[1]); ok {
					out = append(out, h<<4|l)
					i += 2
					continue
				}
			}
		}
		out = append(out, c) // a lone '=' is kept
	}
	return out
}

func isUTF8Charset(cs string) bool {
	switch cs {
	case "", "us-ascii", "utf-8", "utf8", "ascii":
		return true
	}
	return false
}

func decodeCharset(cs string, b []byte) string {
	if !isUTF8Charset(cs) {
		if r, err := charset.Reader(cs, bytes.NewReader(b)); err == nil {
			if d, err := io.ReadAll(r); err == nil {
				b = d
			}
		}
	}
	return cleanText(string(b))
}
