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
		l := fmt.Sprintf("msg %d", i+1)
		m := &refMsg{seq: i + 1}
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
		ms = append(ms, m)
	}
	return ms
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
		var keys []sortKey
		var words []string
		for i := range rapid.IntRange(1, 3).Draw(rt, "sort keys") {
			k := sortKey{key: rapid.SampledFrom(sortKeyNames).Draw(rt, fmt.Sprintf("key %d", i)), reverse: rapid.Bool().Draw(rt, fmt.Sprintf("reverse %d", i))}
			keys = append(keys, k)
			if k.reverse {
				words = append(words, "REVERSE")
			}
			words = append(words, k.key)
		}
		// ALL is matched on the session's flags with the process's cached
		// keys (sortFromView), LARGER 0 in Postgres (store.SortKeys): the
		// same messages, the same order.
		crit := rapid.SampledFrom([]string{"ALL", "LARGER 0"}).Draw(rt, "criteria")
		cmd := "SORT (" + strings.Join(words, " ") + ") UTF-8 " + crit
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
