package store_test

// Property test of the SEARCH compiler (issue 6, part 2): random messages are
// delivered into a fresh folder of ONE database, then random SEARCH programs
// (every key, nested OR/NOT/lists, sequence and UID sets with "*") run through
// query.Compile + store.Search. The result must be exactly the messages for
// which the plain-Go reference query.Eval holds, where each query.Msg is read
// back from the columns the store wrote — so this checks the compiler, not
// the parser of messages. A smaller check compares those columns with
// message.Parse of the raw bytes.

import (
	"context"
	"encoding/base64"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"pgregory.net/rapid"

	"decimail/server/message"
	"decimail/server/query"
	"decimail/server/store"
)

// searchWords is the vocabulary of message text and of search values, so that
// programs match some messages and not others. It has ASCII case variants,
// non-ASCII letters whose case Postgres' C locale does not fold (query.Fold
// does: ß/SS/ẞ, Σ/σ/ς, the Turkish İ/ı, decomposed ü, fullwidth and ligature
// forms), and the LIKE and regexp metacharacters.
var searchWords = []string{
	"golang", "GoLang", "rust", "meeting", "news", "a", "café", "CAFÉ", "Ärger", "ärger", "naïve", "日本語",
	"100%", "under_score", "back\\slash", "dot.star*", "(paren)", "[x]", "quote\"d", "ünïcödé", "x+y", "$5",
	"München", "MÜNCHEN", "mu\u0308nchen", "Straße", "STRASSE", "GROẞ", "ΣΟΦΟΣ", "σοφος", "σοφός", "İstanbul",
	"ISTANBUL", "ıi", "ﬁle", "ＦＩＬＥ", "ＡＢＣ%",
}

var (
	searchAddrs  = []string{"alice@example.com", "bob@lists.example.org", "carol.ü@example.net", "dave+tag@example.com", "eve@Example.COM"}
	searchNames  = []string{"", "Alice Smith", "Bøb Ørsted", "Zoë", "日本 太郎", "Carol \"CJ\" Jones", "back\\slash"}
	searchKws    = []string{"$Work", "Junk", "$label1", "NonJunk"}
	searchFields = []string{"Subject", "From", "To", "Cc", "List-Id", "X-Tag", "Date", "Content-Type", "X-Missing", "subject"}
	searchZones  = []int{-12 * 3600, -5 * 3600, 0, 3600, 5*3600 + 1800, 14 * 3600}
	searchBase   = time.Date(2026, 10, 20, 0, 0, 0, 0, time.UTC)
)

// encodeWord renders s as it appears in a header: raw UTF-8, or an RFC 2047
// encoded-word (B or Q, UTF-8 or ISO-8859-1 when representable).
func encodeWord(t *rapid.T, s, label string) string {
	switch rapid.IntRange(0, 3).Draw(t, label+" encoding") {
	case 1:
		return mime.BEncoding.Encode("UTF-8", s)
	case 2:
		return mime.QEncoding.Encode("UTF-8", s)
	case 3:
		if latin, ok := toLatin1(s); ok && latin != s {
			return "=?ISO-8859-1?Q?" + qEncodeBytes(latin) + "?="
		}
	}
	return s
}

func toLatin1(s string) (string, bool) {
	b := make([]byte, 0, len(s))
	for _, r := range s {
		if r > 0xff {
			return "", false
		}
		b = append(b, byte(r))
	}
	return string(b), true
}

func qEncodeBytes(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ':
			b.WriteByte('_')
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9':
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "=%02X", c)
		}
	}
	return b.String()
}

func drawWords(t *rapid.T, lo, hi int, label string) string {
	return strings.Join(rapid.SliceOfN(rapid.SampledFrom(searchWords), lo, hi).Draw(t, label), " ")
}

func drawAddrList(t *rapid.T, lo, hi int, label string) string {
	n := rapid.IntRange(lo, hi).Draw(t, label+" count")
	var out []string
	for range n {
		name := rapid.SampledFrom(searchNames).Draw(t, label+" name")
		addr := rapid.SampledFrom(searchAddrs).Draw(t, label+" addr")
		switch {
		case name == "":
			out = append(out, addr)
		case strings.ContainsAny(name, "\"\\"):
			q := strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(name)
			out = append(out, `"`+q+`" <`+addr+`>`)
		default:
			out = append(out, encodeWord(t, name, label)+" <"+addr+">")
		}
	}
	return strings.Join(out, ", ")
}

func drawTime(t *rapid.T, label string) time.Time {
	day := rapid.IntRange(0, 12).Draw(t, label+" day")
	min := rapid.IntRange(0, 24*60-1).Draw(t, label+" minute")
	zone := rapid.SampledFrom(searchZones).Draw(t, label+" zone")
	loc := time.FixedZone("", zone)
	return time.Date(searchBase.Year(), searchBase.Month(), searchBase.Day()+day, 0, min, 0, 0, loc)
}

// genMessage returns a random RFC 5322 message.
// subject is the Subject field's decoded text ("" when absent).
func genMessage(t *rapid.T, i int) (raw []byte, subject string) {
	var h strings.Builder
	hdr := func(name, v string) { h.WriteString(name + ": " + v + "\r\n") }
	hdr("From", drawAddrList(t, 0, 2, "from"))
	if to := drawAddrList(t, 0, 2, "to"); to != "" {
		hdr("To", to)
	}
	if cc := drawAddrList(t, 0, 2, "cc"); cc != "" {
		hdr("Cc", cc)
	}
	if bcc := drawAddrList(t, 0, 1, "bcc"); bcc != "" {
		hdr("Bcc", bcc)
	}
	if rapid.IntRange(0, 5).Draw(t, "has subject") > 0 {
		subject = drawWords(t, 0, 3, "subject")
		hdr("Subject", encodeWord(t, subject, "subject"))
	}
	switch rapid.IntRange(0, 4).Draw(t, "date header") {
	case 0: // absent
	case 1:
		hdr("Date", "not a date "+drawWords(t, 1, 1, "garbage"))
	default:
		hdr("Date", drawTime(t, "sent").Format("Mon, 02 Jan 2006 15:04:05 -0700"))
	}
	hdr("Message-ID", fmt.Sprintf("<p%d.%d@example.com>", i, rapid.IntRange(0, 1<<20).Draw(t, "msgid")))
	if rapid.Bool().Draw(t, "list-id") {
		hdr("List-Id", drawWords(t, 1, 2, "list-id")+" <golang-nuts.googlegroups.com>")
	}
	if rapid.Bool().Draw(t, "x-tag") {
		hdr("X-Tag", encodeWord(t, drawWords(t, 1, 2, "x-tag"), "x-tag"))
	}
	text := func(label string) string {
		var lines []string
		for range rapid.IntRange(1, 4).Draw(t, label+" lines") {
			lines = append(lines, drawWords(t, 0, 6, label))
		}
		return strings.Join(lines, "\r\n")
	}
	pad := strings.Repeat("padding line to vary the size\r\n", rapid.IntRange(0, 40).Draw(t, "padding"))
	var body string
	switch rapid.IntRange(0, 5).Draw(t, "body kind") {
	case 0:
		hdr("Content-Type", "text/plain; charset=utf-8")
		body = text("body") + "\r\n" + pad
	case 1:
		hdr("Content-Type", "text/plain; charset=utf-8")
		hdr("Content-Transfer-Encoding", "quoted-printable")
		var b strings.Builder
		w := quotedprintable.NewWriter(&b)
		w.Write([]byte(text("qp body") + "\r\n" + pad))
		w.Close()
		body = b.String()
	case 2:
		hdr("Content-Type", "text/plain; charset=utf-8")
		hdr("Content-Transfer-Encoding", "base64")
		body = wrap76(base64.StdEncoding.EncodeToString([]byte(text("b64 body")+"\r\n"+pad))) + "\r\n"
	case 3:
		s := text("latin1 body")
		if latin, ok := toLatin1(s); ok {
			hdr("Content-Type", "text/plain; charset=iso-8859-1")
			hdr("Content-Transfer-Encoding", "8bit")
			body = latin + "\r\n" + pad // not UTF-8 on the wire: decoded at delivery
		} else {
			hdr("Content-Type", "text/plain; charset=utf-8")
			body = s + "\r\n" + pad
		}
	case 4:
		hdr("MIME-Version", "1.0")
		hdr("Content-Type", `multipart/alternative; boundary="b1"`)
		body = "preamble\r\n--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + text("alt plain") + "\r\n" +
			"--b1\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>" + text("alt html") + "</p>\r\n--b1--\r\n" + pad
	default:
		hdr("MIME-Version", "1.0")
		hdr("Content-Type", `multipart/mixed; boundary="b2"`)
		att := make([]byte, rapid.IntRange(0, 300).Draw(t, "attachment size"))
		for j := range att {
			att[j] = byte(j * 7)
		}
		body = "--b2\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" +
			qpString(text("mixed text")) + "\r\n--b2\r\nContent-Type: application/octet-stream; name=\"" + "f.bin" +
			"\"\r\nContent-Transfer-Encoding: base64\r\n\r\n" + wrap76(base64.StdEncoding.EncodeToString(att)) + "\r\n--b2--\r\n" + pad
	}
	return []byte(h.String() + "\r\n" + body), subject
}

func qpString(s string) string {
	var b strings.Builder
	w := quotedprintable.NewWriter(&b)
	w.Write([]byte(s))
	w.Close()
	return b.String()
}

func wrap76(s string) string {
	var lines []string
	for len(s) > 76 {
		lines, s = append(lines, s[:76]), s[76:]
	}
	return strings.Join(append(lines, s), "\r\n")
}

// searchFolders are the folder names folder terms draw: the property
// tests' folders (after renames too) and one that never exists.
var searchFolders = []string{"INBOX", "Archive", "Trash", "Junk", "Old", "Nowhere"}

// searchGen draws SEARCH programs for a mailbox of n messages with UIDs up
// to maxUID; with def, only keys a mailbox definition may use.
type searchGen struct {
	n      int
	maxUID uint32
	def    bool
}

func (g searchGen) node(t *rapid.T, depth int) query.Node {
	kinds := []string{"ALL", "flag", "keyword", "recent", "text", "header", "date", "size", "uid", "seq"}
	switch {
	case g.def:
		kinds = slices.DeleteFunc(kinds, func(k string) bool { return k == "recent" || k == "uid" || k == "seq" })
		kinds = append(kinds, "folder", "onlyfolder") // definitions only (query/folder.go)
	case g.n == 0:
		kinds = kinds[:len(kinds)-1] // a sequence set needs a message ("*" in an empty mailbox is BAD)
	}
	if depth < 3 {
		kinds = append(kinds, "NOT", "OR", "list", "OR", "list")
	}
	switch rapid.SampledFrom(kinds).Draw(t, "key") {
	case "ALL":
		return query.All{}
	case "flag":
		return query.Flag{Key: rapid.SampledFrom([]string{"ANSWERED", "DELETED", "DRAFT", "FLAGGED", "SEEN"}).Draw(t, "flag"),
			Set: rapid.Bool().Draw(t, "set")}
	case "keyword":
		kw := rapid.SampledFrom(append([]string{`\Seen`, `\flagged`, `\Recent`, "junk", "$WORK", "none"}, searchKws...)).Draw(t, "keyword")
		return query.Keyword{Flag: kw, Set: rapid.Bool().Draw(t, "set")}
	case "recent":
		return query.Recent{Key: rapid.SampledFrom([]string{"RECENT", "NEW", "OLD"}).Draw(t, "recent key")}
	case "text":
		return query.Text{Key: rapid.SampledFrom([]string{"BCC", "BODY", "CC", "FROM", "SUBJECT", "TEXT", "TO"}).Draw(t, "text key"),
			Value: g.value(t)}
	case "header":
		return query.Text{Key: "HEADER", Field: rapid.SampledFrom(searchFields).Draw(t, "field"), Value: g.value(t)}
	case "date":
		d := searchBase.AddDate(0, 0, rapid.IntRange(-1, 14).Draw(t, "day"))
		return query.Date{Key: rapid.SampledFrom([]string{"BEFORE", "ON", "SINCE", "SENTBEFORE", "SENTON", "SENTSINCE"}).Draw(t, "date key"), Day: d}
	case "size":
		return query.Size{Larger: rapid.Bool().Draw(t, "larger"), N: uint64(rapid.IntRange(0, 3000).Draw(t, "size"))}
	case "uid":
		return query.UID{Set: uidSet(g.ranges(t, g.maxUID+3))}
	case "seq":
		return query.Seq{Set: seqSet(g.ranges(t, uint32(g.n)))}
	case "folder":
		return query.Folder{Name: rapid.SampledFrom(searchFolders).Draw(t, "folder")}
	case "onlyfolder":
		return query.OnlyFolder{Names: rapid.SliceOfNDistinct(rapid.SampledFrom(searchFolders), 1, 3, rapid.ID[string]).Draw(t, "folders")}
	case "NOT":
		return query.Not{X: g.node(t, depth+1)}
	case "OR":
		return query.Or{A: g.node(t, depth+1), B: g.node(t, depth+1)}
	default:
		var a query.And
		for range rapid.IntRange(2, 3).Draw(t, "list length") {
			a = append(a, g.node(t, depth+1))
		}
		return a
	}
}

// value is a search string: a vocabulary word, a piece of one, or "".
func (g searchGen) value(t *rapid.T) string {
	w := rapid.SampledFrom(append(searchWords, "", "example.com", "ALICE", "ø", "<", "@", "ß", "SS", "ss", "Σ", "ς", "ı", "I",
		"i\u0307", "Ü", "\u0308", "e\u0301", "FI", "abc")).Draw(t, "value")
	if r := []rune(w); len(r) > 2 && rapid.Bool().Draw(t, "substring") {
		i := rapid.IntRange(0, len(r)-1).Draw(t, "from")
		j := rapid.IntRange(i+1, len(r)).Draw(t, "to")
		w = string(r[i:j])
	}
	return w
}

// ranges draws 1..6 ranges over 1..hi, 0 being "*".
func (g searchGen) ranges(t *rapid.T, hi uint32) [][2]uint32 {
	rs := make([][2]uint32, rapid.IntRange(1, 6).Draw(t, "ranges"))
	for i := range rs {
		a := rapid.Uint32Range(0, hi).Draw(t, "from")
		b := a
		if rapid.Bool().Draw(t, "range") {
			b = rapid.Uint32Range(0, hi).Draw(t, "to")
		}
		rs[i] = [2]uint32{a, b}
	}
	return rs
}

func seqSet(rs [][2]uint32) imap.SeqSet {
	s := make(imap.SeqSet, len(rs))
	for i, r := range rs {
		s[i] = imap.SeqRange{Start: r[0], Stop: r[1]}
	}
	return s
}

func uidSet(rs [][2]uint32) imap.UIDSet {
	s := make(imap.UIDSet, len(rs))
	for i, r := range rs {
		s[i] = imap.UIDRange{Start: imap.UID(r[0]), Stop: imap.UID(r[1])}
	}
	return s
}

// storedMsgs reads back, in UID order, what the store wrote for a mailbox's
// messages, as the reference evaluator's input: the date and size columns
// straight from messages, the text columns too after checking them against
// the stored message (origTexts), the flags through Fetch (so this does not
// depend on which table holds them).
func storedMsgs(ctx context.Context, t interface{ Fatal(...any) }, s *store.Store, box store.Box) ([]query.Msg, []int64) {
	rows, err := s.Pool().Query(ctx, `SELECT mm.uid, m.id, m.subject, m.from_addr, m.to_addr, m.cc_addr, m.bcc_addr,
			t.header_text, t.body_text, m.internal_day, m.sent_day, m.size, m.header || m.body
		FROM mailbox_messages mm JOIN messages m ON m.id = mm.message_id JOIN message_texts t ON t.message_id = m.id
		WHERE mm.mailbox_id = $1 ORDER BY mm.uid`, box.ID())
	if err != nil {
		t.Fatal(err)
	}
	var msgs []query.Msg
	var ids []int64
	var uids []uint32
	for rows.Next() {
		var m query.Msg
		var uid, id int64
		var sent *time.Time
		var raw []byte
		if err := rows.Scan(&uid, &id, &m.Subject, &m.From, &m.To, &m.Cc, &m.Bcc, &m.HeaderText, &m.BodyText,
			&m.InternalDay, &sent, &m.Size, &raw); err != nil {
			t.Fatal(err)
		}
		if err := origTexts(&m, raw); err != nil {
			t.Fatal(fmt.Sprintf("uid %d: %v", uid, err))
		}
		if sent != nil {
			m.SentDay = *sent
		}
		m.UID, m.Seq = uint32(uid), uint32(len(msgs)+1)
		msgs, ids, uids = append(msgs, m), append(ids, id), append(uids, uint32(uid))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	i := 0
	err = s.Fetch(ctx, box, uids, store.FetchCols{Flags: true}, func(r *store.FetchRow) error {
		for i < len(msgs) && msgs[i].UID != r.UID {
			i++
		}
		if i == len(msgs) {
			return fmt.Errorf("fetch returned uid %d out of order", r.UID)
		}
		m := &msgs[i]
		m.Seen, m.Answered, m.Flagged, m.Deleted, m.Draft = r.Flags.Seen, r.Flags.Answered, r.Flags.Flagged, r.Flags.Deleted, r.Flags.Draft
		m.Keywords = r.Flags.Keywords
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return msgs, ids
}

// origTexts replaces m's text fields, read from the store's columns, by
// the message's own decoded text (message.Parse of its stored bytes), after
// checking that the columns hold exactly its query.Fold: so query.Eval folds
// the original text, as it does at delivery, and the SQL searches what the
// store wrote; a store that did not fold, or folded differently, fails here
// or in the comparison of the results.
func origTexts(m *query.Msg, raw []byte) error {
	p := message.Parse(raw)
	for _, c := range []struct {
		col    string
		stored *string
		parsed string
	}{
		{"subject", &m.Subject, p.Subject}, {"from_addr", &m.From, p.From}, {"to_addr", &m.To, p.To},
		{"cc_addr", &m.Cc, p.Cc}, {"bcc_addr", &m.Bcc, p.Bcc}, {"header_text", &m.HeaderText, p.HeaderText},
		{"body_text", &m.BodyText, p.BodyText},
	} {
		if want := query.Fold(c.parsed); *c.stored != want {
			return fmt.Errorf("stored %s %q, want query.Fold of message.Parse's %q: %q", c.col, *c.stored, c.parsed, want)
		}
		*c.stored = c.parsed
	}
	return nil
}

// seqResolver is the session's sequence set → UID set (imapd View.Resolve):
// the mailbox has no gaps between its UIDs, so a range maps to a UID range.
func seqResolver(msgs []query.Msg) func(imap.SeqSet) (imap.UIDSet, error) {
	return func(set imap.SeqSet) (imap.UIDSet, error) {
		n := uint32(len(msgs))
		var out imap.UIDSet
		for _, r := range set {
			lo, hi := r.Start, r.Stop
			if lo == 0 {
				lo = n
			}
			if hi == 0 {
				hi = n
			}
			if lo > hi {
				lo, hi = hi, lo
			}
			if lo == 0 || hi > n {
				return nil, fmt.Errorf("sequence number out of range")
			}
			out = append(out, imap.UIDRange{Start: imap.UID(msgs[lo-1].UID), Stop: imap.UID(msgs[hi-1].UID)})
		}
		return out, nil
	}
}

func describeMsg(m query.Msg) string {
	return fmt.Sprintf("uid %d seq %d: subject %q from %q to %q cc %q bcc %q internal_day %s sent_day %s size %d "+
		"seen=%v answered=%v flagged=%v deleted=%v draft=%v recent=%v keywords %q\nheader_text %q\nbody_text %q",
		m.UID, m.Seq, m.Subject, m.From, m.To, m.Cc, m.Bcc, m.InternalDay.Format("2006-01-02"), m.SentDay.Format("2006-01-02"),
		m.Size, m.Seen, m.Answered, m.Flagged, m.Deleted, m.Draft, m.Recent, m.Keywords, m.HeaderText, m.BodyText)
}

func TestPropertySearchCompilerMatchesEval(t *testing.T) {
	s, u := newStore(t)
	ctx := context.Background()
	run, programs, partial := 0, 0, 0
	defer func() { t.Logf("%d programs, %d of them matched some but not all messages", programs, partial) }()
	rapid.Check(t, func(rt *rapid.T) {
		run++
		name := fmt.Sprintf("prop%d", run)
		mb, err := s.CreateMailbox(ctx, u.ID, name, "", "")
		if err != nil {
			rt.Fatal(err)
		}
		defer s.DeleteMailbox(ctx, u.ID, name)

		n := rapid.IntRange(0, 20).Draw(rt, "messages")
		raws, subjects := map[uint32][]byte{}, map[uint32]string{}
		internal := map[uint32]time.Time{}
		for i := range n {
			raw, subject := genMessage(rt, i)
			kws := rapid.SliceOfDistinct(rapid.SampledFrom(searchKws), func(s string) string { return s }).Draw(rt, "keywords")
			f := store.Flags{Seen: rapid.Bool().Draw(rt, "seen"), Answered: rapid.Bool().Draw(rt, "answered"),
				Flagged: rapid.Bool().Draw(rt, "flagged"), Deleted: rapid.Bool().Draw(rt, "deleted"),
				Draft: rapid.Bool().Draw(rt, "draft"), Keywords: kws}
			date := drawTime(rt, "internal")
			d, err := s.Deliver(ctx, u.ID, raw, store.DeliverOptions{Mailbox: name, Flags: f, InternalDate: date})
			if err != nil {
				rt.Fatal(err)
			}
			raws[d.UID], internal[d.UID], subjects[d.UID] = raw, date, subject
			// A search reads indexed and not-yet-indexed texts differently
			// (query: compiler.text); draw a mix of both.
			if rapid.Bool().Draw(rt, "index the texts so far") {
				if _, err := s.IndexTexts(ctx); err != nil {
					rt.Fatal(err)
				}
			}
		}
		msgs, ids := storedMsgs(ctx, rt, s, mb.Box())
		if len(msgs) != n {
			rt.Fatalf("mailbox has %d messages, delivered %d", len(msgs), n)
		}
		viewSearchData(ctx, rt, s, mb.Box(), msgs, ids)
		checkStoredColumns(rt, msgs, raws, subjects, internal)

		var recent []uint32
		for i := range msgs {
			if rapid.Bool().Draw(rt, "recent") {
				msgs[i].Recent = true
				recent = append(recent, msgs[i].UID)
			}
		}
		var maxUID uint32
		if n > 0 {
			maxUID = msgs[n-1].UID
		}
		g := searchGen{n: n, maxUID: maxUID}
		for range rapid.IntRange(1, 10).Draw(rt, "programs") {
			prog := g.node(rt, 0)
			text := query.String(prog)
			rt.Logf("SEARCH %s", text)
			// The canonical text round-trips (the text form of the same program).
			if back, err := query.ParseDefinition(text); err != nil || query.String(back) != text {
				rt.Fatalf("String/ParseDefinition round trip of %q: %v, %v", text, back, err)
			}
			env := &query.Env{SeqToUID: seqResolver(msgs), MaxUID: maxUID, Recent: recent}
			got, err := s.Search(ctx, mb.Box(), prog, env)
			if err != nil {
				rt.Fatalf("Search(%s): %v", text, err)
			}
			var want []uint32
			for i := range msgs {
				if query.Eval(prog, &msgs[i], maxUID, uint32(n)) {
					want = append(want, msgs[i].UID)
				}
			}
			programs++
			if len(want) > 0 && len(want) < n {
				partial++
			}
			if !slices.Equal(got, want) {
				sql, _ := query.Compile(prog, &query.Env{Msg: "m", Member: "mm", Flags: "f", Texts: "mt", SeqToUID: seqResolver(msgs), MaxUID: maxUID, Recent: recent})
				var diff []string
				for i := range msgs {
					if slices.Contains(got, msgs[i].UID) != slices.Contains(want, msgs[i].UID) {
						diff = append(diff, describeMsg(msgs[i]))
					}
				}
				rt.Fatalf("SEARCH %s\nSQL:  %s\nSQL found %v, query.Eval %v; differing messages:\n%s",
					text, sql, got, want, strings.Join(diff, "\n"))
			}
		}
	})
}

// viewSearchData replaces the days and sizes of msgs, read from the
// columns, by the process's cached search data as a session's view
// evaluates them (store.SearchDataByID, imapd searchView): query.Eval then
// runs on what that path reads, checkStoredColumns checks it against the
// delivered message and the SQL's answer must equal it. The days must be
// the columns' dates.
func viewSearchData(ctx context.Context, t *rapid.T, s *store.Store, box store.Box, msgs []query.Msg, ids []int64) {
	sd, err := s.SearchDataByID(ctx, box, ids)
	if err != nil {
		t.Fatal(err)
	}
	date := func(t time.Time) string {
		if t.IsZero() {
			return "none"
		}
		return t.Format("2006-01-02")
	}
	for i := range msgs {
		m, d := &msgs[i], sd[i]
		var sent time.Time
		if d.SentDay != store.NoDay {
			sent = store.Day(d.SentDay)
		}
		if !d.Found || date(store.Day(d.InternalDay)) != date(m.InternalDay) || date(sent) != date(m.SentDay) || int(d.Size) != m.Size {
			t.Fatalf("uid %d: search data %+v (internal %s, sent %s), columns: internal_day %s, sent_day %s, size %d",
				m.UID, d, date(store.Day(d.InternalDay)), date(sent), date(m.InternalDay), date(m.SentDay), m.Size)
		}
		m.InternalDay, m.SentDay, m.Size = store.Day(d.InternalDay), sent, int(d.Size)
	}
}

// checkStoredColumns compares a few stored columns with message.Parse of the
// raw bytes and with the delivery options (the input side of the property).
func checkStoredColumns(t *rapid.T, msgs []query.Msg, raws map[uint32][]byte, subjects map[uint32]string, internal map[uint32]time.Time) {
	for _, m := range msgs {
		if m.Subject != subjects[m.UID] {
			t.Fatalf("uid %d: stored subject %q, the message's Subject decodes to %q (RFC 2047)", m.UID, m.Subject, subjects[m.UID])
		}
		raw := raws[m.UID]
		p := message.Parse(raw)
		for _, c := range []struct{ col, stored, parsed string }{
			{"subject", m.Subject, p.Subject}, {"from_addr", m.From, p.From}, {"to_addr", m.To, p.To},
			{"cc_addr", m.Cc, p.Cc}, {"bcc_addr", m.Bcc, p.Bcc}, {"header_text", m.HeaderText, p.HeaderText},
			{"body_text", m.BodyText, p.BodyText},
		} {
			if c.stored != c.parsed {
				t.Fatalf("uid %d: stored %s %q, message.Parse %q", m.UID, c.col, c.stored, c.parsed)
			}
		}
		if m.Size != len(raw) {
			t.Fatalf("uid %d: stored size %d, raw %d bytes", m.UID, m.Size, len(raw))
		}
		d := internal[m.UID]
		if got, want := m.InternalDay.Format("2006-01-02"), d.Format("2006-01-02"); got != want {
			t.Fatalf("uid %d: internal_day %s, internal date %s", m.UID, got, d)
		}
		want := ""
		if !p.SentDate.IsZero() {
			want = p.SentDate.Format("2006-01-02")
		}
		if got := m.SentDay.Format("2006-01-02"); (want == "") != m.SentDay.IsZero() || want != "" && got != want {
			t.Fatalf("uid %d: sent_day %v, Date: header parses as %v", m.UID, m.SentDay, p.SentDate)
		}
	}
}
