package imapd

import (
	"encoding/base64"
	"errors"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Modified UTF-7 for mailbox names (RFC 3501 §5.1.3, rfc3501.txt:1045).
// Names are stored as UTF-8; the wire carries modified UTF-7.

var mutf7 = base64.NewEncoding("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,").WithPadding(base64.NoPadding)

var errMUTF7 = errors.New("invalid modified UTF-7")

// decodeMUTF7 converts a wire mailbox name to UTF-8. Raw 8-bit input that is
// valid UTF-8 is accepted as is (clients that send UTF-8 names). The result
// is valid UTF-8 without NUL, whatever the input (raw octets around "&"
// sections, "&AAA-"): NUL is no CHAR8 (rfc3501.txt:4662) and neither can
// reach Postgres text.
func decodeMUTF7(s string) (string, error) {
	if !strings.Contains(s, "&") {
		if !storableName(s) {
			return "", errMUTF7
		}
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		c := s[i]
		if c != '&' {
			b.WriteByte(c)
			i++
			continue
		}
		j := strings.IndexByte(s[i+1:], '-')
		if j < 0 {
			return "", errMUTF7
		}
		enc := s[i+1 : i+1+j]
		i += j + 2
		if enc == "" {
			b.WriteByte('&')
			continue
		}
		raw, err := mutf7.DecodeString(enc)
		if err != nil || len(raw)%2 != 0 {
			return "", errMUTF7
		}
		u := make([]uint16, len(raw)/2)
		for k := range u {
			u[k] = uint16(raw[2*k])<<8 | uint16(raw[2*k+1])
		}
		rs := utf16.Decode(u)
		for _, r := range rs {
			if r == utf8.RuneError || (r >= 0x20 && r <= 0x7e) {
				return "", errMUTF7 // printable ASCII must not be encoded
			}
			b.WriteRune(r)
		}
	}
	if !storableName(b.String()) {
		return "", errMUTF7
	}
	return b.String(), nil
}

func storableName(s string) bool { return utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 }

// encodeMUTF7 converts a UTF-8 mailbox name to modified UTF-7.
func encodeMUTF7(s string) string {
	var b strings.Builder
	var run []rune
	flush := func() {
		if len(run) == 0 {
			return
		}
		u := utf16.Encode(run)
		raw := make([]byte, 2*len(u))
		for k, x := range u {
			raw[2*k], raw[2*k+1] = byte(x>>8), byte(x)
		}
		b.WriteByte('&')
		b.WriteString(mutf7.EncodeToString(raw))
		b.WriteByte('-')
		run = run[:0]
	}
	for _, r := range s {
		if r >= 0x20 && r <= 0x7e {
			flush()
			if r == '&' {
				b.WriteString("&-")
			} else {
				b.WriteRune(r)
			}
			continue
		}
		run = append(run, r)
	}
	flush()
	return b.String()
}
