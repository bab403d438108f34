package query

import "strings"

// ListPattern is a compiled LIST/LSUB mailbox pattern (RFC 3501 §6.3.8):
// "*" matches any characters, "%" any characters but the hierarchy
// delimiter ("it does not match a hierarchy delimiter", rfc3501.txt:2322-2329); every other character matches itself,
// except that the INBOX part of "INBOX" and of its inferiors matches
// case-insensitively (rfc3501.txt:4824).
//
// Matching a name costs O(len(name)) after an O(len(pattern)) compilation
// (issue 13: the dynamic program it replaces cost pattern × name per name;
// LIST "" <200 KB of %> over one long name took 15.6 s of CPU):
//
//   - runs of wildcards collapse ("%%" is "%", any run with a "*" is "*");
//   - a name shorter than the pattern's literal characters is rejected at once;
//   - the pattern is cut at its "*"s into chunks of literals and "%"; the
//     first chunk is matched at the start of the name, each middle chunk
//     where it ends first, the last one at the end (matching from the
//     right). Earliest-ending is optimal for what follows a "*", and within
//     a chunk each literal is placed leftmost (rightmost, from the right)
//     subject to its "%" gap not crossing a delimiter: a literal that
//     contains the delimiter has one possible place, one that does not is
//     best placed first. Literals are found with KMP, so every character is
//     read a bounded number of times;
//   - a middle chunk whose literals hold no delimiter lies within one
//     hierarchy level: when it fails in a level, the search goes on at the
//     next one.
//
// One case is not linear: a middle chunk (between two "*") whose literals
// contain the delimiter, with "%" between them ("*a/%/b*"), is tried at
// each place its first literal occurs, O(len(name) × its literals). Names
// are short (Limits.MailboxName), and so is that product.
//
// A ListPattern is not safe for concurrent use.
type ListPattern struct {
	delim byte
	toks  []lpTok
	main  compiled
	inbox []compiled // what remains once "INBOX" is matched (case-insensitively); made on first use
	steps int
}

// compiled is a token list, cut into chunks on first use: a pattern with
// more literal characters than any name is never cut.
type compiled struct {
	toks   []lpTok
	cs     []chunk
	minLen int // literal characters: a shorter name cannot match
}

func compileToks(toks []lpTok) compiled {
	return compiled{toks: toks, minLen: literalLen(toks)}
}

// lpTok is a literal (wild == 0) or a wildcard ('*' or '%').
type lpTok struct {
	wild  byte
	lit   string
	slash int   // index of the first delimiter in lit, -1 if none
	lslsh int   // index of the last delimiter in lit, -1 if none
	next  []int // KMP failure function of lit, made on first use
	prev  []int // KMP failure function of lit reversed, made on first use
}

// CompileListPattern compiles a canonical LIST pattern (reference and
// pattern joined) for hierarchy delimiter delim.
func CompileListPattern(pattern string, delim byte) *ListPattern {
	p := &ListPattern{delim: delim}
	wild := strings.Count(pattern, "*") + strings.Count(pattern, "%")
	p.toks = make([]lpTok, 0, min(2*wild+1, len(pattern)))
	lit := 0 // start of the literal being read
	for i := 0; i < len(pattern); i++ {
		c := pattern[i]
		if c != '*' && c != '%' {
			continue
		}
		if lit < i {
			p.toks = append(p.toks, p.literal(pattern[lit:i]))
		}
		lit = i + 1
		if n := len(p.toks); n > 0 && p.toks[n-1].wild != 0 { // a run of wildcards is one
			if c == '*' {
				p.toks[n-1].wild = '*'
			}
			continue
		}
		p.toks = append(p.toks, lpTok{wild: c})
	}
	if lit < len(pattern) {
		p.toks = append(p.toks, p.literal(pattern[lit:]))
	}
	p.main = compileToks(p.toks)
	return p
}

func (p *ListPattern) literal(s string) lpTok {
	return lpTok{lit: s, slash: strings.IndexByte(s, p.delim), lslsh: strings.LastIndexByte(s, p.delim)}
}

func literalLen(toks []lpTok) int {
	n := 0
	for _, t := range toks {
		n += len(t.lit)
	}
	return n
}

// kmpTable is the KMP failure function of s, or of s reversed.
func kmpTable(s string, rev bool) []int {
	at := func(i int) byte {
		if rev {
			return s[len(s)-1-i]
		}
		return s[i]
	}
	f := make([]int, len(s)+1)
	f[0] = -1
	k := -1
	for i := 0; i < len(s); i++ {
		for k >= 0 && at(k) != at(i) {
			k = f[k]
		}
		k++
		f[i+1] = k
	}
	return f
}

// Steps is the number of elementary steps (characters read, places tried)
// matching has taken so far; tests bound it.
func (p *ListPattern) Steps() int { return p.steps }

// Match reports whether name matches the pattern.
func (p *ListPattern) Match(name string) bool {
	if name == "INBOX" || strings.HasPrefix(name, "INBOX") && len(name) > 5 && name[5] == p.delim {
		if p.inbox == nil && p.main.minLen <= len(name) {
			p.inbox = []compiled{}
			for _, rest := range p.afterInbox() {
				p.inbox = append(p.inbox, compileToks(rest))
			}
		}
		for i := range p.inbox {
			if p.match(&p.inbox[i], name[5:]) {
				return true
			}
		}
		return false
	}
	return p.match(&p.main, name)
}

// afterInbox returns, for each way the pattern can match "INBOX" with ASCII
// case folding, the tokens left to match the rest of the name. There are
// few: at most five literal characters are consumed, and wildcards
// alternate with literals.
func (p *ListPattern) afterInbox() [][]lpTok {
	type state struct{ tok, off int } // next: toks[tok].lit[off:], or the wildcard toks[tok]
	const inbox = "INBOX"
	cur := map[state]bool{{0, 0}: true}
	// A wildcard may match nothing: the state after it is live too.
	closure := func(m map[state]bool) {
		for s := range m {
			for s.tok < len(p.toks) && p.toks[s.tok].wild != 0 {
				s = state{s.tok + 1, 0}
				m[s] = true
			}
		}
	}
	closure(cur)
	for i := 0; i < len(inbox); i++ {
		next := map[state]bool{}
		for s := range cur {
			if s.tok >= len(p.toks) {
				continue
			}
			t := p.toks[s.tok]
			if t.wild != 0 { // "%" and "*" both take a letter
				next[s] = true
				continue
			}
			if asciiUpper(t.lit[s.off:s.off+1]) == inbox[i:i+1] {
				if s.off+1 == len(t.lit) {
					next[state{s.tok + 1, 0}] = true
				} else {
					next[state{s.tok, s.off + 1}] = true
				}
			}
		}
		closure(next)
		cur = next
	}
	var out [][]lpTok
	for s := range cur {
		var rest []lpTok
		if s.tok < len(p.toks) {
			t := p.toks[s.tok]
			if t.wild == 0 && s.off > 0 {
				rest = append(rest, p.literal(t.lit[s.off:]))
				rest = append(rest, p.toks[s.tok+1:]...)
			} else {
				rest = p.toks[s.tok:]
			}
		}
		out = append(out, rest)
	}
	return out
}

// chunk is a run of tokens without "*": literals separated by "%", with
// lead/trail when it starts/ends with "%".
type chunk struct {
	lead, trail bool
	lits        []*lpTok
	slashes     bool // some literal holds the delimiter
}

func chunks(toks []lpTok) (cs []chunk) {
	cur := chunk{}
	for i := range toks {
		t := &toks[i]
		switch t.wild {
		case '*':
			cs = append(cs, cur)
			cur = chunk{}
		case '%':
			if len(cur.lits) == 0 {
				cur.lead = true
			} else {
				cur.trail = true
			}
		default:
			cur.trail = false
			cur.lits = append(cur.lits, t)
			cur.slashes = cur.slashes || t.slash >= 0
		}
	}
	return append(cs, cur)
}

func (p *ListPattern) match(m *compiled, s string) bool {
	p.steps++
	if m.minLen > len(s) {
		return false
	}
	if m.cs == nil {
		m.cs = chunks(m.toks)
	}
	cs := m.cs
	if len(cs) == 1 {
		return p.matchEnd(&cs[0], s, 0, true)
	}
	pos, ok := p.greedy(&cs[0], s, 0)
	if !ok {
		return false
	}
	for i := 1; i < len(cs)-1; i++ {
		if pos, ok = p.earliest(&cs[i], s, pos); !ok {
			return false
		}
	}
	return p.matchEnd(&cs[len(cs)-1], s, pos, false)
}

// levelEnd is the index of the first delimiter at or after i, or len(s).
func (p *ListPattern) levelEnd(s string, i int) int {
	if j := strings.IndexByte(s[i:], p.delim); j >= 0 {
		p.steps += j + 1
		return i + j
	}
	p.steps += len(s) - i + 1
	return len(s)
}

// levelStart is the index just after the last delimiter before i, or 0.
func (p *ListPattern) levelStart(s string, i int) int {
	j := strings.LastIndexByte(s[:i], p.delim)
	p.steps += i - j
	return j + 1
}

func (p *ListPattern) at(s string, i int, t *lpTok) bool {
	p.steps += len(t.lit)
	return i >= 0 && i+len(t.lit) <= len(s) && s[i:i+len(t.lit)] == t.lit
}

// find is the first occurrence of t in s[lo:hi], or -1 (KMP).
func (p *ListPattern) find(s string, lo, hi int, t *lpTok) int {
	if t.next == nil {
		t.next = kmpTable(t.lit, false)
	}
	k := 0
	for i := lo; i < hi; i++ {
		p.steps++
		for k >= 0 && t.lit[k] != s[i] {
			k = t.next[k]
			p.steps++
		}
		k++
		if k == len(t.lit) {
			return i - k + 1
		}
	}
	return -1
}

// findLast is the start of the last occurrence of t in s[lo:hi], or -1.
func (p *ListPattern) findLast(s string, lo, hi int, t *lpTok) int {
	if t.prev == nil {
		t.prev = kmpTable(t.lit, true)
	}
	n, k := len(t.lit), 0
	for i := hi - 1; i >= lo; i-- {
		p.steps++
		for k >= 0 && t.lit[n-1-k] != s[i] {
			k = t.prev[k]
			p.steps++
		}
		k++
		if k == n {
			return i
		}
	}
	return -1
}

// greedy matches chunk c at exactly start and returns the earliest end:
// each literal at the first place whose "%" gap holds no delimiter.
func (p *ListPattern) greedy(c *chunk, s string, start int) (int, bool) {
	pos, le := start, -1 // le: end of pos's level, once known
	for i, t := range c.lits {
		if i == 0 && !c.lead {
			if !p.at(s, pos, t) {
				return 0, false
			}
			pos += len(t.lit)
			continue
		}
		if le < pos {
			le = p.levelEnd(s, pos)
		}
		if t.slash >= 0 { // its first delimiter must be the level's end
			i := le - t.slash
			if le == len(s) || i < pos || !p.at(s, i, t) {
				return 0, false
			}
			pos = i
		} else if pos = p.find(s, pos, le, t); pos < 0 {
			return 0, false
		}
		pos += len(t.lit)
	}
	return pos, true
}

// earliest matches a middle chunk (no lead or trail "%": they merged into
// the "*"s) starting at or after from, and returns the earliest end.
// Starts are tried in order; the first that matches ends first.
func (p *ListPattern) earliest(c *chunk, s string, from int) (int, bool) {
	first := c.lits[0]
	for from <= len(s) {
		st := p.find(s, from, len(s), first)
		if st < 0 {
			return 0, false
		}
		if end, ok := p.greedy(c, s, st); ok {
			return end, true
		}
		if c.slashes {
			from = st + 1
		} else { // the chunk lies within one level: try the next level
			from = p.levelEnd(s, st) + 1
		}
	}
	return 0, false
}

// matchEnd matches chunk c against the end of s, starting at from
// (anchored) or anywhere at or after from (after a "*"), from the right:
// each literal at the last place whose "%" gap holds no delimiter.
func (p *ListPattern) matchEnd(c *chunk, s string, from int, anchored bool) bool {
	n := len(c.lits)
	if n == 0 {
		switch {
		case !anchored:
			return true
		case c.lead: // "%": the rest is one level's tail
			return p.levelEnd(s, from) == len(s)
		}
		return from == len(s)
	}
	end, ls := len(s), len(s)+1 // ls: start of end's level, once known
	for i := n - 1; i >= 0; i-- {
		t := c.lits[i]
		if i == n-1 && !c.trail {
			st := end - len(t.lit)
			if st < from || !p.at(s, st, t) {
				return false
			}
			end = st
			continue
		}
		if ls > end {
			ls = p.levelStart(s, end)
		}
		if i == 0 && anchored && !c.lead { // at from, with a gap to end in one level
			e := from + len(t.lit)
			return e <= end && ls <= e && p.at(s, from, t)
		}
		if t.lslsh >= 0 { // its last delimiter must be just before end's level
			j := ls - 1 - t.lslsh
			if ls == 0 || j < from || !p.at(s, j, t) {
				return false
			}
			end = j
		} else if end = p.findLast(s, max(ls, from), end, t); end < 0 {
			return false
		}
	}
	switch {
	case !anchored:
		return true
	case !c.lead:
		return end == from
	}
	return p.levelStart(s, end) <= from // the lead "%" holds no delimiter
}
