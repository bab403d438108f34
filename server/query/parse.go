// Package query turns IMAP SEARCH programs (RFC 3501 §6.4.4) into one
// parameterised SQL boolean expression. It serves both the SEARCH command and
// query mailboxes, whose definition is a saved SEARCH program.
//
// Pipeline: Parse (IMAP args) or ParseDefinition (text) → Node (AST) →
// Limits.Prepare (Normalize, then the cost limits) → Compile (SQL + bind
// args) / Eval (plain Go reference) / String (canonical text).
// User input never reaches SQL text: every value is a bind parameter.
//
// Case-insensitivity ("The matching is case-insensitive", rfc3501.txt:2776-2778):
// Unicode, by Fold (fold.go: full case folding and NFKD, close to RFC 5051's
// i;unicode-casemap), so SUBJECT MÜNCHEN finds "München" and SS finds "ß".
// The store keeps the searched text columns folded by Fold (written in Go
// at delivery), and substring keys compile to `col ILIKE $n` with the
// value folded the same way (HEADER: an ILIKE over the header text and one
// over its lines, compiler.headerCond; no regular expression is built from
// user input), so the trigram indexes are used; the decoded header and body
// text are in message_texts (compiler.text). Eval folds the message's
// fields and the value with Fold too, so both agree exactly. Folding in Go,
// not in SQL, keeps this independent of the database's locale and of ICU:
// pgrun's clusters are --no-locale (C), where ILIKE folds ASCII only, which
// Fold's output no longer needs. (In another locale ILIKE lower-cases both
// sides again; folded text is lower case already, but for the few letters
// whose fold is not their lower case, e.g. Cherokee, Eval would no longer
// be exact: keep the C locale.) Rows stored before schema 0008 were folded
// by its Go step (schema/fold.go).
//
// LIKE patterns escape `\`, `%` and `_` with a backslash, LIKE's default escape
// character; no ESCAPE clause is written, so the SQL does not depend on
// standard_conforming_strings.
//
// NULLs: only sent_day is nullable; its comparisons are written as
// `(m.sent_day IS NOT NULL AND m.sent_day < $n::date)` (never NULL, still
// btree-indexable) so NOT behaves as in Eval. All other columns are assumed
// NOT NULL (text columns hold "" when absent); keywords may be NULL (EXISTS
// over unnest(NULL) is false).
//
// Canonical text (String): keys in upper case, no redundant parentheses
// (a one-element list parses to its element), the top-level AND unparenthesised,
// dates as d-Mon-yyyy, strings as atoms when safe, otherwise quoted.
package query

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-imap/v2"
)

// ArgKind is the kind of one parsed IMAP argument.
type ArgKind int

const (
	Atom ArgKind = iota
	// Str is a quoted string or literal. (Named Str, not String: the
	// package-level func String renders a Node.)
	Str
	List // parenthesised
)

// Arg is one parsed IMAP argument as the IMAP command reader produces it.
type Arg struct {
	Kind ArgKind
	S    string
	List []Arg
}

// MaxDepth bounds the nesting of lists, NOT and OR.
const MaxDepth = 100

// Node is a SEARCH program AST node: one of All, Flag, Keyword, Recent, Text,
// Date, Size, Seq, UID, Not, Or, And.
type Node interface{ node() }

// All is ALL (rfc3501.txt:2788).
type All struct{}

// Flag is a system flag key: Key is ANSWERED, DELETED, DRAFT, FLAGGED or SEEN;
// Set=false is the UN… form, UNANSWERED to UNSEEN (rfc3501.txt:2935-2951).
type Flag struct {
	Key string
	Set bool
}

// Keyword is KEYWORD (Set) / UNKEYWORD flag (rfc3501.txt:2844, 2947).
type Keyword struct {
	Flag string
	Set  bool
}

// Recent is RECENT, NEW or OLD (rfc3501.txt:2851, 2866, 2878); session state.
type Recent struct{ Key string }

// Text is a substring key: BCC BODY CC FROM HEADER SUBJECT TEXT TO.
// Field is the header field name for HEADER only.
type Text struct {
	Key, Field, Value string
}

// Date is BEFORE ON SINCE SENTBEFORE SENTON SENTSINCE, and SAVEDATE's
// SAVEDBEFORE SAVEDON SAVEDSINCE (rfc8514.txt:207-217: the day the message
// entered the mailbox); Day is UTC midnight.
type Date struct {
	Key string
	Day time.Time
}

// SaveDateSupported is SAVEDATESUPPORTED: every message, since every
// mailbox keeps save dates (rfc8514.txt:231-235).
type SaveDateSupported struct{}

// Size is LARGER (Larger) or SMALLER n (rfc3501.txt:2847, 2900); n is a
// number64 in IMAP4rev2 ("LARGER" SP number64, rfc9051.txt:6923-6939),
// accepted from every session: no message is as large.
type Size struct {
	Larger bool
	N      uint64
}

// ModSeq is CONDSTORE's MODSEQ [entry-name entry-type-req] n: messages
// whose mod-sequence is at least N (rfc7162.txt:1045-1059). Entry is the
// entry name as given ("/flags/\\Draft"), Type "priv", "shared" or "all";
// one mod-sequence is kept per message, so both are ignored ("it MUST
// ignore <entry-name> and <entry-type-req>", rfc7162.txt:1056-1059).
type ModSeq struct {
	N           uint64
	Entry, Type string
}

// Seq is a message sequence number set, "<sequence set>" (rfc3501.txt:2784); 0 means "*".
// Ranges are kept as written (Start may exceed Stop).
type Seq struct{ Set imap.SeqSet }

// UID is UID <sequence set> (rfc3501.txt:2931); 0 means "*".
type UID struct{ Set imap.UIDSet }

// Not is NOT <search-key> (rfc3501.txt:2863).
type Not struct{ X Node }

// Or is OR key1 key2 (rfc3501.txt:2875).
type Or struct{ A, B Node }

// And is a parenthesised list or the implicit top-level AND; len >= 2.
type And []Node

func (All) node()               {}
func (Flag) node()              {}
func (Keyword) node()           {}
func (Recent) node()            {}
func (Text) node()              {}
func (Date) node()              {}
func (SaveDateSupported) node() {}
func (Size) node()              {}
func (ModSeq) node()            {}
func (Seq) node()               {}
func (UID) node()               {}
func (Not) node()               {}
func (Or) node()                {}
func (And) node()               {}

// SyntaxError is a malformed program; the server answers BAD.
type SyntaxError struct {
	Token string // offending token ("" at end of input)
	Msg   string
}

func (e *SyntaxError) Error() string {
	if e.Token == "" {
		return "search: " + e.Msg
	}
	return fmt.Sprintf("search: %s: %q", e.Msg, e.Token)
}

func synErr(tok, format string, a ...any) error {
	return &SyntaxError{Token: tok, Msg: fmt.Sprintf(format, a...)}
}

var flagKeys = map[string]string{ // key → column
	"ANSWERED": "answered", "DELETED": "deleted", "DRAFT": "draft", "FLAGGED": "flagged", "SEEN": "seen",
}

var textCols = map[string]string{
	"BCC": "bcc_addr", "BODY": "body_text", "CC": "cc_addr", "FROM": "from_addr",
	"SUBJECT": "subject", "TO": "to_addr", "TEXT": "", "HEADER": "", // TEXT, HEADER, BODY: message_texts (compiler.text)
}

var dateKeys = map[string]bool{
	"BEFORE": true, "ON": true, "SINCE": true, "SENTBEFORE": true, "SENTON": true, "SENTSINCE": true,
	"SAVEDBEFORE": true, "SAVEDON": true, "SAVEDSINCE": true, // rfc8514.txt:207-217
}

// Parse parses a SEARCH program: the arguments after SEARCH [CHARSET x].
func Parse(args []Arg) (Node, error) {
	return parseProgram(args, parseOpts{})
}

// ParseSaved parses a SEARCH program in which "$", the search result
// variable of SEARCHRES, stands for saved: as a sequence-set key and as the
// set of a UID key ("sequence-set =/ seq-last-command", rfc9051.txt:7047;
// "UID SEARCH UID $" and "UID SEARCH $" are the same, rfc9051.txt:4196-4200).
// saved is the node the variable means now (the caller maps it to the
// messages it holds); nil: "$" is not a key (no SEARCHRES).
func ParseSaved(args []Arg, saved Node) (Node, error) {
	return parseProgram(args, parseOpts{saved: saved})
}

// parseOpts are what a program may use beyond RFC 3501's keys.
type parseOpts struct {
	def   bool // a mailbox definition: folder terms allowed (folder.go)
	saved Node // "$" (ParseSaved)
}

// parseProgram parses a SEARCH program, or a definition (def: folder terms
// allowed, folder.go).
func parseProgram(args []Arg, o parseOpts) (Node, error) {
	if len(args) == 0 {
		return nil, synErr("", "empty search program")
	}
	return parseList(args, 0, o)
}

func parseList(args []Arg, depth int, o parseOpts) (Node, error) {
	s := &stream{args: args, parseOpts: o}
	var nodes []Node
	for s.pos < len(s.args) {
		n, err := s.key(depth)
		if err != nil {
			return nil, err
		}
		nodes = append(nodes, n)
	}
	if len(nodes) == 1 {
		return nodes[0], nil
	}
	return And(nodes), nil
}

type stream struct {
	args []Arg
	pos  int
	parseOpts
}

func argText(a Arg) string {
	switch a.Kind {
	case List:
		return "("
	case Str:
		return strconv.Quote(a.S)
	}
	return a.S
}

// operand returns the next argument for key; it must be an atom, or a string
// if allowString.
func (s *stream) operand(key string, allowString bool) (string, error) {
	if s.pos >= len(s.args) {
		return "", synErr(key, "missing argument after")
	}
	a := s.args[s.pos]
	s.pos++
	if a.Kind == List || (a.Kind == Str && !allowString) {
		return "", synErr(argText(a), "bad argument for %s", key)
	}
	if strings.IndexByte(a.S, 0) >= 0 || !utf8.ValidString(a.S) {
		return "", synErr(a.S, "NUL or invalid UTF-8 in argument for %s", key)
	}
	return a.S, nil
}

func (s *stream) key(depth int) (Node, error) {
	a := s.args[s.pos]
	if depth >= MaxDepth {
		return nil, synErr(argText(a), "nesting deeper than %d at", MaxDepth)
	}
	s.pos++
	switch a.Kind {
	case List:
		if len(a.List) == 0 {
			return nil, synErr("()", "empty list")
		}
		return parseList(a.List, depth+1, s.parseOpts)
	case Str:
		return nil, synErr(argText(a), "expected search key, got string")
	}
	k := asciiUpper(a.S)
	switch {
	case k == "ALL":
		return All{}, nil
	case k == "SAVEDATESUPPORTED":
		return SaveDateSupported{}, nil
	case s.def && (k == "FOLDER" || k == "ONLYFOLDER"):
		return s.folderKey(k)
	case flagKeys[k] != "":
		return Flag{Key: k, Set: true}, nil
	case strings.HasPrefix(k, "UN") && flagKeys[k[2:]] != "":
		return Flag{Key: k[2:]}, nil
	case k == "RECENT" || k == "NEW" || k == "OLD":
		return Recent{Key: k}, nil
	case k == "KEYWORD" || k == "UNKEYWORD":
		f, err := s.operand(k, true)
		if err != nil {
			return nil, err
		}
		if f == "" {
			return nil, synErr(k, "empty flag after")
		}
		return Keyword{Flag: f, Set: k == "KEYWORD"}, nil
	case k == "HEADER":
		f, err := s.operand(k, true)
		if err != nil {
			return nil, err
		}
		v, err := s.operand(k, true)
		if err != nil {
			return nil, err
		}
		return Text{Key: k, Field: f, Value: v}, nil
	case textCols[k] != "" || k == "TEXT":
		v, err := s.operand(k, true)
		if err != nil {
			return nil, err
		}
		return Text{Key: k, Value: v}, nil
	case dateKeys[k]:
		v, err := s.operand(k, true) // date = date-text / DQUOTE date-text DQUOTE (rfc3501.txt:4690)
		if err != nil {
			return nil, err
		}
		d, ok := parseDate(v)
		if !ok {
			return nil, synErr(v, "bad date for %s", k)
		}
		return Date{Key: k, Day: d}, nil
	case k == "LARGER" || k == "SMALLER":
		v, err := s.operand(k, false)
		if err != nil {
			return nil, err
		}
		if !digits(v) {
			return nil, synErr(v, "bad number for %s", k)
		}
		n, err := strconv.ParseUint(v, 10, 63)
		if err != nil {
			return nil, synErr(v, "bad number for %s", k)
		}
		return Size{Larger: k == "LARGER", N: n}, nil
	case k == "MODSEQ":
		return s.modseqKey(k)
	case k == "NOT":
		if s.pos >= len(s.args) {
			return nil, synErr(k, "missing argument after")
		}
		x, err := s.key(depth + 1)
		if err != nil {
			return nil, err
		}
		return Not{X: x}, nil
	case k == "OR":
		var xs [2]Node
		for i := range xs {
			if s.pos >= len(s.args) {
				return nil, synErr(k, "missing argument after")
			}
			x, err := s.key(depth + 1)
			if err != nil {
				return nil, err
			}
			xs[i] = x
		}
		return Or{A: xs[0], B: xs[1]}, nil
	case k == "$" && s.saved != nil:
		return s.saved, nil
	case k == "UID":
		v, err := s.operand(k, false)
		if err != nil {
			return nil, err
		}
		if v == "$" && s.saved != nil {
			return s.saved, nil
		}
		rs, ok := parseSet(v)
		if !ok {
			return nil, synErr(v, "bad UID set")
		}
		set := make(imap.UIDSet, len(rs))
		for i, r := range rs {
			set[i] = imap.UIDRange{Start: imap.UID(r[0]), Stop: imap.UID(r[1])}
		}
		return UID{Set: set}, nil
	case a.S != "" && (a.S[0] == '*' || a.S[0] >= '0' && a.S[0] <= '9'):
		rs, ok := parseSet(a.S)
		if !ok {
			return nil, synErr(a.S, "bad sequence set")
		}
		set := make(imap.SeqSet, len(rs))
		for i, r := range rs {
			set[i] = imap.SeqRange{Start: r[0], Stop: r[1]}
		}
		return Seq{Set: set}, nil
	}
	return nil, synErr(a.S, "unknown search key")
}

var months = [...]string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}

// parseDate parses date-text = date-day "-" date-month "-" date-year
// (rfc3501.txt:4701), day 1*2DIGIT, month case-insensitive, year 4DIGIT (0001-9999).
func parseDate(s string) (time.Time, bool) {
	p := strings.Split(s, "-")
	if len(p) != 3 || len(p[0]) < 1 || len(p[0]) > 2 || len(p[2]) != 4 || !digits(p[0]) || !digits(p[2]) {
		return time.Time{}, false
	}
	m := 0
	for i, name := range months {
		if strings.EqualFold(p[1], name) {
			m = i + 1
		}
	}
	d, _ := strconv.Atoi(p[0])
	y, _ := strconv.Atoi(p[2])
	if m == 0 || y == 0 {
		return time.Time{}, false
	}
	t := time.Date(y, time.Month(m), d, 0, 0, 0, 0, time.UTC)
	if t.Day() != d || int(t.Month()) != m {
		return time.Time{}, false
	}
	return t, true
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// parseNumber parses number = 1*DIGIT, 32-bit (rfc3501.txt number).
// modseqKey parses the rest of search-modsequence = "MODSEQ"
// [search-modseq-ext] SP mod-sequence-valzer, search-modseq-ext = SP
// entry-name SP entry-type-req (rfc7162.txt:2499-2502), entry-name a quoted
// "/flags/" attr-flag (rfc7162.txt:2527), entry-type-req = entry-type-resp
// / "all", entry-type-resp = "priv" / "shared" (rfc7162.txt:2539-2540, 2542-2545).
func (s *stream) modseqKey(k string) (Node, error) {
	var n ModSeq
	if s.pos < len(s.args) && s.args[s.pos].Kind == Str {
		name, _ := s.operand(k, true)
		if !strings.HasPrefix(strings.ToLower(name), "/flags/") || len(name) == len("/flags/") {
			return nil, synErr(name, "bad entry name for %s", k)
		}
		typ, err := s.operand(k, false)
		if err != nil {
			return nil, err
		}
		switch t := strings.ToLower(typ); t {
		case "priv", "shared", "all":
			n.Entry, n.Type = name, t
		default:
			return nil, synErr(typ, "bad entry type for %s", k)
		}
	}
	v, err := s.operand(k, false)
	if err != nil {
		return nil, err
	}
	// mod-sequence-valzer = "0" / 1*DIGIT, 63 bits (rfc7162.txt:2550-2555).
	x, err := strconv.ParseUint(v, 10, 63)
	if !digits(v) || err != nil {
		return nil, synErr(v, "bad mod-sequence for %s", k)
	}
	n.N = x
	return n, nil
}

func parseNumber(s string) (uint32, bool) {
	if !digits(s) {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 32)
	return uint32(n), err == nil
}

// parseSet parses sequence-set (rfc3501.txt:5024); "*" is 0.
func parseSet(s string) ([][2]uint32, bool) {
	var out [][2]uint32
	for _, part := range strings.Split(s, ",") {
		a, b, isRange := strings.Cut(part, ":")
		x, ok1 := parseSeqNum(a)
		y, ok2 := x, true
		if isRange {
			y, ok2 = parseSeqNum(b)
		}
		if !ok1 || !ok2 {
			return nil, false
		}
		out = append(out, [2]uint32{x, y})
	}
	return out, true
}

// parseSeqNum parses seq-number = nz-number / "*" (rfc3501.txt:4998).
func parseSeqNum(s string) (uint32, bool) {
	if s == "*" {
		return 0, true
	}
	if s == "" || s[0] == '0' {
		return 0, false
	}
	return parseNumber(s)
}

func asciiUpper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'a' && c <= 'z' {
			b[i] = c - 32
		}
	}
	return string(b)
}

// ParseDefinition tokenises a definition string (atoms, "quoted strings" with
// \" and \\ escapes, parentheses) and parses it as Parse does, folder
// terms allowed (folder.go).
func ParseDefinition(s string) (Node, error) {
	t := tokenizer{s: s}
	args, err := t.list(0)
	if err != nil {
		return nil, err
	}
	if t.pos < len(s) { // stray ')'
		return nil, synErr(")", "unbalanced parenthesis")
	}
	return parseProgram(args, parseOpts{def: true})
}

type tokenizer struct {
	s   string
	pos int
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// list reads arguments until ')' (left unconsumed) or end of input.
func (t *tokenizer) list(depth int) ([]Arg, error) {
	var args []Arg
	for {
		for t.pos < len(t.s) && isSpace(t.s[t.pos]) {
			t.pos++
		}
		if t.pos >= len(t.s) || t.s[t.pos] == ')' {
			return args, nil
		}
		switch c := t.s[t.pos]; c {
		case '(':
			if depth >= MaxDepth {
				return nil, synErr("(", "nesting deeper than %d at", MaxDepth)
			}
			t.pos++
			sub, err := t.list(depth + 1)
			if err != nil {
				return nil, err
			}
			if t.pos >= len(t.s) {
				return nil, synErr("(", "unbalanced parenthesis")
			}
			t.pos++ // ')'
			args = append(args, Arg{Kind: List, List: sub})
		case '"':
			start := t.pos
			t.pos++
			var b strings.Builder
			for {
				if t.pos >= len(t.s) {
					return nil, synErr(t.s[start:], "unterminated quoted string")
				}
				c := t.s[t.pos]
				t.pos++
				if c == '"' {
					break
				}
				if c == '\\' {
					if t.pos >= len(t.s) || (t.s[t.pos] != '"' && t.s[t.pos] != '\\') {
						return nil, synErr(t.s[start:t.pos], "bad escape in quoted string")
					}
					c = t.s[t.pos]
					t.pos++
				}
				b.WriteByte(c)
			}
			args = append(args, Arg{Kind: Str, S: b.String()})
		default:
			start := t.pos
			for t.pos < len(t.s) && !isSpace(t.s[t.pos]) && !strings.ContainsRune("()\"", rune(t.s[t.pos])) {
				t.pos++
			}
			args = append(args, Arg{Kind: Atom, S: t.s[start:t.pos]})
		}
	}
}

// String renders the canonical program text; it round-trips through ParseDefinition.
func String(n Node) string {
	var b strings.Builder
	if a, ok := n.(And); ok {
		for i, x := range a {
			if i > 0 {
				b.WriteByte(' ')
			}
			write(&b, x)
		}
	} else {
		write(&b, n)
	}
	return b.String()
}

func write(b *strings.Builder, n Node) {
	switch n := n.(type) {
	case All:
		b.WriteString("ALL")
	case Flag:
		if !n.Set {
			b.WriteString("UN")
		}
		b.WriteString(n.Key)
	case Keyword:
		if !n.Set {
			b.WriteString("UN")
		}
		b.WriteString("KEYWORD ")
		b.WriteString(astring(n.Flag, true))
	case Recent:
		b.WriteString(n.Key)
	case Text:
		b.WriteString(n.Key)
		if n.Key == "HEADER" {
			b.WriteString(" " + astring(n.Field, false))
		}
		b.WriteString(" " + astring(n.Value, false))
	case Date:
		b.WriteString(n.Key + " " + n.Day.Format("2-Jan-2006"))
	case SaveDateSupported:
		b.WriteString("SAVEDATESUPPORTED")
	case Size:
		if n.Larger {
			b.WriteString("LARGER ")
		} else {
			b.WriteString("SMALLER ")
		}
		b.WriteString(strconv.FormatUint(uint64(n.N), 10))
	case ModSeq:
		b.WriteString("MODSEQ ")
		if n.Entry != "" {
			b.WriteString(strconv.Quote(n.Entry) + " " + n.Type + " ")
		}
		b.WriteString(strconv.FormatUint(n.N, 10))
	case Seq:
		for i, r := range n.Set {
			writeRange(b, i, r.Start, r.Stop)
		}
	case UID:
		b.WriteString("UID ")
		for i, r := range n.Set {
			writeRange(b, i, uint32(r.Start), uint32(r.Stop))
		}
	case Folder, OnlyFolder:
		writeFolder(b, n)
	case Not:
		b.WriteString("NOT ")
		write(b, n.X)
	case Or:
		b.WriteString("OR ")
		write(b, n.A)
		b.WriteByte(' ')
		write(b, n.B)
	case And:
		b.WriteByte('(')
		for i, x := range n {
			if i > 0 {
				b.WriteByte(' ')
			}
			write(b, x)
		}
		b.WriteByte(')')
	default:
		fmt.Fprintf(b, "<bad node %T>", n)
	}
}

func writeRange(b *strings.Builder, i int, start, stop uint32) {
	if i > 0 {
		b.WriteByte(',')
	}
	num := func(x uint32) {
		if x == 0 {
			b.WriteByte('*')
		} else {
			b.WriteString(strconv.FormatUint(uint64(x), 10))
		}
	}
	num(start)
	if stop != start {
		b.WriteByte(':')
		num(stop)
	}
}

// astring renders s as an atom when that is safe (ATOM-CHAR only; a leading
// backslash is allowed for flags like \Seen), else as a quoted string.
func astring(s string, flag bool) string {
	ok := s != ""
	for i := 0; i < len(s) && ok; i++ {
		c := s[i]
		ok = c > ' ' && c < 0x7f && !strings.ContainsRune("(){%*\"\\]", rune(c)) || (flag && i == 0 && c == '\\' && len(s) > 1)
	}
	if ok {
		return s
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	return `"` + r.Replace(s) + `"`
}

// ParseSeqSet parses an IMAP sequence-set (rfc3501.txt:5024); "*" is 0 as in
// go-imap's types (whose own parser is internal).
func ParseSeqSet(s string) (imap.SeqSet, bool) {
	rs, ok := parseSet(s)
	if !ok {
		return nil, false
	}
	set := make(imap.SeqSet, len(rs))
	for i, r := range rs {
		set[i] = imap.SeqRange{Start: r[0], Stop: r[1]}
	}
	return set, true
}

// ParseUIDSet parses a UID set (the same syntax as a sequence set).
func ParseUIDSet(s string) (imap.UIDSet, bool) {
	rs, ok := parseSet(s)
	if !ok {
		return nil, false
	}
	set := make(imap.UIDSet, len(rs))
	for i, r := range rs {
		set[i] = imap.UIDRange{Start: imap.UID(r[0]), Stop: imap.UID(r[1])}
	}
	return set, true
}
