package query

import (
	"strings"
	"time"
)

// Msg is one message as seen by the reference evaluator. Fields mirror the
// columns Compile uses; InternalDay and SentDay are dates (only Y-M-D is
// used, in the Time's own location), zero SentDay = NULL.
type Msg struct {
	UID, Seq                                         uint32
	InternalDay, SentDay                             time.Time
	SavedDay                                         time.Time // the save date's day (UTC), zero: unknown, InternalDay is used
	Size                                             int
	Subject, From, To, Cc, Bcc, HeaderText, BodyText string
	Seen, Answered, Flagged, Deleted, Draft, Recent  bool
	Keywords                                         []string
	ModSeq                                           int64    // CONDSTORE mod-sequence in the mailbox
	Folders                                          []string // names of the folders holding it (folder terms)

	low [7]lowered // the text fields folded, kept between Evals (lower)
}

type lowered struct{ src, low string }

// Slots of Msg.low.
const (
	lowHeader = iota
	lowBody
	lowSubject
	lowFrom
	lowTo
	lowCc
	lowBcc
)

// lower returns s (the text field of slot i) folded by Fold, once per
// text: a delivery evaluates every view of the user (over a hundred)
// against the same message.
func (m *Msg) lower(i int, s string) string {
	c := &m.low[i]
	if c.src != s || c.low == "" { // same backing string: compared in O(1)
		c.src, c.low = s, Fold(s)
	}
	return c.low
}

// Eval is the plain-Go reference semantics of n; it agrees with Compile on a
// Postgres database whose text columns hold Fold of the fields (package doc).
// maxUID and maxSeq are the values of "*".
func Eval(n Node, m *Msg, maxUID, maxSeq uint32) bool {
	switch n := n.(type) {
	case All:
		return true
	case Flag:
		return flagValue(m, n.Key) == n.Set
	case Keyword:
		if col := systemFlagColumn(n.Flag); col != "" {
			return flagValue(m, asciiUpper(n.Flag[1:])) == n.Set
		}
		has := false
		for _, k := range m.Keywords {
			if asciiLower(k) == asciiLower(n.Flag) {
				has = true
				break
			}
		}
		return has == n.Set
	case Recent:
		switch n.Key {
		case "RECENT":
			return m.Recent
		case "NEW":
			return m.Recent && !m.Seen
		case "OLD":
			return !m.Recent
		}
		return false
	case Text:
		switch n.Key {
		case "TEXT":
			return containsLow(m.lower(lowHeader, m.HeaderText), n.Value) || containsLow(m.lower(lowBody, m.BodyText), n.Value)
		case "HEADER":
			return headerMatchLow(m.lower(lowHeader, m.HeaderText), n.Field, n.Value)
		case "BCC":
			return containsLow(m.lower(lowBcc, m.Bcc), n.Value)
		case "BODY":
			return containsLow(m.lower(lowBody, m.BodyText), n.Value)
		case "CC":
			return containsLow(m.lower(lowCc, m.Cc), n.Value)
		case "FROM":
			return containsLow(m.lower(lowFrom, m.From), n.Value)
		case "SUBJECT":
			return containsLow(m.lower(lowSubject, m.Subject), n.Value)
		case "TO":
			return containsLow(m.lower(lowTo, m.To), n.Value)
		}
		return false
	case SaveDateSupported:
		return true
	case Date:
		day, key := m.InternalDay, n.Key
		if strings.HasPrefix(key, "SAVED") {
			day, key = m.SavedDay, key[5:]
			if day.IsZero() {
				day = m.InternalDay
			}
		} else if strings.HasPrefix(key, "SENT") {
			day, key = m.SentDay, key[4:]
			if day.IsZero() {
				return false // NULL sent_day never matches
			}
		}
		a, b := dayNum(day), dayNum(n.Day)
		switch key {
		case "BEFORE":
			return a < b
		case "ON":
			return a == b
		case "SINCE":
			return a >= b
		}
		return false
	case ModSeq:
		return m.ModSeq >= int64(n.N)
	case Size:
		if n.Larger {
			return int64(m.Size) > int64(n.N)
		}
		return int64(m.Size) < int64(n.N)
	case UID:
		for _, r := range n.Set {
			lo, hi := resolveRange(uint32(r.Start), uint32(r.Stop), maxUID)
			if lo <= m.UID && m.UID <= hi {
				return true
			}
		}
		return false
	case Seq:
		for _, r := range n.Set {
			lo, hi := resolveRange(r.Start, r.Stop, maxSeq)
			if lo <= m.Seq && m.Seq <= hi {
				return true
			}
		}
		return false
	case Folder, OnlyFolder:
		return evalFolder(n, m)
	case Not:
		return !Eval(n.X, m, maxUID, maxSeq)
	case Or:
		return Eval(n.A, m, maxUID, maxSeq) || Eval(n.B, m, maxUID, maxSeq)
	case And:
		for _, x := range n {
			if !Eval(x, m, maxUID, maxSeq) {
				return false
			}
		}
		return true
	}
	return false
}

func flagValue(m *Msg, key string) bool {
	switch key {
	case "ANSWERED":
		return m.Answered
	case "DELETED":
		return m.Deleted
	case "DRAFT":
		return m.Draft
	case "FLAGGED":
		return m.Flagged
	case "SEEN":
		return m.Seen
	}
	return false
}

func dayNum(t time.Time) int {
	y, mo, d := t.Date()
	return y*10000 + int(mo)*100 + d
}

// asciiLower folds A-Z only, like lower() in Postgres' C locale (keywords,
// which are atoms; Fold of ASCII text).
func asciiLower(s string) string {
	if strings.IndexFunc(s, func(r rune) bool { return r >= 'A' && r <= 'Z' }) < 0 {
		return s
	}
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 32
		}
	}
	return string(b)
}

// containsLow is the ILIKE '%v%' substring match on a field already
// folded (Fold).
func containsLow(low, v string) bool {
	return strings.Contains(low, Fold(v))
}

// headerMatchLow mirrors HEADER name value (compiler.headerCond) on the
// folded header text h: some line starts with name and ':', and the rest of
// that line contains value.
func headerMatchLow(h, name, value string) bool {
	prefix, v := Fold(name)+":", Fold(value)
	for p := 0; p <= len(h); {
		line := h[p:]
		nl := strings.IndexByte(line, '\n')
		if nl >= 0 {
			line = line[:nl]
		}
		if rest, ok := strings.CutPrefix(line, prefix); ok && strings.Contains(rest, v) {
			return true
		}
		if nl < 0 {
			break
		}
		p += nl + 1
	}
	return false
}
