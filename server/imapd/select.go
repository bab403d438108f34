package imapd

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"

	"decimail/server/query"
	"decimail/server/store"
)

func init() {
	register("SELECT", cmdSpec{states: authenticated, fn: func(c *Conn, cmd *Command) error { return cmdSelect(c, cmd, false) }})
	register("EXAMINE", cmdSpec{states: authenticated, fn: func(c *Conn, cmd *Command) error { return cmdSelect(c, cmd, true) }})
	register("CLOSE", cmdSpec{states: selected, fn: cmdClose})
	register("UNSELECT", cmdSpec{states: selected, ext: "UNSELECT", fn: cmdUnselect})
	register("CHECK", cmdSpec{states: selected, fn: cmdCheck})
}

// selection is the selected-state part of a session.
type selection struct {
	mb       store.Mailbox
	readOnly bool
	view     *View
	sub      *store.Subscription
	dirty    bool // this session changed the mailbox: poll the store
	stale    bool // a notification arrived that no read has followed yet
	// ownLo..ownHi: modseqs of this session's last AddRemoveFlags, whose
	// flag changes the next poll leaves out (the view has them already).
	ownLo, ownHi int64
	polled       time.Time        // last store poll (a fallback for lost notifications)
	kw           *keywordSet      // the FLAGS announced (keywords.go)
	saved        []uint32         // the search result variable "$", UIDs (searchres.go)
	updates      []*updateContext // searches with RETURN (UPDATE), oldest first (ctxupdate.go)
}

// systemFlags are the flags every mailbox supports (rfc3501.txt:574-577: "The
// currently-defined system flags").
var systemFlags = []string{`\Answered`, `\Flagged`, `\Deleted`, `\Seen`, `\Draft`}

// cmdSelect implements SELECT and EXAMINE (RFC 3501 §6.3.1, §6.3.2).
func cmdSelect(c *Conn, cmd *Command, readOnly bool) error {
	if len(cmd.Args) < 1 {
		return Syntax("mailbox name expected")
	}
	name, err := c.mailboxArg(cmd.Args[0])
	if err != nil {
		return err
	}
	qr, err := c.selectParams(cmd.Args[1:])
	if err != nil {
		return err
	}
	// A failed SELECT leaves no mailbox selected (rfc3501.txt:1805-1810: "no
	// mailbox is selected").
	if c.sel != nil && (c.capable("CONDSTORE") || c.rev2) {
		// The boundary between the responses of the closed mailbox and the
		// new one: a server advertising CONDSTORE "must return the CLOSED
		// response code in this case" (rfc7162.txt:2111-2123), and so must
		// IMAP4rev2 (rfc9051.txt:1813).
		c.Untagged("OK [CLOSED] previous mailbox closed")
	}
	c.Unselect()
	gen := c.Store().Notifier().Gen() // before the snapshot (Subscribe)
	snap, err := c.Store().Select(c.Ctx(), c.User().ID, name, readOnly)
	if errors.Is(err, store.ErrNotFound) {
		return No(CodeNonExistent, "no such mailbox")
	} else if err != nil {
		return err
	}
	var mbs []store.MailboxStatus
	if c.rev2 { // for the untagged LIST (rev2.go)
		if mbs, err = c.Store().Mailboxes(c.Ctx(), c.User().ID); err != nil {
			return err
		}
	}
	s := &selection{mb: snap.Mailbox, readOnly: readOnly, view: NewView(snap.UIDs, snap.Recent, snap.ModSeq), polled: time.Now(),
		kw: newKeywordSet(snap.Keywords)}
	s.view.KeepFlags(snap.Flags)
	s.view.KeepIDs(snap.IDs)
	s.sub = c.Store().Notifier().Subscribe(c.User().ID, s.mb.ID, gen)
	c.sel = s
	c.poll = func(allowExpunge bool) error { return c.pollSelected(allowExpunge, false) }
	c.onUnselect = func() {
		s.sub.Close()
		c.sel = nil
	}
	c.SetState(Selected)

	flags := s.kw.flags()
	w := c.Writer()
	w.Lock()
	w.Line("FLAGS (%s)", strings.Join(flags, " "))
	w.Line("%d EXISTS", len(snap.UIDs))
	if c.rev2 {
		c.writeSelectList(mbs, snap.Mailbox.Name)
	} else {
		// RECENT and [UNSEEN] are IMAP4rev1's (rfc9051.txt:8048-8051).
		w.Line("%d RECENT", len(snap.Recent))
		if len(snap.Unseen) > 0 {
			w.Line("OK [UNSEEN %d] first unseen message", s.view.Seq(snap.Unseen[0]))
		}
	}
	if readOnly {
		w.Line("OK [PERMANENTFLAGS ()] read-only mailbox")
	} else {
		w.Line(`OK [PERMANENTFLAGS (%s \*)] flags permitted`, strings.Join(flags, " "))
	}
	w.Line("OK [UIDVALIDITY %d] UIDs valid", snap.Mailbox.UIDValidity)
	w.Line("OK [UIDNEXT %d] predicted next UID", snap.Mailbox.UIDNext)
	if c.capable("OBJECTID") {
		w.Line("OK [MAILBOXID (%s)] mailbox id", c.Store().ObjectIDs().Mailbox(snap.Mailbox.ID)) // untagged OK for SELECT and EXAMINE, rfc8474.txt:203ff
	}
	if c.selectReportsModSeq() {
		// Every mailbox keeps mod-sequences, so never NOMODSEQ
		// (rfc7162.txt:422-428); the value is "the highest mod-sequence
		// value of all messages in the mailbox" (rfc7162.txt:439-444).
		w.Line("OK [HIGHESTMODSEQ %d] highest mod-sequence", highestModSeq(snap.HighestModSeq))
	}
	w.Unlock()
	if qr != nil && qr.uidValidity == snap.Mailbox.UIDValidity {
		// (With another UIDVALIDITY the parameter is ignored: "the server
		// MUST ignore the remaining parameters and behave as if no dynamic
		// message data changed", rfc7162.txt:1470-1477.)
		if err := c.resync(qr); err != nil {
			return err
		}
	}
	if readOnly {
		return c.OK("READ-ONLY", cmd.Name+" completed")
	}
	return c.OK("READ-WRITE", cmd.Name+" completed")
}

// selectParams reads SELECT/EXAMINE's optional parameter list (the
// select-params of RFC 4466): CONDSTORE, a CONDSTORE enabling command
// (rfc7162.txt:1148-1151; the select-param condstore-param,
// rfc7162.txt:2559), and QRESYNC (...) (rfc7162.txt:2598-2602), only
// after "ENABLE QRESYNC" (rfc7162.txt:1446-1450), which it returns.
// Anything else is BAD before the mailbox is opened: "the server verifies
// all arguments for syntactic validity" (rfc7162.txt:1452-1468).
func (c *Conn) selectParams(args []Value) (*qresyncParam, error) {
	if len(args) == 0 {
		return nil, nil
	}
	if len(args) != 1 || args[0].Kind != List || len(args[0].List) == 0 {
		return nil, Syntax("mailbox name and optional parameter list expected")
	}
	var qr *qresyncParam
	condstore := false
	for l := args[0].List; len(l) > 0; l = l[1:] {
		p := l[0]
		switch {
		case p.Kind == Atom && strings.EqualFold(p.S, "CONDSTORE") && c.capable("CONDSTORE") && !condstore:
			condstore = true
		case p.Kind == Atom && strings.EqualFold(p.S, "QRESYNC") && c.qresync && qr == nil && len(l) > 1:
			var err error
			if qr, err = parseQresync(l[1]); err != nil {
				return nil, err
			}
			l = l[1:]
		default:
			return nil, Syntax("unknown SELECT parameter " + formatValue(p))
		}
	}
	c.condstore = true // before the selection: no separate HIGHESTMODSEQ response
	return qr, nil
}

// pollSelected sends the updates other sessions (or this one) caused
// (syncSelected says when it reads the store).
func (c *Conn) pollSelected(allowExpunge, force bool) error {
	if err := c.syncSelected(force); err != nil || c.sel == nil {
		return err
	}
	return c.flushUpdates(allowExpunge, true)
}

// flushUpdates sends the view's pending updates (flags false: leaving the
// flag changes pending, NOTIFY without FlagChange) and the changes of the
// updating searches' results (ctxupdate.go): REMOVEFROM of the messages
// about to be expunged "prior to the expunge notification itself"
// (rfc5267.txt:511-514), the rest after EXISTS and FETCH
// (rfc5267.txt:434-437).
func (c *Conn) flushUpdates(allowExpunge, flags bool) error {
	v := c.sel.view
	var pre []string
	if allowExpunge && len(c.sel.updates) > 0 {
		pre = c.removeExpunged(v.Expunging())
	}
	var last uint32
	if n := v.Len(); n > 0 {
		last = v.UIDs()[n-1]
	}
	var ups []Update
	if flags {
		ups = v.Flush(allowExpunge)
	} else {
		ups = v.FlushMessages(allowExpunge)
	}
	post, err := c.updateResults(last)
	c.writeUpdates(pre, ups, post)
	return err
}

// syncSelected is pollSelected's read: it brings the view up to date with
// the store and leaves the updates pending. It reads the store only when
// something may have changed since its last read: this session changed
// the mailbox (dirty), or the subscription was signalled (stale; every
// change is signalled before anyone can act on it, store.Notifier), or the
// process is not listening, or the last read is older than pollFallback.
// Otherwise the view is the store's state and NOOP, CHECK, IDLE and FETCH
// of kept flags answer without a round trip (issue 15: the ~1 ms floor).
// A signal arriving within pollCoalesce of the last read waits for the
// next command that must be current (force: NOOP, CHECK, IDLE, the
// commands that answer from the view) instead of causing another read.
func (c *Conn) syncSelected(force bool) error {
	s := c.sel
	if s == nil {
		return nil
	}
	select {
	case <-s.sub.C:
		s.stale = true
	default:
	}
	since := time.Since(s.polled)
	read := s.dirty || since > pollFallback || !c.Store().Notifier().Listening()
	if s.stale && (force || since >= pollCoalesce) {
		read = true
	}
	if read {
		s.dirty, s.stale = false, false
		s.polled = time.Now()
		lo, hi := int64(0), int64(-1)
		if s.ownHi > 0 && s.ownHi > s.view.ModSeq() {
			lo, hi = s.ownLo, s.ownHi
		}
		ch, err := c.Store().ChangesSinceHeld(c.Ctx(), s.mb.Box(), s.view.ModSeq(), !s.readOnly, lo, hi, s.view.Held())
		if errors.Is(err, store.ErrNotFound) {
			return Bye("", "selected mailbox was deleted")
		} else if err != nil {
			return err
		}
		return c.applyChanges(ch)
	}
	return nil
}

// pollCoalesce: notifications arriving within this long after a read of
// the store wait for the next command's poll instead of causing another
// read. With 50 sessions of one account changing its mail, each session was
// notified every few milliseconds and read the store after nearly every
// command, though the command had just read it (FETCH, SEARCH, SELECT):
// 2 round trips to Postgres per command instead of 1 (bench/ANALYSIS.md,
// many sessions). The updates are not lost, only sent with the next
// command; IDLE, NOOP, the commands that answer from the session's flags
// and those that changed the mailbox always read when signalled.
const pollCoalesce = 25 * time.Millisecond

// pollFallback: a session reads the store at least this often while it
// runs commands (and IDLE's ticks), signalled or not: the fallback should
// a notification be lost without the listener noticing.
const pollFallback = 5 * time.Second

// applyChanges brings the view up to date with changes read from the store.
func (c *Conn) applyChanges(ch *store.Changes) error {
	s := c.sel
	if ch.UIDValidity != s.mb.UIDValidity {
		// The mailbox was redefined: our UIDs mean nothing any more
		// (rfc3501.txt:478-482: a new UIDVALIDITY); the client must reselect.
		return Bye("", "mailbox UIDVALIDITY changed, please reselect")
	}
	if ch.Pruned {
		// Removals since the session's last read are no longer known
		// (expunge_horizon is far longer than any session goes without
		// reading; a tiny one could do this): reselecting, QRESYNC
		// included, answers from the membership (store.Vanished).
		return Bye("", "mailbox history expired, please reselect")
	}
	s.view.Apply(ch)
	s.ownLo, s.ownHi = 0, 0
	// Keywords new to the session (a STORE, APPEND, COPY or MOVE of any
	// session) are announced with the next updates, before them.
	for i := range ch.Changed {
		s.kw.note(ch.Changed[i].Flags.Keywords)
	}
	return nil
}

// writeUpdates writes the updates, after the FLAGS of keywords new to the
// session (keywords.go), with the updating searches' ESEARCH responses
// (pre before them, post after them).
func (c *Conn) writeUpdates(pre []string, ups []Update, post []string) {
	if len(ups) == 0 && len(c.sel.kw.pend) == 0 && len(pre) == 0 && len(post) == 0 {
		return
	}
	w := c.Writer()
	w.Lock()
	defer w.Unlock()
	c.announceKeywords(nil)
	for _, l := range pre {
		w.Line("%s", l)
	}
	defer func() {
		for _, l := range post {
			w.Line("%s", l)
		}
	}()
	if c.qresync {
		ups = c.writeVanished(ups)
	}
	for _, u := range ups {
		switch u.Kind {
		case UpdExpunge:
			w.Line("%d EXPUNGE", u.N)
		case UpdExists:
			w.Line("%d EXISTS", u.N)
		case UpdRecent:
			if !c.rev2 { // no RECENT in IMAP4rev2 (rev2.go)
				w.Line("%d RECENT", u.N)
			}
		case UpdFlags:
			c.announceKeywords(u.Flags.Keywords)
			if c.condstoreAware() {
				// The server "MUST then include mod-sequence data in all
				// subsequent untagged FETCH responses" (rfc7162.txt:388-400),
				// and the UID, as servers with QRESYNC must and those with
				// CONDSTORE alone "SHOULD comply with requirements from
				// Section 3.2.4" (rfc7162.txt:940-941, 1421-1430): the client
				// can file the mod-sequence under the message.
				w.Line("%d FETCH (UID %d FLAGS (%s) MODSEQ (%d))", u.N, u.UID, strings.Join(c.flagNames(u.UID, u.Flags), " "), u.ModSeq)
				c.sentModSeq = max(c.sentModSeq, u.ModSeq)
				continue
			}
			if c.rev2 {
				// "All unsolicited FETCH updates are required to include
				// UID" (rfc9051.txt:8082).
				w.Line("%d FETCH (UID %d FLAGS (%s))", u.N, u.UID, strings.Join(c.flagNames(u.UID, u.Flags), " "))
				continue
			}
			w.Line("%d FETCH (FLAGS (%s))", u.N, strings.Join(c.flagNames(u.UID, u.Flags), " "))
		}
	}
}

// flagNames renders a message's flags, with \Recent when it is recent for
// this session (rfc3501.txt:594-599) and the session is no IMAP4rev2 one
// (rev2.go).
func (c *Conn) flagNames(uid uint32, f store.Flags) []string {
	names := f.Names()
	if c.showsRecent(uid) {
		names = append(names, `\Recent`)
	}
	return names
}

// showsRecent reports whether flagNames adds \Recent (Writer.FlagSet).
func (c *Conn) showsRecent(uid uint32) bool {
	return c.sel != nil && !c.rev2 && c.sel.view.IsRecent(uid)
}

// cmdClose expunges silently (unless read-only) and unselects (RFC 3501 §6.4.2).
func cmdClose(c *Conn, cmd *Command) error {
	if err := noArgs(cmd); err != nil {
		return err
	}
	s := c.sel
	if !s.readOnly {
		if _, err := c.Store().Expunge(c.Ctx(), s.mb.Box(), nil); err != nil {
			return err
		}
	}
	c.Unselect()
	return nil
}

// cmdUnselect unselects without expunging (RFC 3691).
func cmdUnselect(c *Conn, cmd *Command) error {
	if err := noArgs(cmd); err != nil {
		return err
	}
	c.Unselect()
	return nil
}

// cmdCheck is a checkpoint (RFC 3501 §6.4.1): our writes are already
// durable, so it reports pending updates, like NOOP, and is a sync point
// (the "housekeeping" a checkpoint is for).
func cmdCheck(c *Conn, cmd *Command) error {
	if err := noArgs(cmd); err != nil {
		return err
	}
	return c.syncPoint()
}

// syncPoint is a mailbox-level sync point (CHECK; EXPUNGE releases in its
// handler; SELECT, EXAMINE, CLOSE and UNSELECT end the selection): the
// messages this session's own commands took out of the selected view are
// released and their EXPUNGEs sent with everything else pending (README
// "Own changes in a view"). CHECK "requests a checkpoint of the currently
// selected mailbox" (rfc3501.txt:2627). NOOP and IDLE are not sync points:
// the first capture of Thunderbird with them (issue 14) lost the message it
// had just marked read in Unread at the IDLE it sent right after, before
// its user pressed Delete. Until a sync point a message the session's own
// STORE took out of a view keeps its number and its UID (View.Own).
func (c *Conn) syncPoint() error {
	if c.sel != nil {
		c.sel.view.Release(nil)
	}
	return c.pollSelected(true, true)
}

// mailboxArg decodes a mailbox name argument: an astring, modified UTF-7
// decoded (RFC 3501 §5.1.3; UTF-8 as sent after ENABLE IMAP4rev2,
// decodeName), INBOX case-insensitive.
//
// A name that is not modified UTF-7 ("By convention, international mailbox
// names in IMAP4rev1 are specified using a modified version of the UTF-7
// encoding", rfc3501.txt:1045-1048) is still an
// astring, so no syntax error: it names no mailbox there is (every name is
// sent encoded), so NO [NONEXISTENT] (issue 14: it was BAD); a new name
// (CREATE, RENAME's target) that cannot be one is NO [CANNOT]
// (newMailboxArg).
func (c *Conn) mailboxArg(v Value) (string, error) {
	s, ok := v.AString()
	if !ok {
		return "", Syntax("mailbox name expected")
	}
	name, err := c.decodeName(s)
	if err != nil {
		return "", errNotMUTF7
	}
	if strings.IndexByte(name, 0) >= 0 {
		// No IMAP string holds NUL (rfc3501.txt:4662-4663), nor may
		// modified UTF-7 smuggle one in; Postgres text cannot hold it.
		return "", Bad("", "NUL in mailbox name")
	}
	return store.NormName(name), nil
}

// errNotMUTF7 answers a mailbox name that is not modified UTF-7.
var errNotMUTF7 = No(CodeNonExistent, "no such mailbox (the name is not modified UTF-7)") // NONEXISTENT, rfc5530.txt:295-297

// resolveSet parses a sequence set (uid=false) or UID set argument and
// returns the UIDs of the view it names.
func (c *Conn) resolveSet(v Value, uid bool) ([]uint32, error) {
	if c.isSaved(v) {
		return c.savedSet(), nil // SEARCHRES (searchres.go)
	}
	if v.Kind != Atom {
		return nil, Syntax("sequence set expected")
	}
	var set imap.NumSet
	var ok bool
	if uid {
		set, ok = query.ParseUIDSet(v.S)
	} else {
		set, ok = query.ParseSeqSet(v.S)
	}
	if !ok {
		return nil, Syntax(fmt.Sprintf("invalid sequence set %q", v.S))
	}
	uids, err := c.sel.view.Resolve(set)
	if err != nil {
		return nil, Bad("", err.Error())
	}
	return uids, nil
}
