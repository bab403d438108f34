package query

import (
	"strconv"
	"strings"
)

// Normalize returns n with repeated conditions removed, so that the cost of
// compiling and planning a program follows its distinct conditions, not its
// length (issue 13: `HEADER X a` 5,000 times was 5,000 copies of one
// condition in the SQL, and Postgres' planner spent minutes and gigabytes on
// them). It is semantics-preserving:
//
//   - nested ANDs are flattened, ALL is dropped from an AND (x AND ALL = x)
//     and a repeated operand is kept once (x AND x = x);
//   - a chain of ORs is flattened, repeated operands are kept once
//     (x OR x = x), and an OR with ALL among its operands is ALL;
//   - NOT NOT x is x.
//
// Operands keep the order of their first occurrence. Identical subtrees are
// recognised by hash-consing (each distinct subtree gets a number, from its
// own fields and its operands' numbers), so Normalize is linear in the size
// of the program however deep it is.
func Normalize(n Node) Node {
	h := &hashCons{ids: map[string]int{}}
	return h.norm(n).n
}

type hashCons struct {
	ids    map[string]int
	b      strings.Builder
	visits int // nodes of the input visited (tests: each once)
}

// id numbers the node whose signature is sig (its kind, its fields and
// its operands' ids).
func (h *hashCons) id(sig string) int {
	if id, ok := h.ids[sig]; ok {
		return id
	}
	id := len(h.ids) + 1
	h.ids[sig] = id
	return id
}

func (h *hashCons) sig(kind byte, fields ...string) string {
	h.b.Reset()
	h.b.WriteByte(kind)
	for _, f := range fields {
		// Length-prefixed: no field can be confused with a separator.
		h.b.WriteString(strconv.Itoa(len(f)))
		h.b.WriteByte(':')
		h.b.WriteString(f)
	}
	return h.b.String()
}

func ids(xs []int) string {
	var b strings.Builder
	for _, x := range xs {
		b.WriteString(strconv.Itoa(x))
		b.WriteByte(',')
	}
	return b.String()
}

// normed is a normalised node with its id; ops are an AND's operands or
// an OR chain's members, x a NOT's operand, so that flattening never
// normalises a subtree twice.
type normed struct {
	n   Node
	id  int
	ops []*normed
	x   *normed
}

func (h *hashCons) leaf(n Node, kind byte, fields ...string) *normed {
	return &normed{n: n, id: h.id(h.sig(kind, fields...))}
}

// norm normalises n; each node of the input is visited once.
func (h *hashCons) norm(n Node) *normed {
	h.visits++
	switch n := n.(type) {
	case All:
		return h.leaf(n, 'A')
	case Flag:
		return h.leaf(n, 'F', n.Key, strconv.FormatBool(n.Set))
	case Keyword:
		return h.leaf(n, 'K', n.Flag, strconv.FormatBool(n.Set))
	case Recent:
		return h.leaf(n, 'R', n.Key)
	case Text:
		return h.leaf(n, 'T', n.Key, n.Field, n.Value)
	case Date:
		return h.leaf(n, 'D', n.Key, n.Day.Format("2006-01-02"))
	case SaveDateSupported:
		return h.leaf(n, 'V')
	case Size:
		return h.leaf(n, 'S', strconv.FormatBool(n.Larger), strconv.FormatUint(uint64(n.N), 10))
	case ModSeq:
		return h.leaf(n, 'M', strconv.FormatUint(n.N, 10))
	case Seq:
		var b strings.Builder
		for i, r := range n.Set {
			writeRange(&b, i, r.Start, r.Stop)
		}
		return h.leaf(n, 'Q', b.String())
	case UID:
		var b strings.Builder
		for i, r := range n.Set {
			writeRange(&b, i, uint32(r.Start), uint32(r.Stop))
		}
		return h.leaf(n, 'U', b.String())
	case Not:
		x := h.norm(n.X)
		if x.x != nil { // NOT NOT y = y
			return x.x
		}
		return &normed{n: Not{X: x.n}, id: h.id(h.sig('N', strconv.Itoa(x.id))), x: x}
	case And:
		var ops []*normed
		seen := map[int]bool{}
		add := func(y *normed) {
			if _, ok := y.n.(All); ok || seen[y.id] {
				return
			}
			seen[y.id] = true
			ops = append(ops, y)
		}
		for _, x := range n {
			y := h.norm(x)
			if _, ok := y.n.(And); ok {
				for _, z := range y.ops {
					add(z)
				}
			} else {
				add(y)
			}
		}
		switch len(ops) {
		case 0:
			return h.leaf(All{}, 'A')
		case 1:
			return ops[0]
		}
		nodes := make(And, len(ops))
		opIDs := make([]int, len(ops))
		for i, y := range ops {
			nodes[i], opIDs[i] = y.n, y.id
		}
		return &normed{n: nodes, id: h.id(h.sig('&', ids(opIDs))), ops: ops}
	case Or:
		var ops []*normed
		seen := map[int]bool{}
		all := false
		add := func(y *normed) {
			if _, ok := y.n.(All); ok {
				all = true
			}
			if !seen[y.id] {
				seen[y.id] = true
				ops = append(ops, y)
			}
		}
		for _, x := range []Node{n.A, n.B} {
			y := h.norm(x)
			if _, ok := y.n.(Or); ok { // a chain: OR a OR b c = a, b, c
				for _, z := range y.ops {
					add(z)
				}
			} else {
				add(y)
			}
		}
		if all {
			return h.leaf(All{}, 'A')
		}
		if len(ops) == 1 {
			return ops[0]
		}
		// Rebuild a right-nested chain, as the parser builds OR a OR b c.
		last := ops[len(ops)-1]
		res, rid := last.n, last.id
		for i := len(ops) - 2; i >= 0; i-- {
			res = Or{A: ops[i].n, B: res}
			rid = h.id(h.sig('|', strconv.Itoa(ops[i].id), strconv.Itoa(rid)))
		}
		return &normed{n: res, id: rid, ops: ops}
	}
	return h.leaf(n, '?', String(n))
}
