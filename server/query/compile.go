package query

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/emersion/go-imap/v2"
)

// Env is the compilation environment.
type Env struct {
	Msg    string // SQL alias of messages, e.g. "m"
	Flags  string // SQL alias of message_flags (seen..draft, keywords); "" = Msg
	Member string // SQL alias of mailbox_messages for UID keys; "" in a mailbox definition
	// Texts is the SQL alias of message_texts (header_text, body_text,
	// indexed), joined on message_id; needed when UsesText.
	Texts string
	// Args are the bind parameters; Compile appends and writes $N with N = len(Args) after append.
	Args     []any
	SeqToUID func(imap.SeqSet) (imap.UIDSet, error) // resolves sequence sets (with *); nil in definitions
	MaxUID   uint32                                 // value of "*" in UID sets
	Recent   []uint32                               // UIDs \Recent in this session
}

// NotAllowedError reports a key that needs session state (UID, sequence set,
// RECENT/NEW/OLD) where none is available, e.g. in a mailbox definition.
type NotAllowedError struct{ Key string }

func (e *NotAllowedError) Error() string {
	return "search: " + e.Key + " not allowed here (needs a selected mailbox)"
}

// uidRangesInline is the number of UID ranges written as BETWEEN; more use unnest.
const uidRangesInline = 4

// splitTexts is the number of text conditions written for the text
// indexes (compiler.text).
const splitTexts = 8

type compiler struct {
	env   *Env
	b     strings.Builder
	texts int // text conditions written so far
}

// Compile returns one SQL boolean expression for n, normalised first
// (Normalize: a repeated condition is written once). Values are appended to
// env.Args and referenced as $N; on error env.Args is left unchanged.
// Compile does not check Limits: callers that take programs from users
// call Limits.Prepare first.
func Compile(n Node, env *Env) (string, error) {
	for _, alias := range []string{env.Msg, env.Member, env.Texts} {
		if !isIdent(alias) {
			return "", fmt.Errorf("query: bad SQL alias %q", alias)
		}
	}
	saved := env.Args
	n = Normalize(n)
	c := &compiler{env: env}
	if err := c.node(n); err != nil {
		env.Args = saved
		return "", err
	}
	return c.b.String(), nil
}

func isIdent(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

func (c *compiler) param(v any) string {
	c.env.Args = append(c.env.Args, v)
	return "$" + strconv.Itoa(len(c.env.Args))
}

func (c *compiler) col(name string) string {
	if c.env.Msg == "" {
		return name
	}
	return c.env.Msg + "." + name
}

// flagCol qualifies a flag column (seen, answered, ..., keywords).
func (c *compiler) flagCol(name string) string {
	if c.env.Flags == "" {
		return c.col(name)
	}
	return c.env.Flags + "." + name
}

// textCol qualifies a message_texts column.
func (c *compiler) textCol(name string) string { return c.env.Texts + "." + name }

// text writes the condition that any of conds holds on the message's row
// of message_texts. Its text is indexed in the background (schema 0002), so
// the condition is written for the two halves: indexed rows, which the
// partial trigram indexes serve, and the few not indexed yet
// (message_texts_unindexed). Both are plain conditions on the joined row,
// so the planner chooses, as for any condition, between the indexes (a
// BitmapOr over every user's texts) and testing the mailbox's own rows: a
// 50-message folder searched for a common substring through a subquery
// over every text took 420 ms.
//
// The arms differ on purpose: (indexed AND x) OR (NOT indexed AND x), with
// x = (a OR b), is refactored by the planner to (indexed OR NOT indexed)
// AND x, which no index serves (SEARCH TEXT: a seq scan of every text).
// The plan shape is pinned by TestSearchPlanUsesTextIndexes.
//
// Only the first splitTexts text conditions of a program are written so.
// Each split is an OR, and Postgres plans an AND of such ORs in more than
// quadratic time: every arm of every OR is matched against every other
// condition as a possible index qualification (indxpath.c,
// generate_bitmap_or_paths), and each trigram qualification is extracted
// again for each: 400 distinct HEADER keys took 4.5 s and 200 MB to plan,
// 1,000 distinct TEXT keys 2.8 s and 330 MB (issue 13). Later text
// conditions are written plainly: the same truth value, tested on the rows
// the first ones' index scans left, and linear to plan.
func (c *compiler) text(conds ...string) error {
	if c.env.Texts == "" {
		return fmt.Errorf("query: a text key needs message_texts (Env.Texts)")
	}
	c.texts++
	if c.texts > splitTexts {
		c.w("(", strings.Join(conds, " OR "), ")")
		return nil
	}
	t := c.env.Texts + ".indexed"
	c.w("(")
	for _, cond := range conds {
		c.w("(", t, " AND ", cond, ") OR ")
	}
	c.w("(NOT ", t, " AND (", strings.Join(conds, " OR "), ")))")
	return nil
}

func (c *compiler) w(s ...string) {
	for _, x := range s {
		c.b.WriteString(x)
	}
}

func (c *compiler) node(n Node) error {
	switch n := n.(type) {
	case All:
		c.w("TRUE") // ALL, rfc3501.txt:2788
	case Flag: // ANSWERED DELETED DRAFT FLAGGED SEEN, UNANSWERED to UNSEEN: rfc3501.txt:2792-2830, 2881-2882, 2935-2951
		col := flagKeys[n.Key]
		if col == "" {
			return fmt.Errorf("query: bad flag key %q", n.Key)
		}
		if !n.Set {
			c.w("NOT ")
		}
		c.w(c.flagCol(col))
	case Keyword: // KEYWORD, UNKEYWORD: rfc3501.txt:2844, 2947
		if !n.Set {
			c.w("NOT ")
		}
		if col := systemFlagColumn(n.Flag); col != "" {
			c.w(c.flagCol(col))
		} else {
			c.w("EXISTS (SELECT 1 FROM unnest(", c.flagCol("keywords"), ") AS kw(k) WHERE lower(kw.k) = lower(",
				c.param(n.Flag), "::text))")
		}
	case Recent:
		if c.env.Member == "" {
			return &NotAllowedError{Key: n.Key}
		}
		switch n.Key {
		case "RECENT": // rfc3501.txt:2878
			c.recent()
		case "NEW": // rfc3501.txt:2851: (RECENT UNSEEN)
			c.w("(")
			c.recent()
			c.w(" AND NOT ", c.flagCol("seen"), ")")
		case "OLD": // rfc3501.txt:2866: NOT RECENT
			c.w("NOT (")
			c.recent()
			c.w(")")
		default:
			return fmt.Errorf("query: bad key %q", n.Key)
		}
	case Text: // substring, case-insensitive: rfc3501.txt:2776-2778
		switch n.Key {
		case "TEXT": // rfc3501.txt:2923: header or body
			p := c.param(likePattern(n.Value))
			return c.text(c.textCol("header_text")+" LIKE "+p, c.textCol("body_text")+" LIKE "+p)
		case "HEADER": // rfc3501.txt:2836
			return c.text(c.headerCond(n.Field, n.Value))
		case "BODY": // rfc3501.txt:2815
			return c.text(c.textCol("body_text") + " LIKE " + c.param(likePattern(n.Value)))
		default:
			col := textCols[n.Key]
			if col == "" {
				return fmt.Errorf("query: bad text key %q", n.Key)
			}
			c.w(c.col(col), " LIKE ", c.param(likePattern(n.Value)))
		}
	case SaveDateSupported: // SAVEDATESUPPORTED, rfc8514.txt:231-235: every mailbox keeps save dates
		c.w("TRUE")
	case Date: // BEFORE, ON, SENTBEFORE to SENTSINCE, SINCE: rfc3501.txt:2811, 2871, 2884-2898: disregarding time and timezone
		col, op := "internal_day", ""
		key := n.Key
		if strings.HasPrefix(key, "SAVED") {
			// SAVEDBEFORE, SAVEDON, SAVEDSINCE (rfc8514.txt:207-217): the
			// day the message entered the mailbox, in UTC (FETCH SAVEDATE
			// shows it in UTC). A message the session holds after it left
			// has no membership row: its internal date stands in, as for
			// storage without save dates ("MUST use the internal date
			// attribute instead", rfc8514.txt:237-243).
			if c.env.Member == "" {
				return &NotAllowedError{Key: n.Key}
			}
			col, key = "", key[5:]
		} else if strings.HasPrefix(key, "SENT") {
			col, key = "sent_day", key[4:]
		}
		switch key {
		case "BEFORE":
			op = " < "
		case "ON":
			op = " = "
		case "SINCE":
			op = " >= "
		default:
			return fmt.Errorf("query: bad date key %q", n.Key)
		}
		// INTERNALDATE's day and the size are also in the narrow flags
		// table (schema): a search by date, size and flags reads only it.
		qcol := c.col(col)
		switch col {
		case "internal_day":
			qcol = c.flagCol(col)
		case "":
			qcol = "coalesce((" + c.env.Member + ".saved_at AT TIME ZONE 'UTC')::date, " + c.flagCol("internal_day") + ")"
		}
		cmp := qcol + op + c.param(n.Day) + "::date"
		if col == "sent_day" { // NULL when there is no Date: header; never NULL as a result
			c.w("(", c.col(col), " IS NOT NULL AND ", cmp, ")")
		} else {
			c.w(cmp)
		}
	case Size: // LARGER, SMALLER: rfc3501.txt:2847, 2900
		op := " < "
		if n.Larger {
			op = " > "
		}
		c.w(c.flagCol("size"), op, c.param(int64(n.N)), "::bigint")
	case ModSeq: // rfc7162.txt:1047-1059: "equal to or greater than"
		if c.env.Member == "" {
			return &NotAllowedError{Key: "MODSEQ"}
		}
		c.w("greatest(", c.env.Member, ".modseq, ", c.flagCol("modseq"), ") >= ", c.param(int64(n.N)), "::bigint")
	case UID: // rfc3501.txt:2931
		if c.env.Member == "" {
			return &NotAllowedError{Key: "UID"}
		}
		c.uidSet(n.Set)
	case Seq: // "<sequence set>", rfc3501.txt:2784
		if c.env.Member == "" || c.env.SeqToUID == nil {
			return &NotAllowedError{Key: "sequence set"}
		}
		set, err := c.env.SeqToUID(n.Set)
		if err != nil {
			return err
		}
		c.uidSet(set)
	case Folder, OnlyFolder: // definitions only (folder.go)
		c.folderCond(n)
	case Not: // NOT <search-key>, rfc3501.txt:2863
		c.w("NOT (")
		if err := c.node(n.X); err != nil {
			return err
		}
		c.w(")")
	case Or: // OR, rfc3501.txt:2875
		c.w("(")
		if err := c.node(n.A); err != nil {
			return err
		}
		c.w(" OR ")
		if err := c.node(n.B); err != nil {
			return err
		}
		c.w(")")
	case And:
		if len(n) == 0 {
			c.w("TRUE")
			return nil
		}
		c.w("(")
		for i, x := range n {
			if i > 0 {
				c.w(" AND ")
			}
			if err := c.node(x); err != nil {
				return err
			}
		}
		c.w(")")
	default:
		return fmt.Errorf("query: unknown node %T", n)
	}
	return nil
}

func (c *compiler) recent() {
	if len(c.env.Recent) == 0 {
		c.w("FALSE")
		return
	}
	uids := make([]int64, len(c.env.Recent))
	for i, u := range c.env.Recent {
		uids[i] = int64(u)
	}
	c.w(c.env.Member, ".uid = ANY(", c.param(uids), "::bigint[])")
}

// uidSet compiles a UID set; "*" (0) is MaxUID, so n:* with n > MaxUID still
// contains MaxUID (rfc3501.txt, §6.4.8 UID command).
func (c *compiler) uidSet(set imap.UIDSet) {
	uid := c.env.Member + ".uid"
	var singles, los, his []int64
	for _, r := range set {
		lo, hi := resolveRange(uint32(r.Start), uint32(r.Stop), c.env.MaxUID)
		if lo == hi {
			singles = append(singles, int64(lo))
		} else {
			los, his = append(los, int64(lo)), append(his, int64(hi))
		}
	}
	var parts []string
	switch len(singles) {
	case 0:
	case 1:
		parts = append(parts, uid+" = "+c.param(singles[0]))
	default:
		parts = append(parts, uid+" = ANY("+c.param(singles)+"::bigint[])")
	}
	if len(los) > uidRangesInline {
		parts = append(parts, "EXISTS (SELECT 1 FROM unnest("+c.param(los)+"::bigint[], "+c.param(his)+
			"::bigint[]) AS r(lo, hi) WHERE "+uid+" BETWEEN r.lo AND r.hi)")
	} else {
		for i := range los {
			parts = append(parts, uid+" BETWEEN "+c.param(los[i])+" AND "+c.param(his[i]))
		}
	}
	switch len(parts) {
	case 0:
		c.w("FALSE")
	case 1:
		c.w(parts[0])
	default:
		c.w("(", strings.Join(parts, " OR "), ")")
	}
}

// resolveRange maps "*" (0) to max and orders the bounds.
func resolveRange(a, b, max uint32) (lo, hi uint32) {
	if a == 0 {
		a = max
	}
	if b == 0 {
		b = max
	}
	if a > b {
		a, b = b, a
	}
	return a, b
}

// systemFlagColumn maps a system flag given to KEYWORD (e.g. \Seen, any case)
// to its column; "" for keywords (including \Recent, which is never stored).
func systemFlagColumn(f string) string {
	if len(f) < 2 || f[0] != '\\' {
		return ""
	}
	return flagKeys[asciiUpper(f[1:])]
}

// likePattern builds the LIKE pattern %s% of s folded (likeEscape, Fold:
// the searched columns hold folded text). LIKE, not ILIKE: both sides are
// folded already, and ILIKE lowercases the whole text (a copy) on every
// row before it compares: re-adding 3,087 messages to 25 "UNSEEN HEADER
// List-Id x" views (STORE -FLAGS (\Seen)) spent most of its time there
// (issue 15, bench/ANALYSIS.md).
func likePattern(s string) string { return "%" + likeEscape(Fold(s)) + "%" }

// likeEscape escapes \ % _ by backslash, LIKE's default escape character.
func likeEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '\\' || c == '%' || c == '_' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// headerCond is HEADER name value: some line of the header text (one field
// a line, unfolded) starts with "name:" and the rest of that line contains
// value, both compared case-insensitively (rfc3501.txt:2836): both folded
// (Fold), as the stored header text is.
//
// No regular expression is built from the user's strings: an ARE made of a
// 60,000-character value ran 37 s and then failed as "too complex" (issue
// 13). The first condition, a LIKE over the whole text, is what the
// trigram index serves (both the name's and the value's trigrams); the
// second, over the lines of the rows it leaves, makes it exact. Both are
// linear in the text for a bounded value (Limits.MaxValue).
func (c *compiler) headerCond(name, value string) string {
	h := c.textCol("header_text")
	prefix := likeEscape(Fold(name)) + ":%" + likeEscape(Fold(value)) + "%"
	whole := c.param("%" + prefix)
	line := c.param(prefix)
	return "(" + h + " LIKE " + whole + " AND EXISTS (SELECT 1 FROM unnest(string_to_array(" + h +
		", chr(10))) AS hl(l) WHERE hl.l LIKE " + line + "))"
}

// UsesFlags reports whether the program depends on flags or keywords, so
// flag changes must re-evaluate a query mailbox.
func UsesFlags(n Node) bool {
	return walk(n, func(n Node) bool {
		switch n := n.(type) {
		case Flag, Keyword:
			return true
		case Recent:
			return n.Key == "NEW" // NEW = RECENT UNSEEN
		}
		return false
	})
}

// UsesKeywords reports whether the program has a KEYWORD or UNKEYWORD key
// (an evaluation in memory needs the messages' keywords).
func UsesKeywords(n Node) bool {
	return walk(n, func(n Node) bool { _, ok := n.(Keyword); return ok })
}

// UsesText reports whether the program reads message_texts (Env.Texts).
func UsesText(n Node) bool {
	return walk(n, func(n Node) bool {
		t, ok := n.(Text)
		return ok && (t.Key == "TEXT" || t.Key == "HEADER" || t.Key == "BODY")
	})
}

// UsesSession reports whether the program needs session state (UID,
// sequence sets, RECENT/NEW/OLD); such programs are not valid definitions.
func UsesSession(n Node) bool {
	return walk(n, func(n Node) bool {
		switch n.(type) {
		case UID, Seq, Recent, ModSeq:
			return true
		case Date:
			return strings.HasPrefix(n.(Date).Key, "SAVED")
		}
		return false
	})
}

// UsesModSeq reports whether the program has a MODSEQ key (CONDSTORE).
func UsesModSeq(n Node) bool {
	return walk(n, func(n Node) bool { _, ok := n.(ModSeq); return ok })
}

// UsesSaveDate reports whether the program has a SAVEDATE key (RFC 8514).
func UsesSaveDate(n Node) bool {
	return walk(n, func(n Node) bool {
		switch n := n.(type) {
		case SaveDateSupported:
			return true
		case Date:
			return strings.HasPrefix(n.Key, "SAVED")
		}
		return false
	})
}

// UsesRecent reports whether the program has a RECENT, NEW or OLD key (the
// keys of the \Recent flag, which IMAP4rev2 dropped).
func UsesRecent(n Node) bool {
	return walk(n, func(n Node) bool { _, ok := n.(Recent); return ok })
}

// walk reports whether f holds for any node in the tree.
func walk(n Node, f func(Node) bool) bool {
	if f(n) {
		return true
	}
	switch n := n.(type) {
	case Not:
		return walk(n.X, f)
	case Or:
		return walk(n.A, f) || walk(n.B, f)
	case And:
		for _, x := range n {
			if walk(x, f) {
				return true
			}
		}
	}
	return false
}
