package imapd

// THREAD and UID THREAD (RFC 5256 §3, "BASE.6.4.THREAD",
// rfc5256.txt:306-356): the search of SORT (sort.go: sortSearch), then
// ORDEREDSUBJECT or REFERENCES threading over the found messages, answered
// by one "* THREAD" response of "zero or more threads" (rfc5256.txt:700-715).

import (
	"slices"
	"strconv"
	"strings"

	"decimail/server/message"
)

func init() {
	register("THREAD", cmdSpec{states: selected, ext: "THREAD", fn: func(c *Conn, cmd *Command) error { return cmdThread(c, cmd, false) }})
	register("UID THREAD", cmdSpec{states: selected, ext: "THREAD", fn: func(c *Conn, cmd *Command) error { return cmdThread(c, cmd, true) }})
}

// threadAlgorithms are the thread-alg values implemented (rfc5256.txt:769),
// each advertised as THREAD=<alg> (misc.go: extensions).
var threadAlgorithms = map[string]func([]*sortItem) []*threadNode{
	"ORDEREDSUBJECT": threadOrderedSubject,
	"REFERENCES":     threadReferences,
}

// cmdThread: thread = ["UID" SP] "THREAD" SP thread-alg SP search-criteria
// (rfc5256.txt:767).
func cmdThread(c *Conn, cmd *Command, uid bool) error {
	args := cmd.Args
	if len(args) == 0 || args[0].Kind != Atom {
		return Syntax("THREAD takes a threading algorithm")
	}
	alg := strings.ToUpper(args[0].S)
	thread, ok := threadAlgorithms[alg]
	if !ok || !c.capable("THREAD="+alg) {
		return Syntax("unknown threading algorithm " + args[0].S)
	}
	items, issued, err := c.sortSearch(cmd, args[1:], alg == "REFERENCES")
	if err != nil {
		return err
	}
	b := []byte("THREAD") // thread-data = "THREAD" [SP 1*thread-list], rfc5256.txt:781
	roots := thread(items)
	if len(roots) > 0 {
		b = append(b, ' ')
	}
	for _, r := range roots {
		b = append(b, '(')
		b = r.write(b, uid)
		b = append(b, ')')
	}
	c.Untagged("%s", b)
	return c.sortReply(cmd, issued)
}

// threadNode is a message of a thread, or a dummy (msg nil) standing for
// a parent that was not found.
type threadNode struct {
	msg      *sortItem
	id       string // normalized Message-ID (REFERENCES)
	parent   *threadNode
	children []*threadNode
}

// write appends the node's thread-members or thread-nested
// (rfc5256.txt:791-795): its number, then a single child continues the
// list ("successive parent and child"), several children nest, each in
// parentheses ("indicating successive parent and child", rfc5256.txt:706-711;
// the example "* THREAD (2)(3 6 (4 23)(44 7 96))"). A dummy contributes no number:
// "((3)(5))", siblings of a parent that "does not exist in the mailbox"
// (rfc5256.txt:746-750).
func (n *threadNode) write(b []byte, uid bool) []byte {
	if n.msg != nil {
		b = strconv.AppendUint(b, uint64(number(n.msg, uid)), 10)
	}
	switch len(n.children) {
	case 0:
	case 1:
		if n.msg != nil {
			b = append(b, ' ')
		}
		b = n.children[0].write(b, uid)
	default:
		if n.msg != nil {
			b = append(b, ' ')
		}
		for _, ch := range n.children {
			b = append(b, '(')
			b = ch.write(b, uid)
			b = append(b, ')')
		}
	}
	return b
}

// first is the message a node sorts by: its own, or its first child's for
// a dummy ("use the first child for the top-level sort", rfc5256.txt:536-539).
func (n *threadNode) first() *sortItem {
	for n.msg == nil && len(n.children) > 0 {
		n = n.children[0]
	}
	return n.msg
}

// cmpSent orders by sent date, ties by sequence number ("When comparing two
// sent dates that match exactly", rfc5256.txt:159-161).
func cmpSent(a, b *sortItem) int {
	if r := a.sent().Compare(b.sent()); r != 0 {
		return r
	}
	return cmpInt(a.seq, b.seq)
}

func cmpNodes(a, b *threadNode) int {
	fa, fb := a.first(), b.first()
	if fa == nil || fb == nil { // only an empty dummy, which pruning removed
		return cmpInt(boolInt(fa != nil), boolInt(fb != nil))
	}
	return cmpSent(fa, fb)
}

func boolInt(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}

// threadOrderedSubject is ORDEREDSUBJECT (rfc5256.txt:360-379): sorted by
// base subject then sent date, split by base subject, the threads sorted
// by the sent date of their first message; the first message is the root,
// every other one a child of it (no grandchildren).
func threadOrderedSubject(items []*sortItem) []*threadNode {
	ms := slices.Clone(items)
	slices.SortFunc(ms, func(a, b *sortItem) int {
		if r := strings.Compare(a.Subject, b.Subject); r != 0 {
			return r
		}
		return cmpSent(a, b)
	})
	var roots []*threadNode
	for i, m := range ms {
		if i > 0 && m.Subject == ms[i-1].Subject {
			r := roots[len(roots)-1]
			r.children = append(r.children, &threadNode{msg: m, parent: r})
			continue
		}
		roots = append(roots, &threadNode{msg: m})
	}
	slices.SortStableFunc(roots, cmpNodes)
	return roots
}

// threadReferences is REFERENCES (rfc5256.txt:381-436), steps 1 to 6.
func threadReferences(items []*sortItem) []*threadNode {
	// (1) "For each searched message": link by references (rfc5256.txt:455-517).
	ids := map[string]*threadNode{}
	node := func(id string) *threadNode {
		n := ids[id]
		if n == nil {
			n = &threadNode{id: id} // a dummy until its message shows up
			ids[id] = n
		}
		return n
	}
	var all []*threadNode
	for i, m := range items { // items are in sequence number order
		var n *threadNode
		id := normMsgID(m.MsgID)
		if id != "" {
			if n = node(id); n.msg != nil {
				// A duplicate Message-ID: only the first message (lowest
				// sequence number) keeps it ("only use that Message ID in the first",
				// rfc5256.txt:471-475).
				n = nil
			}
		}
		if n == nil {
			// No valid Message-ID: "assign a unique Message ID" (rfc5256.txt:466-469).
			n = &threadNode{id: "\x00" + strconv.Itoa(i)}
		}
		n.msg = m
		all = append(all, n)
		// (A) References, else the first valid In-Reply-To
		// ("If a message contains a References header line", rfc5256.txt:416-423),
		// linked each to the next unless the child "already has a parent"
		// (rfc5256.txt:482-488) or it "would introduce a loop" (rfc5256.txt:490-493).
		var refs []*threadNode
		for _, r := range m.Refs {
			if r = normMsgID(r); r != "" {
				refs = append(refs, node(r))
			}
		}
		if len(refs) == 0 {
			if r := normMsgID(m.InReply); r != "" {
				refs = append(refs, node(r))
			}
		}
		for j := 1; j < len(refs); j++ {
			if refs[j].parent == nil && !wouldLoop(refs[j-1], refs[j]) {
				link(refs[j-1], refs[j])
			}
		}
		// (B) The last reference becomes the message's parent, replacing
		// any parent ("Create a parent/child link between the last reference",
		// rfc5256.txt:497-513).
		unlink(n)
		if len(refs) > 0 && !wouldLoop(refs[len(refs)-1], n) {
			link(refs[len(refs)-1], n)
		}
	}
	// (2) Every node without a parent is a child of the root
	// ("Gather together all of the messages that have no parents",
	// rfc5256.txt:519-522), in the order made; only dummies not yet seen
	// remain in ids.
	root := &threadNode{}
	for _, n := range all {
		if n.parent == nil {
			root.children = append(root.children, n)
		}
	}
	for _, n := range ids {
		if n.msg == nil && n.parent == nil { // a dummy: all holds every message
			root.children = append(root.children, n)
		}
	}
	// (3) "Prune dummy messages" (rfc5256.txt:524-534).
	root.children = prune(root.children, true)
	for _, n := range root.children {
		n.parent = nil
	}
	// (4) Sort the top level by sent date, a dummy by its first child
	// after sorting its children ("Sort the messages under the root",
	// rfc5256.txt:536-539).
	for _, n := range root.children {
		if n.msg == nil {
			slices.SortStableFunc(n.children, cmpNodes)
		}
	}
	slices.SortStableFunc(root.children, cmpNodes)
	// (5) "Gather together messages under the root" of one base subject
	// (rfc5256.txt:541-632).
	root.children = mergeSubjects(root.children)
	// (6) Sort every set of siblings by sent date, the deepest first
	// ("sort each set of siblings by sent date", rfc5256.txt:638-645).
	sortTree(root)
	return root.children
}

// normMsgID is the normalized form of a msg-id (rfc5256.txt:399-411),
// shared with the THREADID of a delivery (message.ThreadKeys).
func normMsgID(s string) string { return message.NormMsgID(s) }

// wouldLoop reports whether making p the parent of c would make a loop:
// p is c or one of c's descendants ("would introduce a loop", rfc5256.txt:490-493).
func wouldLoop(p, c *threadNode) bool {
	for a := p; a != nil; a = a.parent {
		if a == c {
			return true
		}
	}
	return false
}

func link(p, c *threadNode) {
	c.parent = p
	p.children = append(p.children, c)
}

func unlink(c *threadNode) {
	if p := c.parent; p != nil {
		p.children = slices.DeleteFunc(p.children, func(x *threadNode) bool { return x == c })
		c.parent = nil
	}
}

// prune removes the dummies of a sibling list (step 3): a dummy without
// children goes, one with children is replaced by them, unless that would
// put several children at the top level (top).
func prune(list []*threadNode, top bool) []*threadNode {
	var out []*threadNode
	for _, n := range list {
		n.children = prune(n.children, false)
		if n.msg != nil {
			out = append(out, n)
			continue
		}
		switch {
		case len(n.children) == 0:
		case !top || len(n.children) == 1:
			for _, ch := range n.children {
				ch.parent = n.parent
			}
			out = append(out, n.children...)
		default:
			out = append(out, n)
		}
	}
	for _, n := range out {
		for _, ch := range n.children {
			ch.parent = n
		}
	}
	return out
}

// mergeSubjects is step 5: the subject table (B), then the merging of
// threads with the same thread subject (C). The order of the top level it
// returns does not matter: step 6 sorts it.
func mergeSubjects(top []*threadNode) []*threadNode {
	// (i) The thread subject: the message's base subject, or its first
	// child's for a dummy ("This is the thread subject", rfc5256.txt:550-553; after pruning, a dummy's
	// children are messages).
	subject := func(n *threadNode) string {
		if n.msg != nil {
			return n.msg.Subject
		}
		return n.children[0].msg.Subject
	}
	reply := func(n *threadNode) bool { return n.msg != nil && n.msg.Reply }
	table := map[string]*threadNode{}
	for _, n := range top {
		s := subject(n)
		if s == "" {
			continue
		}
		// (iv) "If there is no message in the subject table", rfc5256.txt:570-584.
		t, ok := table[s]
		if !ok || t.msg != nil && (n.msg == nil || reply(t) && !reply(n)) {
			table[s] = n
		}
	}
	gone := map[*threadNode]bool{}
	for _, n := range top {
		if n.parent != nil {
			continue // made a child of a new dummy below
		}
		s := subject(n)
		t := table[s]
		if s == "" || t == n {
			continue
		}
		// "merge the current message with the one in the subject table",
		// rfc5256.txt:601-632.
		switch {
		case t.msg == nil && n.msg == nil:
			for _, ch := range n.children {
				ch.parent = t
			}
			t.children = append(t.children, n.children...)
			gone[n] = true
		case t.msg == nil, reply(n) && !reply(t):
			link(t, n)
		default:
			d := &threadNode{}
			link(d, n)
			link(d, t)
			table[s] = d
			top = append(top, d)
		}
	}
	return slices.DeleteFunc(top, func(n *threadNode) bool { return gone[n] || n.parent != nil })
}

// sortTree sorts every set of siblings under n by sent date, children
// before parents, a dummy by its first child.
func sortTree(n *threadNode) {
	for _, ch := range n.children {
		sortTree(ch)
	}
	slices.SortStableFunc(n.children, cmpNodes)
}
