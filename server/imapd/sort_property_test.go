package imapd

import (
	"cmp"
	"decimail/server/query"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	"decimail/internal/imaptest"
	"decimail/server/store"
)

// A plain-Go reference of RFC 5256 over a model of the messages, written
// from the RFC's text independently of sort.go and thread.go (index-based
// containers instead of pointers, the base subject known by construction
// instead of extracted), checked against the server's SORT, THREAD
// REFERENCES and THREAD ORDEREDSUBJECT on random mailboxes: random
// Subject decorations, Message-ID/References/In-Reply-To graphs with
// missing parents, duplicate and absent Message-IDs, quoting variants,
// self references and cycles, tied dates, Date headers absent.

// refMsg is the model of one message.
type refMsg struct {
	seq           int
	base          string // the base subject, lower case (ASCII: its i;unicode-casemap order)
	reply         bool
	sent, arrival time.Time
	hasDate       bool
	size          int
	from, to, cc  string // addr-mailbox of the first address, lower case
	dfrom, dto    string // SORT=DISPLAY keys: display-name, else addr-spec, lower case
	id            string // canonical Message-ID, "" if none valid
	refs          []string
	inReplyTo     string
	header        string
	// The state TestPropertySortCachedOrder follows.
	uid           uint32
	seen, flagged bool
	gone          bool // expunged, still in the session's view (its EXPUNGE not sent)
}

func (m *refMsg) sentDate() time.Time {
	if m.hasDate {
		return m.sent
	}
	return m.arrival
}

var (
	refBases   = []string{"", "plan", "Plan b", "lunch", "[x]"}
	refIDs     = []string{"m0", "m1", "m2", "m3", "m4", "m5"}
	refMboxes  = []string{"", "alice", "Bob", "carol", "DAN"}
	refBaseDay = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
)

// drawSubject decorates a base subject with leaders, blobs, trailers and
// [fwd: ] wrappers ("base subject", rfc5256.txt:92-132); the reply flag is
// whether one of them marks a "reply or forward" (rfc5256.txt:438-441).
func drawSubject(t *rapid.T, base string, label string) (string, bool) {
	s, reply := base, false
	if base == "[x]" {
		// A lone blob stays: only a blob that "leaves a non-empty subj-base"
		// goes (rfc5256.txt:119-121);
		// only leaders may precede it.
		if rapid.Bool().Draw(t, label+" re") {
			return rapid.SampledFrom([]string{"Re: ", "[l] Fwd: ", "RE[2]: "}).Draw(t, label+" leader") + s, true
		}
		return s, false
	}
	if base == "" {
		return rapid.SampledFrom([]string{"", " ", "Re:", "[l] re: "}).Draw(t, label+" empty"), false
	}
	for i := range rapid.IntRange(0, 3).Draw(t, label+" decorations") {
		switch rapid.IntRange(0, 5).Draw(t, fmt.Sprintf("%s decoration %d", label, i)) {
		case 0:
			s, reply = "Re: "+s, true
		case 1:
			s, reply = "fwd: "+s, true
		case 2:
			s = "[list] " + s
		case 3:
			s, reply = s+" (fwd)", true
		case 4:
			s, reply = "[Fwd: "+s+"]", true
		case 5:
			s = "  " + s + "\t "
		}
	}
	return s, reply
}

// drawRefID renders a canonical id in one of its equivalent forms
// (a normalized msg-id, rfc5256.txt:399-411).
func drawRefID(t *rapid.T, id, label string) string {
	if rapid.Bool().Draw(t, label+" quoted") {
		return `<"` + id + `"@x>`
	}
	return "<" + id + "@x>"
}

func drawRefMailbox(t *rapid.T, seq int) []*refMsg {
	n := rapid.IntRange(1, 14).Draw(t, "messages")
	var ms []*refMsg
	for i := range n {
		ms = append(ms, drawRefMsg(t, fmt.Sprintf("msg %d", i+1), i+1))
	}
	return ms
}

// drawRefMsg draws one message of the model, labelled l.
func drawRefMsg(t *rapid.T, l string, seq int) *refMsg {
	m := &refMsg{seq: seq}
	var h strings.Builder
	base := rapid.SampledFrom(refBases).Draw(t, l+" base")
	var subj string
	subj, m.reply = drawSubject(t, base, l)
	m.base = strings.ToLower(base)
	if subj != "" {
		fmt.Fprintf(&h, "Subject: %s\r\n", subj)
	} else if m.base != "" {
		panic("empty subject")
	}
	addr := func(field string, dst, display *string) {
		if mb := rapid.SampledFrom(refMboxes).Draw(t, l+" "+field); mb != "" {
			*dst = strings.ToLower(mb)
			// A display-name (one RFC 2047 encoded), or none: then
			// the addr-spec is the display key.
			switch rapid.IntRange(0, 3).Draw(t, l+" "+field+" name") {
			case 0:
				fmt.Fprintf(&h, "%s: %s@x.test, zz@x.test\r\n", field, mb)
				*display = strings.ToLower(mb) + "@x.test"
			case 1:
				fmt.Fprintf(&h, "%s: Some One <%s@x.test>, zz@x.test\r\n", field, mb)
				*display = "some one"
			case 2:
				fmt.Fprintf(&h, "%s: \"%s Smith\" <%s@x.test>\r\n", field, mb, mb)
				*display = strings.ToLower(mb) + " smith"
			case 3:
				fmt.Fprintf(&h, "%s: =?UTF-8?Q?=C3=89mile?= <%s@x.test>\r\n", field, mb)
				*display = query.Fold("Émile") // i;unicode-casemap (rfc5256.txt:858-863)
			}
		}
	}
	var dcc string
	addr("From", &m.from, &m.dfrom)
	addr("To", &m.to, &m.dto)
	addr("Cc", &m.cc, &dcc)
	m.arrival = refBaseDay.Add(time.Duration(rapid.IntRange(0, 3).Draw(t, l+" arrival")) * time.Hour)
	if m.hasDate = rapid.IntRange(0, 3).Draw(t, l+" dated") > 0; m.hasDate {
		// A few hours around the arrivals, in other zones too: ties.
		m.sent = refBaseDay.Add(time.Duration(rapid.IntRange(-1, 4).Draw(t, l+" sent")) * time.Hour)
		zone := time.FixedZone("", 3600*rapid.SampledFrom([]int{0, -3, 5}).Draw(t, l+" zone"))
		fmt.Fprintf(&h, "Date: %s\r\n", m.sent.In(zone).Format(time.RFC1123Z))
	}
	switch rapid.IntRange(0, 4).Draw(t, l+" message-id") {
	case 0: // none
	case 1:
		h.WriteString("Message-ID: not-an-id\r\n")
	default:
		id := rapid.SampledFrom(refIDs).Draw(t, l+" id")
		m.id = "<" + id + "@x>"
		fmt.Fprintf(&h, "Message-ID: %s\r\n", drawRefID(t, id, l+" id"))
	}
	if refs := rapid.SliceOfN(rapid.SampledFrom(refIDs), 0, 4).Draw(t, l+" references"); len(refs) > 0 {
		var rs []string
		for j, r := range refs {
			m.refs = append(m.refs, "<"+r+"@x>")
			rs = append(rs, drawRefID(t, r, fmt.Sprintf("%s ref %d", l, j)))
		}
		fmt.Fprintf(&h, "References: %s\r\n", strings.Join(rs, " "))
	}
	if rapid.Bool().Draw(t, l+" has in-reply-to") {
		r := rapid.SampledFrom(refIDs).Draw(t, l+" in-reply-to")
		m.inReplyTo = "<" + r + "@x>"
		fmt.Fprintf(&h, "In-Reply-To: %s (sent by someone)\r\n", drawRefID(t, r, l+" in-reply-to"))
	}
	h.WriteString("\r\n" + strings.Repeat("y", rapid.IntRange(0, 2).Draw(t, l+" body")*50) + "\r\n")
	m.header = h.String()
	m.size = len(m.header)
	return m
}

// refSort is SORT over the model ("Sorting is in ascending order",
// rfc5256.txt:219-222).
func refSort(ms []*refMsg, keys []sortKey) []int {
	out := slices.Clone(ms)
	slices.SortStableFunc(out, func(a, b *refMsg) int { // stable over sequence order: the implicit last key
		for _, k := range keys {
			var r int
			switch k.key {
			case "ARRIVAL":
				r = a.arrival.Compare(b.arrival)
			case "DATE":
				r = a.sentDate().Compare(b.sentDate())
			case "SIZE":
				r = cmp.Compare(a.size, b.size)
			case "SUBJECT":
				r = cmp.Compare(a.base, b.base)
			case "FROM":
				r = cmp.Compare(a.from, b.from)
			case "TO":
				r = cmp.Compare(a.to, b.to)
			case "CC":
				r = cmp.Compare(a.cc, b.cc)
			case "DISPLAYFROM":
				r = cmp.Compare(a.dfrom, b.dfrom)
			case "DISPLAYTO":
				r = cmp.Compare(a.dto, b.dto)
			}
			if k.reverse {
				r = -r
			}
			if r != 0 {
				return r
			}
		}
		return 0
	})
	seqs := make([]int, len(out))
	for i, m := range out {
		seqs[i] = m.seq
	}
	return seqs
}

// refTree is the reference's thread tree: containers by index, msg -1 for
// a dummy.
type refTree struct {
	msg    []int // index into ms, -1: dummy
	parent []int // -1: none
	kids   [][]int
	ms     []*refMsg
}

func (t *refTree) add(msg int) int {
	t.msg, t.parent, t.kids = append(t.msg, msg), append(t.parent, -1), append(t.kids, nil)
	return len(t.msg) - 1
}

func (t *refTree) isAncestor(a, c int) bool { // a is c or above it
	for ; c >= 0; c = t.parent[c] {
		if c == a {
			return true
		}
	}
	return false
}

func (t *refTree) setParent(p, c int) {
	if old := t.parent[c]; old >= 0 {
		t.kids[old] = slices.DeleteFunc(t.kids[old], func(x int) bool { return x == c })
	}
	t.parent[c] = p
	if p >= 0 {
		t.kids[p] = append(t.kids[p], c)
	}
}

// key is the message a container sorts and is named by: its own, or its
// first child's (dummies).
func (t *refTree) key(c int) *refMsg {
	for t.msg[c] < 0 {
		c = t.kids[c][0]
	}
	return t.ms[t.msg[c]]
}

func (t *refTree) before(a, b int) int {
	ka, kb := t.key(a), t.key(b)
	if r := ka.sentDate().Compare(kb.sentDate()); r != 0 {
		return r
	}
	return cmp.Compare(ka.seq, kb.seq)
}

// refLinked is THREAD=REFERENCES from "(1) For each searched message" to
// "(3) Prune dummy messages" (rfc5256.txt:455-534): the tree of
// containers and its top level, pruned, not yet sorted.
func refLinked(ms []*refMsg) (*refTree, []int) {
	t := &refTree{ms: ms}
	byID := map[string]int{}
	lookup := func(id string) int {
		c, ok := byID[id]
		if !ok {
			c = t.add(-1)
			byID[id] = c
		}
		return c
	}
	for i, m := range ms {
		// 1.A
		self := -1
		if m.id != "" {
			if c := lookup(m.id); t.msg[c] < 0 {
				self = c
			}
		}
		if self < 0 {
			self = t.add(-1)
		}
		t.msg[self] = i
		refs := m.refs
		if len(refs) == 0 && m.inReplyTo != "" {
			refs = []string{m.inReplyTo}
		}
		var cs []int
		for _, r := range refs {
			cs = append(cs, lookup(r))
		}
		for j := 0; j+1 < len(cs); j++ {
			p, c := cs[j], cs[j+1]
			if t.parent[c] < 0 && !t.isAncestor(c, p) {
				t.setParent(p, c)
			}
		}
		// 1.B
		t.setParent(-1, self)
		if len(cs) > 0 && !t.isAncestor(self, cs[len(cs)-1]) {
			t.setParent(cs[len(cs)-1], self)
		}
	}
	// 2: the root's children, in container order.
	var top []int
	for c := range t.msg {
		if t.parent[c] < 0 {
			top = append(top, c)
		}
	}
	// 3: prune.
	var prune func(list []int, atRoot bool) []int
	prune = func(list []int, atRoot bool) []int {
		var out []int
		for _, c := range list {
			t.kids[c] = prune(t.kids[c], false)
			switch {
			case t.msg[c] >= 0:
				out = append(out, c)
			case len(t.kids[c]) == 0:
			case atRoot && len(t.kids[c]) > 1:
				out = append(out, c)
			default:
				out = append(out, t.kids[c]...)
			}
		}
		return out
	}
	top = prune(top, true)
	for _, c := range top {
		for _, k := range t.kids[c] {
			t.parent[k] = c
		}
	}
	return t, top
}

// refThreads are the threads of REFERENCES without its subject merging
// (refLinked: the links by References, In-Reply-To and Message-ID, dummy
// parents included): each the indexes into ms of one top-level
// container's messages, in no order.
func refThreads(ms []*refMsg) [][]int {
	t, top := refLinked(ms)
	var out [][]int
	for _, c := range top {
		var th []int
		var walk func(c int)
		walk = func(c int) {
			if t.msg[c] >= 0 {
				th = append(th, t.msg[c])
			}
			for _, k := range t.kids[c] {
				walk(k)
			}
		}
		walk(c)
		out = append(out, th)
	}
	return out
}

// refReferences is THREAD=REFERENCES step by step, from "For each searched
// message" (rfc5256.txt:455-645).
func refReferences(ms []*refMsg) []int /* top level */ {
	t, top := refLinked(ms)
	// 4
	for _, c := range top {
		if t.msg[c] < 0 {
			slices.SortFunc(t.kids[c], t.before)
		}
	}
	slices.SortFunc(top, t.before)
	// 5
	subj := func(c int) string { return t.key(c).base }
	isReply := func(c int) bool { return t.msg[c] >= 0 && t.ms[t.msg[c]].reply }
	table := map[string]int{}
	for _, c := range top {
		s := subj(c)
		if s == "" {
			continue
		}
		old, ok := table[s]
		if !ok {
			table[s] = c
		} else if t.msg[old] >= 0 && (t.msg[c] < 0 || isReply(old) && !isReply(c)) {
			table[s] = c
		}
	}
	inTop := map[int]bool{}
	for _, c := range top {
		inTop[c] = true
	}
	for _, c := range slices.Clone(top) {
		if !inTop[c] {
			continue
		}
		s := subj(c)
		old := table[s]
		if s == "" || old == c {
			continue
		}
		switch {
		case t.msg[old] < 0 && t.msg[c] < 0:
			for _, k := range t.kids[c] {
				t.parent[k] = old
			}
			t.kids[old] = append(t.kids[old], t.kids[c]...)
			t.kids[c] = nil
			inTop[c] = false
		case t.msg[old] < 0 || isReply(c) && !isReply(old):
			t.kids[old] = append(t.kids[old], c)
			t.parent[c] = old
			inTop[c] = false
		default:
			d := t.add(-1)
			t.kids[d] = []int{c, old}
			t.parent[c], t.parent[old] = d, d
			inTop[c], inTop[old], inTop[d] = false, false, true
			table[s] = d
			top = append(top, d)
		}
	}
	top = slices.DeleteFunc(top, func(c int) bool { return !inTop[c] })
	// 6
	var sortKids func(c int)
	sortKids = func(c int) {
		for _, k := range t.kids[c] {
			sortKids(k)
		}
		slices.SortFunc(t.kids[c], t.before)
	}
	for _, c := range top {
		sortKids(c)
	}
	slices.SortFunc(top, t.before)
	refTreeOut = t
	return top
}

var refTreeOut *refTree

func (t *refTree) render(b *strings.Builder, c int) {
	if t.msg[c] >= 0 {
		b.WriteString(strconv.Itoa(t.ms[t.msg[c]].seq))
	}
	k := t.kids[c]
	if len(k) > 0 && t.msg[c] >= 0 {
		b.WriteByte(' ')
	}
	if len(k) == 1 {
		t.render(b, k[0])
		return
	}
	for _, x := range k {
		b.WriteByte('(')
		t.render(b, x)
		b.WriteByte(')')
	}
}

// refThreadString is the THREAD REFERENCES response, numbered by UID or
// by sequence number (ms' seq): UID order is sequence order, so the
// threading is the same.
func refThreadString(ms []*refMsg, uid bool) string {
	if !uid {
		return refReferencesString(ms)
	}
	var us []*refMsg
	for _, m := range ms {
		mm := *m
		mm.seq = int(m.uid)
		us = append(us, &mm)
	}
	return refReferencesString(us)
}

// goneBefore counts the gone messages of box before index i.
func goneBefore(box []*refMsg, i int) int {
	n := 0
	for _, m := range box[:i] {
		if m.gone {
			n++
		}
	}
	return n
}

func refReferencesString(ms []*refMsg) string {
	top := refReferences(ms)
	t := refTreeOut
	var b strings.Builder
	b.WriteString("* THREAD")
	if len(top) > 0 {
		b.WriteByte(' ')
	}
	for _, c := range top {
		b.WriteByte('(')
		t.render(&b, c)
		b.WriteByte(')')
	}
	return b.String()
}

// refOrderedSubject is THREAD=ORDEREDSUBJECT (rfc5256.txt:360-379).
func refOrderedSubject(ms []*refMsg) string {
	groups := map[string][]*refMsg{}
	var order []string
	for _, m := range ms {
		if _, ok := groups[m.base]; !ok {
			order = append(order, m.base)
		}
		groups[m.base] = append(groups[m.base], m)
	}
	byDate := func(a, b *refMsg) int {
		if r := a.sentDate().Compare(b.sentDate()); r != 0 {
			return r
		}
		return cmp.Compare(a.seq, b.seq)
	}
	for _, g := range groups {
		slices.SortFunc(g, byDate)
	}
	slices.SortFunc(order, func(a, b string) int { return byDate(groups[a][0], groups[b][0]) })
	var b strings.Builder
	b.WriteString("* THREAD")
	if len(order) > 0 {
		b.WriteByte(' ')
	}
	for _, s := range order {
		g := groups[s]
		fmt.Fprintf(&b, "(%d", g[0].seq)
		switch {
		case len(g) == 2:
			fmt.Fprintf(&b, " %d", g[1].seq)
		case len(g) > 2:
			b.WriteByte(' ')
			for _, m := range g[1:] {
				fmt.Fprintf(&b, "(%d)", m.seq)
			}
		}
		b.WriteByte(')')
	}
	return b.String()
}

var sortKeyNames = []string{"ARRIVAL", "CC", "DATE", "FROM", "SIZE", "SUBJECT", "TO", "DISPLAYFROM", "DISPLAYTO"}

// drawSortKeys draws 1-3 sort criteria, and their words in a command.
func drawSortKeys(rt *rapid.T, label string) ([]sortKey, string) {
	var keys []sortKey
	var words []string
	for i := range rapid.IntRange(1, 3).Draw(rt, label+"sort keys") {
		k := sortKey{key: rapid.SampledFrom(sortKeyNames).Draw(rt, fmt.Sprintf("%skey %d", label, i)),
			reverse: rapid.Bool().Draw(rt, fmt.Sprintf("%sreverse %d", label, i))}
		keys = append(keys, k)
		if k.reverse {
			words = append(words, "REVERSE")
		}
		words = append(words, k.key)
	}
	return keys, strings.Join(words, " ")
}

func TestPropertySortThread(t *testing.T) {
	e := newEnv(t)
	c := e.dial()
	folder := 0
	rapid.Check(t, func(rt *rapid.T) {
		folder++
		name := fmt.Sprintf("P%d", folder)
		c.OK("CREATE " + name)
		ms := drawRefMailbox(rt, folder)
		for _, m := range ms {
			raw := m.header
			if _, err := e.st.Deliver(t.Context(), e.user.ID, []byte(raw), store.DeliverOptions{Mailbox: name, InternalDate: m.arrival}); err != nil {
				rt.Fatal(err)
			}
		}
		c.OK("SELECT " + name)
		line := func(cmd string) string {
			u := c.OK(cmd)
			if len(u) != 1 {
				rt.Fatalf("%s: %d untagged responses: %v", cmd, len(u), u)
			}
			return strings.TrimRight(u[0].Raw, "\r\n")
		}
		keys, words := drawSortKeys(rt, "")
		// ALL is matched on the session's flags with the process's cached
		// keys (sortFromView), LARGER 0 in Postgres (store.SortKeys): the
		// same messages, the same order.
		crit := rapid.SampledFrom([]string{"ALL", "LARGER 0"}).Draw(rt, "criteria")
		cmd := "SORT (" + words + ") UTF-8 " + crit
		want := "* SORT"
		for _, s := range refSort(ms, keys) {
			want += " " + strconv.Itoa(s)
		}
		if got := line(cmd); got != want {
			rt.Fatalf("%s\n got  %s\n want %s", cmd, got, want)
		}
		if got, want := line("THREAD REFERENCES UTF-8 "+crit), refReferencesString(ms); got != want {
			rt.Fatalf("THREAD REFERENCES\n got  %s\n want %s", got, want)
		}
		if got, want := line("THREAD ORDEREDSUBJECT UTF-8 "+crit), refOrderedSubject(ms); got != want {
			rt.Fatalf("THREAD ORDEREDSUBJECT\n got  %s\n want %s", got, want)
		}
	})
}

// cachedCrits are the programs of TestPropertySortCachedOrder, with their
// test on the model: flags only (answered from the session's flags and its
// kept sort orders, sortorder.go), and one the store answers
// (store.SortKeys) for comparison.
var cachedCrits = []struct {
	crit  string
	match func(m *refMsg) bool
}{
	{"ALL", func(m *refMsg) bool { return true }},
	{"UNSEEN", func(m *refMsg) bool { return !m.seen }},
	{"SEEN", func(m *refMsg) bool { return m.seen }},
	{"FLAGGED", func(m *refMsg) bool { return m.flagged }},
	{"OR SEEN FLAGGED", func(m *refMsg) bool { return m.seen || m.flagged }},
	{"UNSEEN UNFLAGGED", func(m *refMsg) bool { return !m.seen && !m.flagged }},
	{"UNSEEN LARGER 0", func(m *refMsg) bool { return !m.seen }},
}

// TestPropertySortCachedOrder: SORT, UID SORT, ESORT and THREAD REFERENCES
// in one session, with changes between them — messages delivered,
// expunged by this session and by another (whose EXPUNGE this session
// gets later), flags changed by both — against the RFC 5256 reference over
// the model of the session's view. The view keeps its messages in sorted
// order per list of criteria and maintains it across the changes
// (sortorder.go); this checks that the kept order stays exact. A message
// expunged by the other session and not yet announced keeps its sequence
// number and matches nothing (deleted: OK [EXPUNGEISSUED]). Selecting the
// mailbox again starts a view whose orders begin as the ones the last
// view shared, older than the mailbox (sharedOrders). THREAD REFERENCES
// and UID THREAD REFERENCES, here and in the other session (whose view is
// ahead of this one's, or behind), check the threadings the server keeps
// by mailbox and program (threadstate.go: reused for the same messages,
// updated for new ones, made again otherwise).
func TestPropertySortCachedOrder(t *testing.T) {
	e := newEnv(t)
	c, c2 := e.dial(), e.dial()
	folder := 0
	rapid.Check(t, func(rt *rapid.T) {
		folder++
		name := fmt.Sprintf("Q%d", folder)
		c.OK("CREATE " + name)
		var box []*refMsg // the mailbox's messages and gone ones, in UID order; box[:known] is the session's view
		known := 0
		draw := func(l string) *refMsg {
			m := drawRefMsg(rt, l, 0)
			m.seen, m.flagged = rapid.Bool().Draw(rt, l+" seen"), rapid.Bool().Draw(rt, l+" flagged")
			return m
		}
		deliver := func(m *refMsg) {
			d, err := e.st.Deliver(t.Context(), e.user.ID, []byte(m.header), store.DeliverOptions{Mailbox: name,
				InternalDate: m.arrival, Flags: store.Flags{Seen: m.seen, Flagged: m.flagged}})
			if err != nil {
				rt.Fatal(err)
			}
			m.uid = d.UID
			box = append(box, m)
		}
		for i := range rapid.IntRange(0, 10).Draw(rt, "messages") {
			deliver(draw(fmt.Sprintf("msg %d", i+1)))
		}
		// apply follows the session's view through its untagged responses:
		// EXPUNGE takes out a gone message, EXISTS shows the new ones.
		apply := func(us []*imaptest.Resp) {
			for _, r := range us {
				if r.Tag != "*" || len(r.Data) < 2 {
					continue
				}
				n, err := strconv.Atoi(r.Data[0].S)
				if err != nil {
					continue
				}
				switch strings.ToUpper(r.Data[1].S) {
				case "EXPUNGE":
					if n < 1 || n > known || !box[n-1].gone {
						rt.Fatalf("%s: not a gone message of the view (%d known)", r.Raw, known)
					}
					box = slices.Delete(box, n-1, n)
					known--
				case "EXISTS":
					if n < known || n > len(box) {
						rt.Fatalf("%s: %d known, %d in the mailbox", r.Raw, known, len(box))
					}
					known = n
				}
			}
		}
		apply(c.OK("SELECT " + name))
		if known != len(box) {
			rt.Fatalf("SELECT: %d messages, want %d", known, len(box))
		}
		c2.OK("SELECT " + name)
		uidSet := func(ms []*refMsg) string {
			var us []string
			for _, m := range ms {
				us = append(us, strconv.FormatUint(uint64(m.uid), 10))
			}
			return strings.Join(us, ",")
		}
		pick := func(l string, n int) []*refMsg { // live messages among box[:n]
			var out []*refMsg
			for i, m := range box[:n] {
				if !m.gone && rapid.IntRange(0, 3).Draw(rt, fmt.Sprintf("%s %d", l, i)) == 0 {
					out = append(out, m)
				}
			}
			return out
		}
		tags := 0
		type criteria struct {
			keys  []sortKey
			words string
		}
		var pool []criteria
		for i := range 2 {
			keys, words := drawSortKeys(rt, fmt.Sprintf("pool %d ", i))
			pool = append(pool, criteria{keys, words})
		}
		threadCrits := []int{0, rapid.IntRange(1, len(cachedCrits)-1).Draw(rt, "thread criteria")} // ALL and one more
		for round := range rapid.IntRange(1, 8).Draw(rt, "rounds") {
			rl := fmt.Sprintf("round %d ", round)
			// The commands, each against the reference on the view now.
			for q := range rapid.IntRange(1, 3).Draw(rt, rl+"commands") {
				ql := fmt.Sprintf("%scommand %d ", rl, q)
				// Mostly criteria used before in this session: their kept order.
				keys, words := drawSortKeys(rt, ql)
				if k := rapid.IntRange(0, len(pool)).Draw(rt, ql+"pool"); k < len(pool) {
					keys, words = pool[k].keys, pool[k].words
				}
				cc := rapid.IntRange(0, len(cachedCrits)-1).Draw(rt, ql+"criteria")
				thread := rapid.IntRange(0, 2).Draw(rt, ql+"thread") > 0
				if thread {
					// One of the check's two programs: mostly the kept
					// threading of the last THREAD with it.
					cc = threadCrits[rapid.IntRange(0, 1).Draw(rt, ql+"thread criteria")]
				}
				crit := cachedCrits[cc]
				view := box[:known]
				issued := false
				var found []*refMsg // matches, seq set to their sequence number
				for i, m := range view {
					issued = issued || m.gone
					if !m.gone && crit.match(m) {
						mm := *m
						mm.seq = i + 1
						found = append(found, &mm)
					}
				}
				bySeq := map[int]*refMsg{}
				for _, m := range found {
					bySeq[m.seq] = m
				}
				uid := rapid.Bool().Draw(rt, ql+"uid")
				num := func(seq int) uint32 {
					if uid {
						return bySeq[seq].uid
					}
					return uint32(seq)
				}
				prefix := ""
				if uid {
					prefix = "UID "
				}
				tags++
				tag := fmt.Sprintf("s%d", tags)
				var cmd, want string
				switch form := rapid.IntRange(0, 3).Draw(rt, ql+"form"); form {
				case 0, 1: // SORT
					cmd = prefix + "SORT (" + words + ") UTF-8 " + crit.crit
					want = "* SORT"
					for _, s := range refSort(found, keys) {
						want += fmt.Sprintf(" %d", num(s))
					}
				case 2: // ESORT PARTIAL lo:hi: the walk stops at hi
					lo := rapid.IntRange(1, 8).Draw(rt, ql+"lo")
					hi := lo + rapid.IntRange(0, 6).Draw(rt, ql+"hi")
					cmd = fmt.Sprintf("%sSORT RETURN (PARTIAL %d:%d) (%s) UTF-8 %s", prefix, lo, hi, words, crit.crit)
					var nums []uint32
					for j, s := range refSort(found, keys) {
						if j+1 >= lo && j+1 <= hi {
							nums = append(nums, num(s))
						}
					}
					part := "NIL"
					if len(nums) > 0 {
						part = numSet(nums)
					}
					want = fmt.Sprintf(`* ESEARCH (TAG "%s") %sPARTIAL (%d:%d %s)`, tag, prefix, lo, hi, part)
				case 3: // ESORT MIN COUNT
					cmd = prefix + "SORT RETURN (MIN COUNT) (" + words + ") UTF-8 " + crit.crit
					want = fmt.Sprintf(`* ESEARCH (TAG "%s") %s`, tag, prefix)
					if s := refSort(found, keys); len(s) > 0 {
						want += fmt.Sprintf("MIN %d ", num(s[0]))
					}
					want += fmt.Sprintf("COUNT %d", len(found))
				}
				if thread {
					cmd, want = prefix+"THREAD REFERENCES UTF-8 "+crit.crit, refThreadString(found, uid)
				}
				us, done := c.DoTag(tag, cmd)
				if done.Status != "OK" {
					rt.Fatalf("%s: %s", cmd, done.Raw)
				}
				got := ""
				for _, r := range us {
					if r.Tag == "*" && len(r.Data) > 0 && (r.Data[0].S == "SORT" || r.Data[0].S == "ESEARCH" || r.Data[0].S == "THREAD") {
						if got != "" {
							rt.Fatalf("%s: two answers: %s", cmd, us)
						}
						got = strings.TrimRight(r.Raw, "\r\n")
					}
				}
				if got != want {
					rt.Fatalf("%s (view of %d, box of %d)\n got  %s\n want %s", cmd, known, len(box), got, want)
				}
				gotIssued := done.HasCode && len(done.Code) > 0 && strings.EqualFold(done.Code[0].S, "EXPUNGEISSUED")
				if gotIssued != issued {
					rt.Fatalf("%s: %s, want EXPUNGEISSUED %v", cmd, done.Raw, issued)
				}
				apply(us)
			}
			// The changes before the next commands.
			for a := range rapid.IntRange(0, 3).Draw(rt, rl+"changes") {
				al := fmt.Sprintf("%schange %d ", rl, a)
				switch rapid.IntRange(0, 6).Draw(rt, al+"kind") {
				case 6: // threaded in the other session, which knows every message
					c2.OK("NOOP")
					crit := cachedCrits[threadCrits[rapid.IntRange(0, 1).Draw(rt, al+"criteria")]]
					uid := rapid.Bool().Draw(rt, al+"uid")
					var found []*refMsg
					for _, m := range box {
						if !m.gone {
							if mm := *m; crit.match(&mm) {
								mm.seq = len(found) + 1 // renumbered below
								found = append(found, &mm)
							}
						}
					}
					seq := 0
					for i := range found {
						for seq < len(box) && box[seq].uid != found[i].uid {
							seq++
						}
						found[i].seq = seq + 1 - goneBefore(box, seq)
					}
					prefix := ""
					if uid {
						prefix = "UID "
					}
					cmd := prefix + "THREAD REFERENCES UTF-8 " + crit.crit
					got := ""
					for _, r := range c2.OK(cmd) {
						if r.Tag == "*" && len(r.Data) > 0 && r.Data[0].S == "THREAD" {
							got = strings.TrimRight(r.Raw, "\r\n")
						}
					}
					if want := refThreadString(found, uid); got != want {
						rt.Fatalf("other session: %s\n got  %s\n want %s", cmd, got, want)
					}
				case 5: // selected again: a new view starts from the orders the last one shared (sharedOrders)
					box = slices.DeleteFunc(box, func(m *refMsg) bool { return m.gone })
					known = 0
					apply(c.OK("SELECT " + name))
					if known != len(box) {
						rt.Fatalf("SELECT: %d messages, want %d", known, len(box))
					}
				case 0: // delivered
					for i := range rapid.IntRange(1, 4).Draw(rt, al+"new") {
						deliver(draw(fmt.Sprintf("%snew %d", al, i)))
					}
				case 1, 2: // flags changed, here or in the other session
					other := rapid.Bool().Draw(rt, al+"other")
					n := known
					if other {
						c2.OK("NOOP") // it knows every message
						n = len(box)
					}
					ms := pick(al+"pick", n)
					if len(ms) == 0 {
						continue
					}
					flag := rapid.SampledFrom([]string{`\Seen`, `\Flagged`}).Draw(rt, al+"flag")
					set := rapid.Bool().Draw(rt, al+"set")
					op := "-FLAGS.SILENT"
					if set {
						op = "+FLAGS.SILENT"
					}
					cmd := "UID STORE " + uidSet(ms) + " " + op + " (" + flag + ")"
					if other {
						c2.OK(cmd)
					} else {
						apply(c.OK(cmd))
					}
					for _, m := range ms {
						if flag == `\Seen` {
							m.seen = set
						} else {
							m.flagged = set
						}
					}
				case 3, 4: // expunged, here or in the other session
					other := rapid.Bool().Draw(rt, al+"other")
					n := known
					if other {
						c2.OK("NOOP")
						n = len(box)
					}
					ms := pick(al+"pick", n)
					if len(ms) == 0 {
						continue
					}
					cl := c
					if other {
						cl = c2
					}
					apply2 := func(us []*imaptest.Resp) {
						if !other {
							apply(us)
						}
					}
					apply2(cl.OK("UID STORE " + uidSet(ms) + ` +FLAGS.SILENT (\Deleted)`))
					for _, m := range ms {
						m.gone = true
					}
					// Those the session was not told of yet it never will be.
					box = append(box[:known], slices.DeleteFunc(slices.Clone(box[known:]), func(m *refMsg) bool { return m.gone })...)
					apply2(cl.OK("EXPUNGE"))
				}
			}
			if rapid.Bool().Draw(rt, rl+"noop") {
				apply(c.OK("NOOP"))
			}
		}
		apply(c.OK("NOOP"))
		c2.OK("NOOP")
	})
}
