package message

import (
	"errors"
	"fmt"
	"strings"
)

// Section returns the bytes of FETCH BODY[<section>] (rfc3501.txt:3045-3125).
// part is the part path (empty = whole message); spec is "", "HEADER",
// "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT" or "MIME" (case-insensitive);
// fields are the names for HEADER.FIELDS(.NOT). A part that does not exist,
// or HEADER/TEXT on a part that is not message/rfc822, yields (nil, nil).
// The error is only for an invalid spec.
func Section(raw []byte, part []int, spec string, fields []string) ([]byte, error) {
	spec = strings.ToUpper(spec)
	switch spec {
	case "", "HEADER", "TEXT":
	case "MIME":
		if len(part) == 0 { // MIME needs a part number, rfc3501.txt:3070-3072
			return nil, fmt.Errorf("message: MIME needs a part number")
		}
	case "HEADER.FIELDS", "HEADER.FIELDS.NOT":
		if len(fields) == 0 { // rfc3501.txt header-list = "(" header-fld-name *(SP header-fld-name) ")"
			return nil, fmt.Errorf("message: %s needs field names", spec)
		}
	default:
		return nil, fmt.Errorf("message: invalid section spec %q", spec)
	}
	if len(part) == 0 && spec == "" {
		return raw, nil
	}
	t := parseTree(raw)
	en := t.find(part)
	if en == nil {
		return nil, nil
	}
	switch spec {
	case "":
		return raw[en.hdrEnd:en.end], nil
	case "MIME":
		return raw[en.start:en.hdrEnd], nil
	}
	// HEADER, HEADER.FIELDS[.NOT], TEXT: of the message or of an
	// encapsulated message/rfc822 (rfc3501.txt:3067).
	m := en
	if len(part) > 0 {
		if m = en.msg; m == nil {
			return nil, nil
		}
	}
	switch spec {
	case "HEADER":
		return raw[m.start:m.hdrEnd], nil
	case "TEXT":
		return raw[m.hdrEnd:m.end], nil
	}
	not := spec == "HEADER.FIELDS.NOT"
	var out []byte
	for _, f := range m.fields {
		match := false
		for _, n := range fields {
			if strings.EqualFold(f.name, n) { // rfc3501.txt:3092 case-insensitive but otherwise exact
				match = true
				break
			}
		}
		if match != not {
			out = append(out, raw[f.start:f.end]...)
			if raw[f.end-1] != '\n' {
				out = append(out, "\r\n"...)
			}
		}
	}
	// The blank line is included except for a message with no body and no
	// blank line ("no body and no blank line", rfc3501.txt:4114-4118).
	if m.blank {
		out = append(out, "\r\n"...)
	}
	if out == nil {
		out = []byte{}
	}
	return out, nil
}

// find walks a part path (rfc3501.txt:3054-3065): a non-multipart message
// has only part 1 (its body); a message/rfc822 part's numbers refer to the
// parts of the encapsulated message.
func (t *tree) find(path []int) *entity {
	cur, top := t.root, true // top: cur is the top entity of a message
	for _, n := range path {
		if !top && cur.msg != nil {
			cur, top = cur.msg, true
		}
		switch {
		case cur.multipart():
			if n < 1 || n > len(cur.children) {
				return nil
			}
			cur = cur.children[n-1]
		case top && n == 1:
		default:
			return nil
		}
		top = false
	}
	return cur
}

// ErrUnknownCTE is Binary's error for a part whose Content-Transfer-Encoding
// it cannot undo (FETCH BINARY answers NO [UNKNOWN-CTE], RFC 9051 §6.4.5).
var ErrUnknownCTE = errors.New("message: unknown content-transfer-encoding")

// Binary returns the content of FETCH BINARY[part] (RFC 9051 §6.4.5, from
// RFC 3516): the part's body with its Content-Transfer-Encoding undone
// (base64 and quoted-printable leniently, as for search text); the whole
// message, unchanged, for an empty part path; a multipart or message part
// unchanged (their encoding is an identity one, rfc2045.txt 6.4). A part
// that does not exist yields (nil, nil).
func Binary(raw []byte, part []int) ([]byte, error) {
	if len(part) == 0 {
		return raw, nil
	}
	t := parseTree(raw)
	en := t.find(part)
	if en == nil {
		return nil, nil
	}
	body := raw[en.hdrEnd:en.end]
	if en.multipart() || en.msg != nil {
		return body, nil
	}
	switch cte := strings.TrimSpace(t.cte(en)); cte {
	case "", "7bit", "8bit", "binary":
	case "base64", "quoted-printable":
		body = decodeCTE(cte, body)
	default:
		return nil, ErrUnknownCTE
	}
	if en.typ == "text" {
		// "textual line-oriented sections are always transmitted using
		// the IMAP CRLF line termination" (rfc9051.txt:5905-5911).
		body = toCRLF(body)
	}
	if body == nil {
		body = []byte{}
	}
	return body, nil
}

// toCRLF returns b with every bare LF made CRLF (b itself when there is none).
func toCRLF(b []byte) []byte {
	n := 0
	for i, c := range b {
		if c == '\n' && (i == 0 || b[i-1] != '\r') {
			n++
		}
	}
	if n == 0 {
		return b
	}
	out := make([]byte, 0, len(b)+n)
	for i, c := range b {
		if c == '\n' && (i == 0 || b[i-1] != '\r') {
			out = append(out, '\r')
		}
		out = append(out, c)
	}
	return out
}
