package message

import "strings"

// BaseSubject returns the "base subject" of a decoded Subject (RFC 5256
// §2.1, rfc5256.txt:92-132) and whether the extraction removed a "reply or
// forward" marker: a subj-refwd, a "(fwd)" subj-trailer or a subj-fwd-hdr
// and subj-fwd-trl (rfc5256.txt:438-441; THREAD=REFERENCES step 5 prefers
// a thread's original message over replies to it). Step (1), the RFC 2047
// decoding, is done by the parser (Parsed.Subject); case is kept: the
// caller compares with i;unicode-casemap (rfc5256.txt:858-863).
//
// "All servers ... MUST use exactly this algorithm" (rfc5256.txt:134-137).
func BaseSubject(subject string) (base string, reply bool) {
	// (1) "Convert all tabs and continuations to space. Convert all
	// multiple spaces to a single space." (rfc5256.txt:101-102)
	s := collapseSpace(subject)
	for {
		// (2) Remove every subj-trailer: "(fwd)" / WSP (rfc5256.txt:104-105, 817).
		for {
			if strings.HasSuffix(s, " ") {
				s = s[:len(s)-1]
			} else if n := len(s); n >= 5 && strings.EqualFold(s[n-5:], "(fwd)") {
				s = s[:n-5]
				reply = true
			} else {
				break
			}
		}
		// (3)-(5): subj-leaders, then one subj-blob when a subj-base is
		// left behind it, until neither matches ("Remove all prefix text",
		// rfc5256.txt:107-123).
		for {
			changed := false
			for {
				n, refwd := leader(s)
				if n == 0 {
					break
				}
				s, changed = s[n:], true
				reply = reply || refwd
			}
			if n := blob(s); n > 0 && n < len(s) {
				s, changed = s[n:], true
			}
			if !changed {
				break
			}
		}
		// (6) subj-fwd-hdr "[fwd:", subject, "]": remove both, repeat from (2)
		// (rfc5256.txt:128-130, 805-809).
		if len(s) >= 6 && strings.EqualFold(s[:5], "[fwd:") && s[len(s)-1] == ']' {
			s = s[5 : len(s)-1]
			reply = true
			continue
		}
		return s, reply
	}
}

// collapseSpace turns tabs, CR and LF into spaces and runs of spaces into one.
func collapseSpace(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	space := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\t' || c == '\r' || c == '\n' {
			c = ' '
		}
		if c == ' ' && space {
			continue
		}
		space = c == ' '
		b.WriteByte(c)
	}
	return b.String()
}

// leader is the length of a subj-leader at the start of s, 0 if none, and
// whether it is a subj-refwd:
//
//	subj-leader = (*subj-blob subj-refwd) / WSP             rfc5256.txt:811
//	subj-refwd  = ("re" / ("fw" ["d"])) *WSP [subj-blob] ":"  rfc5256.txt:801
func leader(s string) (int, bool) {
	if s != "" && s[0] == ' ' {
		return 1, false
	}
	i := 0
	for {
		n := blob(s[i:])
		if n == 0 {
			break
		}
		i += n
	}
	if n := refwd(s[i:]); n > 0 {
		return i + n, true
	}
	return 0, false
}

// refwd is the length of a subj-refwd at the start of s, 0 if none.
func refwd(s string) int {
	i := 0
	switch {
	case len(s) >= 2 && strings.EqualFold(s[:2], "re"):
		i = 2
	case len(s) >= 3 && strings.EqualFold(s[:3], "fwd"):
		i = 3
	case len(s) >= 2 && strings.EqualFold(s[:2], "fw"):
		i = 2
	default:
		return 0
	}
	for i < len(s) && s[i] == ' ' {
		i++
	}
	i += blob(s[i:])
	if i < len(s) && s[i] == ':' {
		return i + 1
	}
	return 0
}

// blob is the length of a subj-blob at the start of s, 0 if none:
// subj-blob = "[" *BLOBCHAR "]" *WSP (rfc5256.txt:803), BLOBCHAR any
// octet but '[' and ']' (rfc5256.txt:822).
func blob(s string) int {
	if s == "" || s[0] != '[' {
		return 0
	}
	j := strings.IndexAny(s[1:], "[]")
	if j < 0 || s[1+j] != ']' {
		return 0
	}
	i := j + 2
	for i < len(s) && s[i] == ' ' {
		i++
	}
	return i
}

// FirstDisplay returns the SORT=DISPLAY key (RFC 5957 §3) of an address
// list header value: the first address's display-name, RFC 2047 decoded,
// if it has a non-empty one, else its addr-spec (mailbox@host; the mailbox
// alone without a host); "" if the list has no address. (RFC 5957 is not
// in shared/rfc; this is its DISPLAYFROM/DISPLAYTO as Dovecot implements it.)
func FirstDisplay(raw string) string {
	for _, a := range parseAddressList(raw) {
		if a.groupStart || a.groupEnd {
			continue
		}
		if name := strings.TrimSpace(decodeHeader(a.name)); name != "" {
			return cleanText(name)
		}
		if a.host == "" || a.host == missingDomain {
			return cleanText(a.mailbox)
		}
		return cleanText(a.mailbox + "@" + a.host)
	}
	return ""
}

// FirstMailbox returns the addr-mailbox of the first address of an address
// list header value (the SORT keys FROM, TO, CC: "[IMAP] addr-mailbox of
// the first ... address", rfc5256.txt:256-263, 293-294), "" if it has none.
// A group's name is not an address; its first member is.
func FirstMailbox(raw string) string {
	for _, a := range parseAddressList(raw) {
		if !a.groupStart && !a.groupEnd {
			return cleanText(a.mailbox)
		}
	}
	return ""
}
