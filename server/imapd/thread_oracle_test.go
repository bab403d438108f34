package imapd

// The REFERENCES threading of every message at once, as THREAD did it
// before the kept threadings (threadstate.go): the oracle of
// TestThreadStateAdd, itself checked against the model's
// (sort_property_test.go: refReferences) by TestPropertySort.

import (
	"slices"
	"strconv"
)

// threadReferences is REFERENCES (rfc5256.txt:381-436), steps 1 to 6.
func threadReferencesOnce(items []*sortItem) []*threadNode {
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
