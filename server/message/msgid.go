package message

import (
	"slices"
	"strings"
)

// NormMsgID is the normalized form of a msg-id as THREAD=REFERENCES
// compares them (rfc5256.txt:399-411): the first "<...>" with its quoting
// removed; "" if there is no valid one. It is shared by THREAD (imapd) and
// the THREADID a delivery assigns (ThreadKeys), so that both link the same
// messages.
func NormMsgID(s string) string {
	i := strings.IndexByte(s, '<')
	if i < 0 {
		return ""
	}
	j := strings.IndexByte(s[i:], '>')
	if j < 0 {
		return ""
	}
	id := s[i+1 : i+j]
	if strings.IndexFunc(id, func(r rune) bool { return r == '"' || r == '\\' || r == ' ' || r == '\t' || r == '<' }) < 0 && id != "" {
		return s[i : i+j+1] // already "<id>": no copy (a THREAD of 10,000 messages normalises ~30,000)
	}
	if strings.ContainsAny(id, "\"\\") {
		var b strings.Builder
		for k := 0; k < len(id); k++ {
			switch id[k] {
			case '"':
				continue
			case '\\':
				if k+1 < len(id) {
					k++
				}
			}
			b.WriteByte(id[k])
		}
		id = b.String()
	}
	id = strings.TrimSpace(id)
	if id == "" || strings.ContainsAny(id, " \t<>") {
		return ""
	}
	return "<" + id + ">"
}

// ThreadKeys are the normalized msg-ids (NormMsgID) that link a message
// to others for THREADID (thread_keys, schema 0026): its own
// Message-ID, its In-Reply-To and every References entry, sorted, without
// duplicates or invalid ones. Two messages are linked when their keys
// meet: one names the other's Message-ID, both name the same parent
// (present or not: THREAD's dummy), or both carry the same Message-ID.
// These are all the links THREAD=REFERENCES can make: it links "together
// as parent/child" only msg-ids that one message names (rfc5256.txt:455-513);
// and In-Reply-To besides References, which THREAD reads only "If a message
// does not contain a References header line" (rfc5256.txt:416-423).
func ThreadKeys(messageID, inReplyTo string, refs []string) []string {
	keys := make([]string, 0, len(refs)+2)
	for _, s := range append([]string{messageID, inReplyTo}, refs...) {
		if k := NormMsgID(s); k != "" {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return slices.Compact(keys)
}
