package message

import (
	"html"
	"strings"
	"unicode"
)

// MaxPreview is the length of a preview in characters: "The server SHOULD
// limit the length of the preview text to 200 preview characters"
// (rfc8970.txt:206-209); "The server MUST NOT output preview text longer
// than 256 preview characters" (rfc8970.txt:211-212).
const MaxPreview = 200

// maxPreviewInput bounds the part bytes a preview is made from: enough for
// an HTML part's head and styles before its first words.
const maxPreviewInput = 256 << 10

// Preview is the PREVIEW (RFC 8970) of a raw message; see Parsed.Preview.
func Preview(raw []byte) string { return Parse(raw).Preview }

// preview is the text of the first text/plain or text/html part that is
// not an attachment, decoded (transfer encoding, charset), HTML reduced to
// its text, white space collapsed, cut to MaxPreview characters. "" when
// there is none: "the server MUST return a zero-length string"
// (rfc8970.txt:172-183).
func (t *tree) preview(en *entity) string {
	switch {
	case en.multipart():
		for _, c := range en.children {
			if s := t.preview(c); s != "" {
				return s
			}
		}
		return ""
	case en.msg != nil || en.typ != "text" || (en.sub != "plain" && en.sub != "html"):
		return ""
	}
	if f := en.first("content-disposition"); f != nil {
		if d, _, _ := strings.Cut(t.value(f), ";"); strings.EqualFold(strings.TrimSpace(d), "attachment") {
			return ""
		}
	}
	raw := t.raw[en.hdrEnd:en.end]
	if len(raw) > maxPreviewInput {
		raw = raw[:maxPreviewInput]
	}
	cs, _ := paramValue(en.params, "charset")
	s := decodeCharset(strings.ToLower(strings.Trim(cs, `" `)), decodeCTE(t.cte(en), raw))
	if en.sub == "html" {
		s = htmlText(s)
	}
	return collapse(s, MaxPreview)
}

// collapse joins the words of s with single spaces, keeping at most n
// characters (cut at a word when one ends near the limit).
func collapse(s string, n int) string {
	var b strings.Builder
	chars := 0
	for w := range strings.FieldsFuncSeq(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) {
		if chars > 0 {
			if chars+1 >= n {
				break
			}
			b.WriteByte(' ')
			chars++
		}
		for _, r := range w {
			if chars == n {
				return b.String()
			}
			b.WriteRune(r)
			chars++
		}
	}
	return b.String()
}

// htmlText reduces HTML to its text: tags and comments go (a tag other
// than an inline one becomes a space), and the contents of head, script,
// style and title; character references are decoded. Enough for a
// preview, not a renderer.
func htmlText(s string) string {
	var b strings.Builder
	for s != "" {
		i := strings.IndexByte(s, '<')
		if i < 0 {
			b.WriteString(html.UnescapeString(s))
			break
		}
		b.WriteString(html.UnescapeString(s[:i]))
		s = s[i:]
		if strings.HasPrefix(s, "<!--") {
			if j := strings.Index(s, "-->"); j >= 0 {
				s = s[j+3:]
			} else {
				s = ""
			}
			continue
		}
		j := strings.IndexByte(s, '>')
		if j < 0 {
			break
		}
		closing := s[1] == '/'
		name := strings.ToLower(strings.TrimLeft(s[1:j], "/"))
		if k := strings.IndexFunc(name, func(r rune) bool { return r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == '/' }); k >= 0 {
			name = name[:k]
		}
		s = s[j+1:]
		switch name {
		case "head", "script", "style", "title":
			if closing {
				break
			}
			if k := strings.Index(strings.ToLower(s), "</"+name); k >= 0 {
				s = s[k:]
				if e := strings.IndexByte(s, '>'); e >= 0 {
					s = s[e+1:]
				} else {
					s = ""
				}
			}
		}
		if !inlineTags[name] {
			b.WriteByte(' ')
		}
	}
	return b.String()
}

// inlineTags do not separate words: "W<b>o</b>rld" is one.
var inlineTags = map[string]bool{"a": true, "b": true, "i": true, "u": true, "em": true, "strong": true,
	"span": true, "font": true, "small": true, "big": true, "sub": true, "sup": true, "code": true, "s": true}
