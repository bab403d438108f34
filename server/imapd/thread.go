package imapd

// THREAD and UID THREAD (RFC 5256 §3, "BASE.6.4.THREAD",
// rfc5256.txt:306-356): the search of SORT (sort.go: sortSearch), then
// ORDEREDSUBJECT or REFERENCES threading over the found messages, answered
// by one "* THREAD" response of "zero or more threads" (rfc5256.txt:700-715).

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"decimail/server/message"
	"decimail/server/store"
)

func init() {
	register("THREAD", cmdSpec{states: selected, ext: "THREAD", fn: func(c *Conn, cmd *Command) error { return cmdThread(c, cmd, false) }})
	register("UID THREAD", cmdSpec{states: selected, ext: "THREAD", fn: func(c *Conn, cmd *Command) error { return cmdThread(c, cmd, true) }})
}

// threadAlgorithms are the thread-alg values implemented (rfc5256.txt:769),
// each advertised as THREAD=<alg> (misc.go: extensions).
// REFERENCES is threaded by the server's kept threadings (threadstate.go).
var threadAlgorithms = map[string]func([]*sortItem) []*threadNode{
	"ORDEREDSUBJECT": threadOrderedSubject,
	"REFERENCES":     nil,
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
	if alg == "REFERENCES" {
		return c.threadReferences(cmd, args[1:], uid)
	}
	items, issued, err := c.sortSearch(cmd, args[1:])
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
	return cmp.Compare(a.seq, b.seq)
}

func cmpNodes(a, b *threadNode) int {
	fa, fb := a.first(), b.first()
	if fa == nil || fb == nil { // only an empty dummy, which pruning removed
		return cmp.Compare(boolInt(fa != nil), boolInt(fb != nil))
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

// normMsgID is the normalized form of a msg-id (rfc5256.txt:399-411),
// shared with the THREADID of a delivery (message.ThreadKeys).
func normMsgID(s string) string { return message.NormMsgID(s) }

// threadReferences answers THREAD REFERENCES from the server's kept
// threadings (threadCache): the search, then the threads of the messages
// found, reused, updated or made (threadstate.go). A program of flags only
// is matched on the session's view and reads keys (store.SortKeysByID,
// cached) only for messages the kept threading lacks.
func (c *Conn) threadReferences(cmd *Command, args []Value, uid bool) error {
	node, err := c.sortProgram(args)
	if err != nil {
		return err
	}
	var uids, seqs []uint32
	var keys func(from int) ([]*store.SortMsg, error)
	var issued bool
	fromView := c.fromView(node)
	if fromView {
		var ids []int64
		if node, err = c.Store().PrepareSearch(node); err == nil {
			seqs, ids, issued, err = c.viewMatches(node)
		}
		if err != nil {
			return c.searchErr(cmd, err)
		}
		all := c.sel.view.UIDs()
		uids = make([]uint32, len(seqs))
		for j, seq := range seqs {
			uids[j] = all[seq-1]
		}
		keys = func(from int) ([]*store.SortMsg, error) {
			return c.Store().SortKeysByID(c.Ctx(), c.sel.mb.Box(), ids[from:])
		}
	} else {
		items, iss, err := c.sortStore(node, true)
		if err != nil {
			return c.searchErr(cmd, err)
		}
		issued = iss
		ks := make([]*store.SortMsg, len(items))
		uids, seqs = make([]uint32, len(items)), make([]uint32, len(items))
		for j, m := range items {
			ks[j], uids[j], seqs[j] = m.SortMsg, m.UID, m.seq
		}
		keys = func(from int) ([]*store.SortMsg, error) { return ks[from:], nil }
	}
	nums := seqs
	if uid {
		nums = uids
	}
	mb := c.sel.mb
	k := threadKey{mailbox: mb.ID, uidValidity: mb.UIDValidity, program: fmt.Sprintf("%#v", node)}
	b, err := c.srv.threads.thread(k, uids, c.sel.view.Top(), keys, nums, []byte("THREAD"))
	if errors.Is(err, errThreadGone) && fromView {
		// A message found was deleted meanwhile (no keys): threaded
		// without it, and without the cache.
		var items []*sortItem
		if items, issued, err = c.sortFromView(node); err == nil {
			st := newThreadState()
			ks := make([]*store.SortMsg, len(items))
			uids, nums = make([]uint32, len(items)), make([]uint32, len(items))
			for j, m := range items {
				ks[j], uids[j], nums[j] = m.SortMsg, m.UID, number(m, uid)
			}
			st.add(ks, uids)
			b = st.write([]byte("THREAD"), nums)
		}
	}
	if err != nil {
		return c.searchErr(cmd, err)
	}
	c.Untagged("%s", b)
	return c.sortReply(cmd, issued)
}
