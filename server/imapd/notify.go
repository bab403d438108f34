package imapd

import (
	"errors"
	"slices"
	"strings"
	"time"

	"decimail/server/store"
)

// NOTIFY (RFC 5465): the client listens all the time, also between
// commands (rfc5465.txt:231-237: it "listens for event notifications all the time"), and names the mailboxes and events it
// wants to hear of. Events of the selected mailbox go out as the updates
// of IDLE do (EXISTS, EXPUNGE, FETCH FLAGS; MessageNew's fetch attributes
// for new messages); events of other mailboxes as STATUS (message events)
// and LIST (MailboxName, SubscriptionChange) responses, found by comparing
// the user's mailboxes (one query: store.Mailboxes) with what the session
// last reported, whenever a watched mailbox is signalled through the
// process's one LISTEN connection (store.Notifier) and at least every
// idlePoll. Between commands the session waits for the client's next
// byte or a signal, whichever comes first (notifyWait).

func init() {
	register("NOTIFY", cmdSpec{states: authenticated, ext: "NOTIFY", fn: cmdNotify})
}

// notifyEvents are the supported events (BADEVENT lists them,
// rfc5465.txt:343-346).
var notifyEvents = []string{"MessageNew", "MessageExpunge", "FlagChange", "MailboxName", "SubscriptionChange"}

// notifyGroup is one event-group of NOTIFY SET.
type notifyGroup struct {
	filter string   // selected, selected-delayed, inboxes, personal, subscribed, subtree, mailboxes
	names  []string // of subtree and mailboxes, normalised
	msg    bool     // MessageNew and MessageExpunge (always together)
	flags  bool     // FlagChange
	mbName bool     // MailboxName
	subs   bool     // SubscriptionChange
	fetch  *fetchRequest
}

// notifyState is a session's NOTIFY SET.
type notifyState struct {
	selected *notifyGroup // SELECTED or SELECTED-DELAYED; nil: no message events of the selected mailbox
	others   []notifyGroup
	ch       chan struct{} // signalled for any of the user's mailboxes
	subs     []*store.Subscription
	known    map[int64]store.MailboxStatus // the user's mailboxes as last reported, by id
	tick     *time.Ticker
}

func cmdNotify(c *Conn, cmd *Command) error {
	if len(cmd.Args) == 0 {
		return Syntax("NOTIFY SET or NOTIFY NONE")
	}
	switch op := strings.ToUpper(cmd.Args[0].S); {
	case cmd.Args[0].Kind == Atom && op == "NONE" && len(cmd.Args) == 1:
		c.notifyStop()
		return nil
	case cmd.Args[0].Kind == Atom && op == "SET":
	default:
		return Syntax("NOTIFY SET or NOTIFY NONE")
	}
	args := cmd.Args[1:]
	withStatus := len(args) > 0 && args[0].Kind == Atom && strings.EqualFold(args[0].S, "STATUS")
	if withStatus {
		args = args[1:]
	}
	if len(args) == 0 {
		return Syntax("NOTIFY SET needs event groups")
	}
	st := &notifyState{ch: make(chan struct{}, 1)}
	for _, g := range args {
		grp, err := c.parseNotifyGroup(g)
		if err != nil {
			return err
		}
		if strings.HasPrefix(grp.filter, "selected") {
			if st.selected != nil {
				return Syntax("only one of SELECTED and SELECTED-DELAYED") // rfc5465.txt:779-781
			}
			st.selected = &grp
			continue
		}
		st.others = append(st.others, grp)
	}
	all, err := c.Store().Mailboxes(c.Ctx(), c.User().ID)
	if err != nil {
		return err
	}
	c.notifyStop()
	st.known = map[int64]store.MailboxStatus{}
	for _, m := range all {
		st.known[m.ID] = m
	}
	c.notify = st
	c.notifySubscribe()
	w := c.Writer()
	w.Lock()
	if withStatus {
		// "the server MUST send a STATUS response for that mailbox before
		// NOTIFY's tagged OK" (rfc5465.txt:271-292).
		for _, m := range all {
			if msg, flags := st.watches(&m, c.selectedID()); msg || flags {
				c.writeMailboxStatus(c.notifyItems(msg, flags), &m)
			}
		}
	}
	w.Unlock()
	// "a successful NOTIFY SET command implies an implicit NOOP command"
	// (rfc5465.txt:248-251).
	if c.sel != nil {
		return c.pollSelected(true, true)
	}
	return nil
}

// parseNotifyGroup reads "(" filter-mailboxes SP events ")"
// (rfc5465.txt:937-1010).
func (c *Conn) parseNotifyGroup(v Value) (notifyGroup, error) {
	var g notifyGroup
	if v.Kind != List || len(v.List) < 2 || v.List[0].Kind != Atom {
		return g, Syntax("event group expected: (filter events)")
	}
	g.filter = strings.ToLower(v.List[0].S)
	rest := v.List[1:]
	switch g.filter {
	case "selected", "selected-delayed", "inboxes", "personal", "subscribed":
	case "subtree", "mailboxes":
		names := []Value{rest[0]}
		if rest[0].Kind == List {
			names = rest[0].List
		}
		if len(names) == 0 {
			return g, Syntax("mailbox names expected")
		}
		for _, n := range names {
			name, err := c.mailboxArg(n)
			if errors.Is(err, errNotMUTF7) {
				continue // names no mailbox: "the server MUST ignore it" (rfc5465.txt:303-304)
			} else if err != nil {
				return g, err
			}
			g.names = append(g.names, name)
		}
		rest = rest[1:]
	default:
		return g, Syntax("unknown mailbox filter " + v.List[0].S)
	}
	if len(rest) != 1 {
		return g, Syntax("events expected after the mailbox filter")
	}
	ev := rest[0]
	if ev.Kind == Atom && strings.EqualFold(ev.S, "NONE") {
		return g, nil
	}
	if ev.Kind != List || len(ev.List) == 0 {
		return g, Syntax("events expected: (event ...) or NONE")
	}
	selected := strings.HasPrefix(g.filter, "selected")
	var newMsg, expunge bool
	var unsupported bool
	for i := 0; i < len(ev.List); i++ {
		e := ev.List[i]
		if e.Kind != Atom {
			return g, Syntax("event name expected")
		}
		switch strings.ToLower(e.S) {
		case "messagenew":
			newMsg = true
			if i+1 < len(ev.List) && ev.List[i+1].Kind == List {
				if !selected {
					// "The fett-att list may only be present for the
					// SELECTED/SELECTED-DELAYED mailbox filter" (rfc5465.txt:991-993).
					return g, Syntax("MessageNew's fetch attributes only for SELECTED")
				}
				req, err := c.parseFetchItems(ev.List[i+1])
				if err != nil {
					return g, err
				}
				g.fetch = req
				i++
			}
		case "messageexpunge":
			expunge = true
		case "flagchange":
			g.flags = true
		case "mailboxname":
			g.mbName = true
		case "subscriptionchange":
			g.subs = true
		default: // AnnotationChange, the metadata events, extensions
			unsupported = true
		}
	}
	if newMsg != expunge || g.flags && !newMsg {
		// Both or neither; with FlagChange "MessageNew and MessageExpunge
		// MUST also be specified" (rfc5465.txt:439-445).
		return g, Syntax("MessageNew and MessageExpunge go together, and FlagChange needs both")
	}
	if selected && (g.mbName || g.subs) {
		return g, Syntax("SELECTED takes message events only") // rfc5465.txt:796-798
	}
	if unsupported {
		// "MUST refuse the command with a tagged NO response (not a BAD)
		// ... the BADEVENT response code" (rfc5465.txt:343-346).
		return g, No("BADEVENT ("+strings.Join(notifyEvents, " ")+")", "unsupported event")
	}
	g.msg = newMsg
	return g, nil
}

// matches reports whether the group's filter takes mailbox m.
func (g *notifyGroup) matches(m *store.MailboxStatus) bool {
	switch g.filter {
	case "personal":
		return true
	case "inboxes": // we deliver into INBOX only
		return m.Name == "INBOX"
	case "subscribed":
		return m.Subscribed
	case "mailboxes":
		return slices.Contains(g.names, m.Name)
	case "subtree":
		for _, n := range g.names {
			if m.Name == n || strings.HasPrefix(m.Name, n+"/") {
				return true
			}
		}
	}
	return false
}

// watches reports the message events wanted for m, not the selected
// mailbox (whose message events SELECTED decides, rfc5465.txt:263-269).
func (st *notifyState) watches(m *store.MailboxStatus, selectedID int64) (msg, flags bool) {
	if m.ID == selectedID {
		return false, false
	}
	for i := range st.others {
		if g := &st.others[i]; g.matches(m) {
			msg, flags = msg || g.msg, flags || g.flags
		}
	}
	return msg, flags
}

// watchesNames reports whether MailboxName or SubscriptionChange events
// are wanted for m.
func (st *notifyState) watchesNames(m *store.MailboxStatus) (mbName, subs bool) {
	for i := range st.others {
		if g := &st.others[i]; g.matches(m) {
			mbName, subs = mbName || g.mbName, subs || g.subs
		}
	}
	return mbName, subs
}

// notifyItems are the STATUS items of a message event in another mailbox:
// with the STATUS indicator, for MessageNew the response "MUST contain
// MESSAGES, UIDNEXT, and UIDVALIDITY" (rfc5465.txt:271-292); a new or
// expunged message later is "an unsolicited STATUS (UIDNEXT MESSAGES)
// response" (rfc5465.txt:537-541, 576-580); a flag change in another
// mailbox "includes at least HIGHESTMODSEQ and UIDVALIDITY" with CONDSTORE,
// and the server "MAY also include the UNSEEN data item" (rfc5465.txt:474-485).
func (c *Conn) notifyItems(msg, flags bool) []string {
	var items []string
	if msg {
		items = append(items, "MESSAGES", "UIDNEXT", "UIDVALIDITY")
	}
	if flags {
		if !msg {
			items = append(items, "UIDVALIDITY")
		}
		items = append(items, "UNSEEN")
	}
	if c.condstoreAware() {
		items = append(items, "HIGHESTMODSEQ")
	}
	return items
}

func (c *Conn) selectedID() int64 {
	if c.sel == nil {
		return 0
	}
	return c.sel.mb.ID
}

// notifySubscribe subscribes the session's channel to every mailbox of the
// user (a signal for one the groups do not take only costs a comparison).
func (c *Conn) notifySubscribe() {
	st := c.notify
	for _, s := range st.subs {
		s.Close()
	}
	st.subs = st.subs[:0]
	n := c.Store().Notifier()
	gen := n.Gen()
	for id := range st.known {
		st.subs = append(st.subs, n.SubscribeTo(c.User().ID, id, gen, st.ch))
	}
	if st.tick == nil {
		st.tick = time.NewTicker(idlePoll) // mailboxes created by other processes
	}
}

// notifyStop ends NOTIFY (NOTIFY NONE, a new SET, logout).
func (c *Conn) notifyStop() {
	st := c.notify
	if st == nil {
		return
	}
	for _, s := range st.subs {
		s.Close()
	}
	if st.tick != nil {
		st.tick.Stop()
	}
	c.notify = nil
}

// notifyWait waits, between commands, until the client has sent something,
// sending the events that happen meanwhile. It returns the read's error,
// or the BYE of an event that ends the session (the selected mailbox
// deleted); other failures of an event are logged, and the next signal or
// tick tries again.
func (c *Conn) notifyWait() error {
	if c.br.Buffered() > 0 {
		return nil
	}
	ready := make(chan error, 1)
	go func() {
		_, err := c.br.Peek(1)
		ready <- err
	}()
	push := func(f func() error) error {
		err := f()
		var st *Status
		if errors.As(err, &st) && st.Kind == "BYE" {
			c.nc.SetReadDeadline(time.Now()) // the reader goroutine must end before we return
			<-ready
			return err
		} else if err != nil {
			c.log.Warn("notify: event not sent", "err", err)
		}
		return c.Flush()
	}
	for {
		var selC <-chan struct{}
		if c.sel != nil && c.notify.selected != nil {
			selC = c.sel.sub.C
		}
		var err error
		select {
		case err := <-ready:
			return err
		case <-selC:
			c.sel.stale = true
			err = push(c.notifySelected)
		case <-c.notify.ch:
			err = push(c.notifyOthers)
		case <-c.notify.tick.C:
			if err = push(c.notifyOthers); err == nil {
				err = push(c.notifySelected)
			}
		}
		if err != nil {
			return err
		}
	}
}

// notifySelected sends the selected mailbox's updates, EXPUNGEs held back
// under SELECTED-DELAYED until a command allows them (rfc5465.txt:808-815),
// and MessageNew's fetch attributes for the new messages.
func (c *Conn) notifySelected() error {
	g := c.notify.selected
	if c.sel == nil || g == nil {
		return nil
	}
	v := c.sel.view
	var last uint32
	if n := v.Len(); n > 0 {
		last = v.UIDs()[n-1]
	}
	allowExpunge := g.filter == "selected"
	if !g.flags {
		if err := c.syncSelected(true); err != nil || c.sel == nil {
			return err
		}
		if err := c.flushUpdates(allowExpunge, false); err != nil {
			return err
		}
	} else if err := c.pollSelected(allowExpunge, true); err != nil {
		return err
	}
	if g.fetch == nil || c.sel == nil {
		return nil
	}
	uids := c.sel.view.UIDs()
	i, _ := slices.BinarySearch(uids, last+1)
	fresh := slices.Clone(uids[i:])
	if len(fresh) == 0 {
		return nil
	}
	f := fetcher{c: c, w: c.Writer(), req: g.fetch}
	f.w.Lock()
	defer f.w.Unlock()
	return c.Store().FetchHeld(c.Ctx(), c.sel.mb.Box(), fresh, store.Held{}, g.fetch.cols(false), f.row)
}

// notifyOthers compares the user's mailboxes with what was reported and
// sends the STATUS and LIST responses of the events asked for.
func (c *Conn) notifyOthers() error {
	st := c.notify
	all, err := c.Store().Mailboxes(c.Ctx(), c.User().ID)
	if err != nil {
		return err
	}
	now := map[int64]store.MailboxStatus{}
	for _, m := range all {
		now[m.ID] = m
	}
	w := c.Writer()
	w.Lock()
	defer w.Unlock()
	selID := c.selectedID()
	changedSet := false
	for _, m := range all {
		old, had := st.known[m.ID]
		if !had {
			changedSet = true
			if mbName, _ := st.watchesNames(&m); mbName {
				c.writeNotifyList(&m, now, "", false)
			}
			continue
		}
		if old.Name != m.Name {
			if mbName, _ := st.watchesNames(&m); mbName {
				c.writeNotifyList(&m, now, old.Name, false) // rfc5465.txt:628-634: OLDNAME
			}
		} else if old.Subscribed != m.Subscribed {
			if _, subs := st.watchesNames(&m); subs {
				c.writeNotifyList(&m, now, "", false)
			}
		}
		msg, flags := st.watches(&m, selID)
		msgChanged := msg && (old.Messages != m.Messages || old.UIDNext != m.UIDNext || old.UIDValidity != m.UIDValidity)
		flagsChanged := flags && (old.Unseen != m.Unseen || old.UIDValidity != m.UIDValidity ||
			c.condstoreAware() && old.HighestModSeq != m.HighestModSeq)
		if msgChanged || flagsChanged {
			c.writeMailboxStatus(c.notifyItems(msgChanged, flagsChanged), &m)
		}
	}
	for id, old := range st.known {
		if _, ok := now[id]; !ok {
			changedSet = true
			if mbName, _ := st.watchesNames(&old); mbName {
				c.writeNotifyList(&old, now, "", true)
			}
		}
	}
	st.known = now
	if changedSet {
		c.notifySubscribe()
	}
	return nil
}

// writeNotifyList writes the LIST response of a MailboxName or
// SubscriptionChange event (rfc5465.txt:623-640): \NonExistent for a
// mailbox gone, \Subscribed when subscribed, the children attributes, and
// OLDNAME after a rename. The caller holds the writer lock.
func (c *Conn) writeNotifyList(m *store.MailboxStatus, all map[int64]store.MailboxStatus, oldName string, gone bool) {
	var attrs []string
	if gone {
		attrs = append(attrs, `\NonExistent`)
	} else {
		children := false
		for _, o := range all {
			if strings.HasPrefix(o.Name, m.Name+"/") {
				children = true
				break
			}
		}
		attrs = append(attrs, map[bool]string{true: `\HasChildren`, false: `\HasNoChildren`}[children])
		if m.Subscribed {
			attrs = append(attrs, `\Subscribed`)
		}
	}
	w := c.Writer()
	w.Raw(`* LIST (` + strings.Join(attrs, " ") + `) "/" `)
	w.String(c.mailboxName(m.Name))
	if oldName != "" {
		w.Raw(` ("OLDNAME" (`)
		w.String(c.mailboxName(oldName))
		w.Raw(`))`)
	}
	w.CRLF()
}
