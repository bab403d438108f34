package imapd

import (
	"slices"
	"strings"

	"decimail/server/store"
)

func init() {
	register("STORE", cmdSpec{states: selected, fn: func(c *Conn, cmd *Command) error { return cmdStore(c, cmd, false) }})
	register("UID STORE", cmdSpec{states: selected, fn: func(c *Conn, cmd *Command) error { return cmdStore(c, cmd, true) }})
}

// storeItem is a parsed store-att-flags item name (rfc3501.txt:5054).
type storeItem struct {
	op     store.FlagOp
	silent bool
}

// parseStoreItem parses ["+" / "-"] "FLAGS" [".SILENT"], case-insensitively
// (rfc3501.txt:4502-4506: atoms are case-insensitive).
func parseStoreItem(v Value) (storeItem, bool) {
	if v.Kind != Atom {
		return storeItem{}, false
	}
	s := strings.ToUpper(v.S)
	var it storeItem
	switch {
	case strings.HasPrefix(s, "+"):
		it.op, s = store.FlagsAdd, s[1:]
	case strings.HasPrefix(s, "-"):
		it.op, s = store.FlagsDel, s[1:]
	default:
		it.op = store.FlagsSet
	}
	if rest, ok := strings.CutSuffix(s, ".SILENT"); ok {
		it.silent, s = true, rest
	}
	return it, s == "FLAGS"
}

// storeFlagArgs reads the value of a STORE: a flag list, or flags without
// parentheses (rfc3501.txt:5054-5055: flag-list / (flag *(SP flag))).
func storeFlagArgs(args []Value) (store.Flags, error) {
	items := args
	if len(args) == 1 && args[0].Kind == List {
		items = args[0].List
	}
	names := make([]string, 0, len(items))
	for _, v := range items {
		if v.Kind != Atom || !validFlagName(v.S) {
			return store.Flags{}, Syntax("invalid flag " + formatValue(v))
		}
		names = append(names, v.S)
	}
	// \Recent cannot be stored and is ignored (rfc3501.txt:594-599,
	// 5591); an unknown system flag ("\" atom other than the defined ones,
	// or "\*") cannot be stored: BAD.
	f, ok := store.ParseFlags(names)
	if !ok {
		return store.Flags{}, Bad("", "unknown system flag")
	}
	return f, nil
}

// validFlagName: a flag is "\" atom or atom (rfc3501.txt:4767-4781); an atom
// has no atom-specials (rfc3501.txt:4554-4559): ( ) { SP CTL % * " \ ].
func validFlagName(s string) bool {
	s = strings.TrimPrefix(s, `\`)
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`(){%*"\]`, c) >= 0 {
			return false
		}
	}
	return true
}

func formatValue(v Value) string { return string(appendValue(nil, v, true)) }

// cmdStore implements STORE and UID STORE (RFC 3501 §6.4.6, §6.4.8):
// parse → ONE store call → a FETCH FLAGS per message unless .SILENT.
func cmdStore(c *Conn, cmd *Command, uid bool) error {
	args := cmd.Args
	unchangedSince := int64(-1)
	if len(args) > 1 && args[1].Kind == List && c.capable("CONDSTORE") {
		// store-modifier UNCHANGEDSINCE (rfc7162.txt:2471).
		var err error
		if unchangedSince, err = parseModifier(args[1], "UNCHANGEDSINCE", true); err != nil {
			return err
		}
		args = append([]Value{args[0]}, args[2:]...)
	}
	if len(args) < 3 {
		return Syntax("STORE sequence-set item flags")
	}
	it, ok := parseStoreItem(args[1])
	if !ok {
		return Syntax("unknown STORE item " + formatValue(args[1]))
	}
	flags, err := storeFlagArgs(args[2:])
	if err != nil {
		return err
	}
	uids, err := c.resolveSet(args[0], uid)
	if err != nil {
		return err
	}
	if unchangedSince >= 0 {
		// "a STORE command with the UNCHANGEDSINCE modifier" enables
		// CONDSTORE (rfc7162.txt:382).
		if err := c.enableCondstore(); err != nil {
			return err
		}
	}
	s := c.sel
	if s.readOnly {
		// EXAMINE: "No changes to the permanent state of the mailbox,
		// including per-user state, are permitted" (rfc3501.txt:1870-1872);
		// STORE's "NO - store error: can't store that data" (rfc3501.txt:3223).
		return No("", "mailbox is read-only")
	}
	if len(uids) == 0 {
		return nil // rfc3501.txt:3349-3353: a UID STORE of no messages is OK
	}
	// Messages this session's own STORE took out of the view are still
	// the client's, at the same UIDs: they are changed by message id
	// (StoreFlagsHeld), README "Own changes in a view".
	held := s.view.Gone(uids, true)
	if it.op != store.FlagsSet && s.view.KeepsFlags() && held.Len() == 0 && !c.condstoreAware() {
		return c.addRemoveFlags(cmd.Name, uid, it, flags, uids)
	}
	if it.silent && it.op != store.FlagsSet {
		// .SILENT means the client knows the new flags (rfc3501.txt:3229),
		// which for +FLAGS/-FLAGS holds only if it knew the old ones: report
		// external changes made before this STORE first, so that marking our
		// own change as told below cannot hide them (rfc3501.txt:3233-3238).
		if err := c.pollSelected(!noExpunge[cmd.Name], true); err != nil {
			return err
		}
	}
	var changes []store.FlagChange
	var modified []uint32
	if unchangedSince >= 0 {
		changes, modified, err = c.Store().StoreFlagsUnchangedSince(c.Ctx(), s.mb.Box(), uids, held, it.op, flags, unchangedSince)
	} else {
		changes, err = c.Store().StoreFlagsHeld(c.Ctx(), s.mb.Box(), uids, held, it.op, flags)
	}
	if err != nil {
		return err
	}
	c.ownChanges(changes)
	// Flag-defined views (Flagged, Unread, ...) and other sessions' flags
	// change: the post-command poll reads the store.
	s.dirty = true

	w := c.Writer()
	w.Lock()
	defer w.Unlock()
	for _, ch := range changes {
		seq := s.view.Seq(ch.UID)
		if seq == 0 {
			continue
		}
		// Either the client was just told (FETCH below) or it knows what
		// it set (.SILENT, rfc3501.txt:3229): the poll must not repeat it.
		before, _ := s.view.Flags(ch.UID)
		s.view.Told(ch.UID, ch.ModSeq)
		s.view.SetFlags(ch.UID, ch.Flags)
		switch {
		case !it.silent:
			c.writeStoreFetch(seq, ch.UID, uid, ch.Flags, ch.ModSeq)
		case unchangedSince >= 0 || c.condstoreAware() && !slices.Equal(before.Names(), ch.Flags.Names()):
			// A conditional STORE reports the new mod-sequence "even if
			// the .SILENT suffix is specified" (rfc7162.txt:543-553); so does
			// any STORE that changed the flags once CONDSTORE is enabled: the
			// client cannot know the mod-sequence it set ("The server is
			// REQUIRED to include the mod-sequence value", rfc7162.txt:852-859).
			c.writeStoreModSeq(seq, ch.UID, uid, ch.ModSeq)
		}
	}
	if len(modified) > 0 {
		// The messages that failed the UNCHANGEDSINCE test, as a
		// sequence set (STORE) or UID set (UID STORE): MODIFIED
		// (rfc7162.txt:571-577).
		nums := modified
		if !uid {
			nums = nil
			for _, u := range modified {
				if seq := s.view.Seq(u); seq != 0 {
					nums = append(nums, seq)
				}
			}
			slices.Sort(nums)
		}
		return c.OK("MODIFIED "+numSet(nums), "conditional STORE failed for some messages")
	}
	return nil
}

// writeStoreModSeq writes a silent STORE's "* seq FETCH ([UID u] MODSEQ
// (n))": "An untagged FETCH response MUST be sent, even if the .SILENT
// suffix is specified" (rfc7162.txt:543-553); the writer is locked.
func (c *Conn) writeStoreModSeq(seq, u uint32, withUID bool, ms int64) {
	w := c.storeFetchStart(seq, u, withUID)
	w.Raw("MODSEQ (")
	w.Number(uint64(ms))
	w.Raw("))")
	w.CRLF()
}

// storeFetchStart writes "* seq FETCH (" and, for UID STORE, "UID u ".
func (c *Conn) storeFetchStart(seq, u uint32, withUID bool) *Writer {
	w := c.Writer()
	w.Untagged()
	w.Number(uint64(seq))
	w.Raw(" FETCH (")
	if withUID {
		w.Raw("UID ")
		w.Number(uint64(u))
		w.SP()
	}
	return w
}

// writeStoreFetch writes a STORE's "* seq FETCH (FLAGS (...))" (with the
// UID for UID STORE, rfc3501.txt:3390-3393); the writer is locked.
func (c *Conn) writeStoreFetch(seq, u uint32, withUID bool, f store.Flags, ms int64) {
	c.announceKeywords(f.Keywords)
	w := c.storeFetchStart(seq, u, withUID)
	w.Raw("FLAGS ")
	w.FlagSet(f, c.showsRecent(u))
	if c.condstoreAware() && ms > 0 {
		c.writeModSeq(w, ms) // "The server is REQUIRED to include the mod-sequence value", rfc7162.txt:852-859
	}
	w.Raw(")")
	w.CRLF()
}

// addRemoveFlags is STORE +FLAGS/-FLAGS (a client marking messages read,
// flagged, deleted, or tagging them with keywords): one UPDATE of only the
// messages that change (store.AddRemoveFlags). The FETCH responses of the
// others come from the flags the view keeps, made current by a poll first, which also
// reports other sessions' changes before this one (as for .SILENT above).
func (c *Conn) addRemoveFlags(name string, uid bool, it storeItem, flags store.Flags, uids []uint32) error {
	s := c.sel
	if err := c.pollSelected(!noExpunge[name], true); err != nil {
		return err
	}
	changed, lo, hi, err := c.Store().AddRemoveFlags(c.Ctx(), s.mb.Box(), uids, it.op == store.FlagsAdd, flags)
	if err != nil {
		return err
	}
	// The view takes the changed flags below. Only in a query mailbox can
	// they change what it holds (a message leaving Unread): then the
	// post-command poll reads the store.
	s.dirty = s.dirty || s.mb.IsQuery()
	if len(changed) > 0 {
		s.ownLo, s.ownHi = lo, hi
	}
	c.ownChanges(changed)
	for _, ch := range changed {
		s.view.Told(ch.UID, ch.ModSeq)
		s.view.SetFlags(ch.UID, ch.Flags)
		// The poll leaves these changes out (ChangesSinceExcept): a new
		// keyword is announced here, or by the post-command poll after
		// .SILENT (keywords.go).
		s.kw.note(ch.Flags.Keywords)
	}
	if it.silent {
		return nil
	}
	w := c.Writer()
	w.Lock()
	defer w.Unlock()
	for _, u := range uids {
		if s.view.Expunged(u) && !s.view.IsHeld(u) {
			continue
		}
		seq := s.view.Seq(u)
		fl, ok := s.view.Flags(u)
		if seq == 0 || !ok {
			continue
		}
		c.writeStoreFetch(seq, u, uid, fl, 0)
	}
	return nil
}

// ownChanges records the messages whose flags this session's command
// changed: in a query mailbox, one that stops matching the view stays in
// this session's view until a sync point (View.Own; README "Own changes in
// a view"). A folder's membership never depends on flags.
func (c *Conn) ownChanges(chs []store.FlagChange) {
	s := c.sel
	if !s.mb.IsQuery() {
		return
	}
	for _, ch := range chs {
		s.view.Own(ch.UID)
	}
}
