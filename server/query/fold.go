package query

import (
	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// Fold is the one case folding of every substring key (SUBJECT, FROM, TEXT,
// HEADER, …), in SEARCH and in mailbox definitions alike: the server's
// comparator, close to i;unicode-casemap (RFC 5051), which IMAP recommends
// for case-insensitive search beyond ASCII (rfc9051.txt:3841-3847 points to
// [IMAP-I18N], RFC 5255, whose comparators start from i;unicode-casemap).
//
// Fold(s) is Unicode's compatibility caseless match (Unicode 15 §3.13, D146):
//
//	NFKD(toCasefold(NFKD(toCasefold(NFD(s)))))
//
// with full case folding (CaseFolding.txt statuses C and F, not the Turkic
// T): "ß", "ẞ" and "SS" all fold to "ss"; "Σ", "σ" and final "ς" to "σ";
// "MÜNCHEN" and "München" to "mu\u0308nchen"; "İ" (U+0130) to "i\u0307"
// and dotless "ı" stays "ı" (so "ı" does not match "I", as in Unicode's
// default folding); "ﬁ" to "fi", fullwidth "Ａ" to "a". RFC 5051 uses the
// titlecase mapping where this uses case folding; folding is what Unicode
// defines for caseless matching, and unlike titlecasing it makes "ß" and
// "SS" equal. Like RFC 5051 it decomposes (NFKD), so a search for "cafe"
// finds "café" (stored as "cafe\u0301"), while "café" does not find "cafe".
//
// A search compares Fold(value) with the folded text of the message: the
// store keeps the searched columns (messages.subject, from_addr, to_addr,
// cc_addr, bcc_addr; message_texts.header_text, body_text) folded by Fold,
// written in Go at delivery (schema 0008 folded the rows stored before),
// and the compiler writes `col ILIKE fold(pattern)` against them, so the
// trigram indexes serve the search as before and the SQL does not depend
// on the database's locale or on ICU. Eval folds the same way.
//
// ASCII text folds to its lower case (the common case, without the
// normalisation passes). Fold's result has no ASCII capital letter, so
// ILIKE's own folding (ASCII only in the C locale) changes nothing.
func Fold(s string) string {
	if isASCII(s) {
		return asciiLower(s)
	}
	f := cases.Fold()
	s = f.String(norm.NFD.String(s))
	s = f.String(norm.NFKD.String(s))
	return norm.NFKD.String(s)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
