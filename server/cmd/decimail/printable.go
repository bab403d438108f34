package main

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// printable escapes what a terminal would interpret in a user-supplied
// string (a mailbox name, a definition, an address): control characters
// (C0, DEL, C1), other non-printing runes (format characters such as
// bidirectional overrides) and invalid UTF-8 are written as Go escapes
// (\x1b, \u202e).
// Mailbox names with control characters are refused by the store
// (issue 13), but names stored before that, and addresses, are printed
// too.
func printable(s string) string {
	clean := utf8.ValidString(s) && !strings.ContainsFunc(s, func(r rune) bool { return !strconv.IsPrint(r) })
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			b.WriteString(`\x` + strconv.FormatUint(uint64(s[i])|0x100, 16)[1:])
		case strconv.IsPrint(r):
			b.WriteString(s[i : i+n])
		default:
			q := strconv.QuoteRuneToASCII(r)
			b.WriteString(q[1 : len(q)-1])
		}
		i += n
	}
	return b.String()
}
