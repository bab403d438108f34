package imapd

import (
	"fmt"
	"slices"
	"strings"

	"decimail/server/query"
	"decimail/server/store"
)

// LIST and LSUB (RFC 3501 §6.3.8, §6.3.9), LIST-EXTENDED (RFC 5258),
// CHILDREN (RFC 3348), SPECIAL-USE (RFC 6154), LIST-STATUS (RFC 5819).
//
// Whatever the options, a LIST costs at most two queries: all mailboxes
// (with their STATUS counts when asked, store.Mailboxes) and, for LSUB and
// the SUBSCRIBED selection option, the subscription list. Matching,
// attributes and children are computed here over the sorted names.

func init() {
	register("LIST", cmdSpec{states: authenticated, fn: func(c *Conn, cmd *Command) error { return cmdList(c, cmd, false) }})
	register("LSUB", cmdSpec{states: authenticated, fn: func(c *Conn, cmd *Command) error { return cmdList(c, cmd, true) }})
}

// listReq is a parsed LIST/LSUB command.
type listReq struct {
	lsub      bool
	extended  bool // RFC 5258 syntax used: options or a pattern list
	patterns  []*query.ListPattern
	delimOnly bool   // the pattern is "": report the delimiter and root
	ref       string // decoded reference
	none      bool   // the reference is not modified UTF-7: it matches nothing

	selSubscribed, selSpecialUse, selRecursive bool
	retSubscribed, retChildren, retSpecialUse  bool
	status                                     []string // RETURN (STATUS (...)): "takes STATUS data items as parameters", rfc5819.txt:110
}

func cmdList(c *Conn, cmd *Command, lsub bool) error {
	req, err := c.parseList(cmd.Args, lsub)
	if err != nil {
		return err
	}
	resp := "LIST"
	if lsub {
		resp = "LSUB"
	}
	if req.none && !req.delimOnly {
		return nil
	}
	// An empty pattern asks for the delimiter and the root of the
	// reference (rfc3501.txt:2221-2228: "return the hierarchy delimiter and the
	// root name").
	if req.delimOnly {
		root := ""
		if i := strings.Index(req.ref, store.Delim); i >= 0 {
			root = req.ref[:i+1]
		}
		w := c.Writer()
		w.Lock()
		w.Raw("* " + resp + ` (\Noselect) "/" `)
		w.String(c.mailboxName(root))
		w.CRLF()
		w.Unlock()
		return nil
	}
	mbs, err := c.Store().Mailboxes(c.Ctx(), c.User().ID)
	if err != nil {
		return err
	}
	if len(req.status) > 0 {
		ptrs := make([]*store.MailboxStatus, len(mbs))
		for i := range mbs {
			ptrs[i] = &mbs[i]
		}
		if err := c.quotaStatus(req.status, ptrs...); err != nil {
			return err
		}
		if slices.Contains(req.status, "RECENT") {
			if err := c.Store().CountRecent(c.Ctx(), ptrs...); err != nil {
				return err
			}
		}
	}
	var subs []string
	if lsub || req.selSubscribed {
		if subs, err = c.Store().Subscriptions(c.Ctx(), c.User().ID); err != nil {
			return err
		}
	}
	t := newListTree(mbs, subs)
	w := c.Writer()
	w.Lock()
	defer w.Unlock()
	for i := range t.nodes {
		c.listNode(req, t, i, resp)
	}
	return nil
}

// parseList reads: [(selection options)] reference (pattern | (patterns))
// [RETURN (return options)] (the list rule: rfc5258.txt:1095ff, rfc3501.txt:4793).
func (c *Conn) parseList(args []Value, lsub bool) (*listReq, error) {
	req := &listReq{lsub: lsub}
	if !lsub && len(args) > 0 && args[0].Kind == List {
		if err := c.listSelection(req, args[0].List); err != nil {
			return nil, err
		}
		req.extended = true
		args = args[1:]
	}
	if len(args) < 2 {
		return nil, Syntax("reference and mailbox pattern expected")
	}
	ref, ok := args[0].AString()
	if !ok {
		return nil, Syntax("reference name expected")
	}
	var pats []string
	switch {
	case args[1].Kind == List && !lsub:
		if len(args[1].List) == 0 {
			return nil, Syntax("empty pattern list")
		}
		req.extended = true
		for _, p := range args[1].List {
			s, ok := p.AString()
			if !ok {
				return nil, Syntax("mailbox pattern expected")
			}
			pats = append(pats, s)
		}
	default:
		s, ok := args[1].AString()
		if !ok {
			return nil, Syntax("mailbox pattern expected")
		}
		pats = []string{s}
	}
	rest := args[2:]
	if !lsub && len(rest) == 2 && rest[0].Kind == Atom && strings.EqualFold(rest[0].S, "RETURN") && rest[1].Kind == List {
		if err := c.listReturn(req, rest[1].List); err != nil {
			return nil, err
		}
		req.extended = true
		rest = nil
	}
	if len(rest) > 0 {
		return nil, Syntax("unexpected arguments after the mailbox pattern")
	}
	if req.extended && !c.capAdvertised("LIST-EXTENDED") {
		return nil, Syntax("LIST-EXTENDED is not enabled")
	}
	var err error
	// A reference or pattern that is not modified UTF-7 matches no name
	// (every name is sent encoded): no LIST response, OK (issue 14: it was
	// BAD, but any astring is a syntactically valid pattern).
	if req.ref, err = c.decodeName(ref); err != nil {
		req.ref, req.none = "", true
	}
	req.delimOnly = len(pats) == 1 && pats[0] == "" && args[1].Kind != List
	max := c.cfg.MaxListPattern
	for _, p := range pats {
		p, err := c.decodeName(p)
		if err != nil {
			continue
		}
		p = canonicalPattern(req.ref, p)
		if max > 0 && len(p) > max {
			// Issue 13: patterns of up to 1 MiB each (64 to a command)
			// were matched against every name. A well-formed pattern
			// over an implementation limit: NO [LIMIT] (rfc5530.txt:256),
			// as for mailbox names (nameRefused) and SEARCH.
			c.log.Info("list refused", "pattern_bytes", len(p), "max", max)
			return nil, No(CodeLimit, fmt.Sprintf("mailbox pattern of %d bytes, at most %d allowed", len(p), max))
		}
		req.patterns = append(req.patterns, query.CompileListPattern(p, store.Delim[0]))
	}
	return req, nil
}

// canonicalPattern joins reference and pattern into the "canonical form"
// (rfc3501.txt:2230-2233; the reference is "the context in which the mailbox
// name is interpreted", rfc3501.txt:2214-2219): the pattern is appended to
// the reference, one delimiter between them.
func canonicalPattern(ref, pat string) string {
	if ref != "" && strings.HasSuffix(ref, store.Delim) && strings.HasPrefix(pat, store.Delim) {
		return ref + pat[1:]
	}
	return ref + pat
}

// listSelection parses selection options (RFC 5258 §3.1: rfc5258.txt:346ff;
// "If the client specifies the SPECIAL-USE selection option": rfc6154.txt:160).
func (c *Conn) listSelection(req *listReq, opts []Value) error {
	remote := false
	for _, o := range opts {
		if o.Kind != Atom {
			return Syntax("selection option expected")
		}
		switch strings.ToUpper(o.S) {
		case "SUBSCRIBED":
			req.selSubscribed, req.retSubscribed = true, true // "implies the SUBSCRIBED return option", rfc5258.txt:376
		case "REMOTE": // no remote mailboxes here; a no-op (rfc5258.txt:379)
			remote = true
		case "RECURSIVEMATCH":
			req.selRecursive = true
		case "SPECIAL-USE":
			if !c.capAdvertised("SPECIAL-USE") {
				return Bad("", "unknown selection option "+o.S)
			}
			req.selSpecialUse, req.retSpecialUse = true, true // "implied by the SPECIAL-USE selection option", rfc6154.txt:175
		default:
			return Bad("", "unknown selection option "+o.S) // "respond to options it does not recognize with a BAD", rfc5258.txt:260
		}
	}
	_ = remote
	if req.selRecursive && !req.selSubscribed && !req.selSpecialUse {
		// RECURSIVEMATCH alone (or with REMOTE) is invalid (rfc5258.txt:419).
		return Bad("", "RECURSIVEMATCH needs another selection option")
	}
	return nil
}

// listReturn parses return options (RFC 5258 §3.2: rfc5258.txt:431ff; the
// STATUS option "takes STATUS data items as parameters": rfc5819.txt:110).
func (c *Conn) listReturn(req *listReq, opts []Value) error {
	for i := 0; i < len(opts); i++ {
		o := opts[i]
		if o.Kind != Atom {
			return Syntax("return option expected")
		}
		switch strings.ToUpper(o.S) {
		case "SUBSCRIBED":
			req.retSubscribed = true
		case "CHILDREN":
			req.retChildren = true
		case "SPECIAL-USE":
			if !c.capAdvertised("SPECIAL-USE") {
				return Bad("", "unknown return option "+o.S)
			}
			req.retSpecialUse = true
		case "STATUS":
			if !c.capAdvertised("LIST-STATUS") || i+1 >= len(opts) {
				return Bad("", "STATUS return option needs LIST-STATUS and a list of items")
			}
			i++
			items, err := c.statusItems(opts[i])
			if err != nil {
				return err
			}
			req.status = items
		default:
			return Bad("", "unknown return option "+o.S) // "respond to options it does not recognize with a BAD", rfc5258.txt:260
		}
	}
	return nil
}

// listTree is every name LIST may talk about, in hierarchy order (INBOX
// first, then by component), so that a name's descendants directly
// follow it.
type listTree struct {
	nodes []listNode
}

type listNode struct {
	name       string
	mb         *store.MailboxStatus // nil: no such mailbox
	subscribed bool
	end        int // nodes[i+1:end] are the descendants
	hasKids    bool
}

func newListTree(mbs []store.MailboxStatus, subs []string) *listTree {
	byName := map[string]*listNode{}
	add := func(name string) *listNode {
		if n := byName[name]; n != nil {
			return n
		}
		n := &listNode{name: name}
		byName[name] = n
		return n
	}
	addParents := func(name string) {
		for i := strings.LastIndex(name, store.Delim); i > 0; i = strings.LastIndex(name[:i], store.Delim) {
			add(name[:i])
		}
	}
	for i := range mbs {
		n := add(mbs[i].Name)
		n.mb = &mbs[i]
		n.subscribed = mbs[i].Subscribed
		addParents(mbs[i].Name)
	}
	for _, s := range subs {
		add(s).subscribed = true
		addParents(s)
	}
	t := &listTree{nodes: make([]listNode, 0, len(byName))}
	for _, n := range byName {
		t.nodes = append(t.nodes, *n)
	}
	slices.SortFunc(t.nodes, func(a, b listNode) int { return compareMailboxNames(a.name, b.name) })
	for i := range t.nodes {
		prefix := t.nodes[i].name + store.Delim
		end := i + 1
		for end < len(t.nodes) && strings.HasPrefix(t.nodes[end].name, prefix) {
			if t.nodes[end].mb != nil {
				t.nodes[i].hasKids = true
			}
			end++
		}
		t.nodes[i].end = end
	}
	return t
}

// compareMailboxNames orders names component by component, INBOX first.
func compareMailboxNames(a, b string) int {
	for a != "" || b != "" {
		if a == "" {
			return -1
		}
		if b == "" {
			return 1
		}
		ca, ra, _ := strings.Cut(a, store.Delim)
		cb, rb, _ := strings.Cut(b, store.Delim)
		if ca != cb {
			switch {
			case ca == "INBOX":
				return -1
			case cb == "INBOX":
				return 1
			}
			return strings.Compare(ca, cb)
		}
		a, b = ra, rb
	}
	return 0
}

// listNode writes the LIST/LSUB (and STATUS) responses for node i, if any.
func (c *Conn) listNode(req *listReq, t *listTree, i int, resp string) {
	n := &t.nodes[i]
	if !matchAny(req.patterns, n.name) {
		return
	}
	var attrs []string
	selected := req.selSubscribed || req.selSpecialUse
	meets := false
	childInfo := false
	switch {
	case req.lsub:
		// rfc3501.txt:2394-2399: a name that is not subscribed but has a
		// subscribed inferior the pattern does not reach is returned
		// \Noselect. A subscribed name without a mailbox cannot be
		// selected either.
		if !n.subscribed {
			if !t.descendant(i, req, func(d *listNode) bool { return d.subscribed }) {
				return
			}
			attrs = append(attrs, `\Noselect`)
		} else if n.mb == nil {
			attrs = append(attrs, `\Noselect`)
		}
	case selected:
		crit := func(d *listNode) bool {
			return (!req.selSubscribed || d.subscribed) && (!req.selSpecialUse || d.mb != nil && d.mb.SpecialUse != "")
		}
		meets = crit(n)
		childInfo = req.selRecursive && t.descendant(i, req, crit)
		if !meets && !childInfo {
			return
		}
		attrs = c.listAttrs(req, n, attrs)
	default:
		if n.mb == nil && !n.hasKids {
			return
		}
		meets = n.mb != nil
		attrs = c.listAttrs(req, n, attrs)
	}
	w := c.Writer()
	w.Raw("* " + resp + " (" + strings.Join(attrs, " ") + `) "/" `)
	w.String(c.mailboxName(n.name))
	if childInfo {
		var crit []string
		if req.selSubscribed {
			crit = append(crit, `"SUBSCRIBED"`)
		}
		if req.selSpecialUse {
			crit = append(crit, `"SPECIAL-USE"`)
		}
		w.Raw(` ("CHILDINFO" (` + strings.Join(crit, " ") + `))`) // childinfo-extended-item, rfc5258.txt:1071
	}
	w.CRLF()
	// rfc5819.txt:110-122: a STATUS after the LIST of each selectable mailbox
	// that matches the pattern and the selection options ("MUST return an
	// untagged LIST response followed by an untagged STATUS response").
	if len(req.status) > 0 && meets && n.mb != nil {
		c.writeMailboxStatus(req.status, n.mb)
	}
}

// listAttrs computes a LIST response's attributes (not LSUB's).
func (c *Conn) listAttrs(req *listReq, n *listNode, attrs []string) []string {
	if n.mb == nil {
		if req.extended || c.rev2 { // RFC 9051's LIST is the extended one (rev2.go)
			attrs = append(attrs, `\NonExistent`) // implies \Noselect, rfc5258.txt:343
		} else {
			attrs = append(attrs, `\Noselect`) // rfc3501.txt:2324-2329
		}
	}
	if n.subscribed && req.retSubscribed {
		attrs = append(attrs, `\Subscribed`) // "indicates that a mailbox name is subscribed to", rfc5258.txt:372
	}
	// CHILDREN (RFC 3348) is advertised: the attributes go out on every
	// LIST, and the CHILDREN return option only insists (rfc5258.txt:629:
	// the attributes "MAY be returned in response to any LIST command").
	switch {
	case n.hasKids:
		attrs = append(attrs, `\HasChildren`)
	case n.mb != nil:
		attrs = append(attrs, `\HasNoChildren`)
	}
	// Special-use attributes may be returned on any LIST (rfc6154.txt:176:
	// "MAY return SPECIAL-USE attributes even if the client does not specify
	// the return option").
	if n.mb != nil && n.mb.SpecialUse != "" {
		attrs = append(attrs, n.mb.SpecialUse)
	}
	return attrs
}

// descendant reports whether some descendant of node i satisfies ok and
// is not itself matched by the patterns (RECURSIVEMATCH: redundant
// CHILDINFO is suppressed, "servers SHOULD suppress redundant CHILDINFO
// responses", rfc5258.txt:551-553; LSUB's % rule).
func (t *listTree) descendant(i int, req *listReq, ok func(*listNode) bool) bool {
	for j := i + 1; j < t.nodes[i].end; j++ {
		if d := &t.nodes[j]; ok(d) && !matchAny(req.patterns, d.name) {
			return true
		}
	}
	return false
}

func matchAny(patterns []*query.ListPattern, name string) bool {
	for _, p := range patterns {
		if p.Match(name) { // "%" "does not match a hierarchy delimiter", rfc3501.txt:2322-2329; INBOX folded (rfc3501.txt:4824)
			return true
		}
	}
	return false
}

// listMatch matches one canonical pattern against a name (query.ListPattern).
func listMatch(pat, name string) bool {
	return query.CompileListPattern(pat, store.Delim[0]).Match(name)
}
