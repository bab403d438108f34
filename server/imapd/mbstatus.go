package imapd

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"slices"
	"strings"

	"decimail/server/store"
)

// STATUS (RFC 3501 §6.3.10, rfc3501.txt:2424) and the status items shared
// with LIST-STATUS (RFC 5819).

func init() {
	register("STATUS", cmdSpec{states: authenticated, fn: cmdStatus})
}

// cmdStatus: STATUS mailbox (items). STATUS of the selected mailbox is
// allowed (rfc3501.txt:2453-2459 only warns about it: "SHOULD NOT be used on
// the currently selected mailbox").
func cmdStatus(c *Conn, cmd *Command) error {
	if len(cmd.Args) != 2 {
		return Syntax("STATUS mailbox (items)")
	}
	name, err := c.mailboxArg(cmd.Args[0])
	if err != nil {
		return err
	}
	items, err := c.statusItems(cmd.Args[1])
	if err != nil {
		return err
	}
	if slices.Contains(items, "HIGHESTMODSEQ") {
		// "a STATUS (HIGHESTMODSEQ) command" enables CONDSTORE (rfc7162.txt:375).
		if err := c.enableCondstore(); err != nil {
			return err
		}
	}
	st, err := c.mailboxStatus(name)
	if errors.Is(err, store.ErrNotFound) {
		return No(CodeNonExistent, "no such mailbox") // NONEXISTENT, rfc5530.txt:295
	} else if err != nil {
		return err
	}
	if err := c.quotaStatus(items, &st); err != nil {
		return err
	}
	if slices.Contains(items, "RECENT") {
		if err := c.Store().CountRecent(c.Ctx(), &st); err != nil {
			return err
		}
	}
	w := c.Writer()
	w.Lock()
	c.writeMailboxStatus(items, &st)
	w.Unlock()
	return nil
}

// mailboxStatus reads a mailbox's STATUS numbers. A client starting up sends a
// STATUS per mailbox, pipelined: when more STATUS commands are already in
// the input buffer, all of them are read in one query (statusAhead) and
// answered in turn. They were all received before that read, so answering
// them from one snapshot is executing them concurrently, which RFC 3501 §5.5
// allows (rfc3501.txt:1192-1199: a server "MAY begin processing another
// command"); any other command drops what is left.
func (c *Conn) mailboxStatus(name string) (store.MailboxStatus, error) {
	key := store.NormName(name)
	if st, ok := c.statusAhead[key]; ok {
		delete(c.statusAhead, key)
		return st, nil
	}
	ahead := c.pipelinedStatus()
	if len(ahead) == 0 {
		return c.Store().Status(c.Ctx(), c.User().ID, name)
	}
	all, err := c.Store().Statuses(c.Ctx(), c.User().ID, append(ahead, name))
	if err != nil {
		return store.MailboxStatus{}, err
	}
	st, ok := all[key]
	delete(all, key)
	c.statusAhead = all
	if !ok {
		return st, store.ErrNotFound
	}
	return st, nil
}

// pipelinedStatus returns the mailbox names of the STATUS commands that
// follow in the input buffer, complete, up to the first other command. It
// parses a copy with the session's own reader rules; a synchronising
// literal (which needs a continuation) ends the run.
func (c *Conn) pipelinedStatus() []string {
	n := c.br.Buffered()
	if n == 0 {
		return nil
	}
	buf, err := c.br.Peek(n)
	if err != nil {
		return nil
	}
	r := newReader(bufio.NewReader(bytes.NewReader(buf)), c.srv.cfg.limits(), func() error { return io.EOF })
	var names []string
	for len(names) < 1000 {
		cmd, err := r.ReadCommand()
		if err != nil || cmd.Name != "STATUS" || len(cmd.Args) != 2 {
			break
		}
		name, err := c.mailboxArg(cmd.Args[0])
		if err != nil {
			break
		}
		names = append(names, name)
	}
	return names
}

// statusItems parses a parenthesised list of status-att (rfc3501.txt:5047),
// upper-cased, duplicates dropped, in the order given. Unknown or
// unadvertised items are BAD (rfc3501.txt:2433: "BAD - command unknown or
// arguments invalid").
func (c *Conn) statusItems(v Value) ([]string, error) {
	if v.Kind != List || len(v.List) == 0 {
		return nil, Syntax("parenthesised list of status items expected")
	}
	var items []string
	for _, it := range v.List {
		if it.Kind != Atom {
			return nil, Syntax("status item expected")
		}
		name := strings.ToUpper(it.S)
		switch name {
		case "MESSAGES", "UIDNEXT", "UIDVALIDITY", "UNSEEN":
		case "RECENT":
			if c.rev2 { // not in IMAP4rev2's status-att (rev2.go)
				return nil, Bad("", "unknown status item "+it.S)
			}
		case "MAILBOXID": // rfc8474.txt:231
			if !c.capAdvertised("OBJECTID") {
				return nil, Bad("", "unknown status item "+it.S)
			}
		case "SIZE": // rfc8438.txt
			if !c.capAdvertised("STATUS=SIZE") {
				return nil, Bad("", "unknown status item "+it.S)
			}
		case "DELETED", "DELETED-STORAGE": // rfc9208.txt:383-403, with QUOTA=RES-MESSAGE / QUOTA=RES-STORAGE
			if !c.capable("QUOTA") && !(name == "DELETED" && c.rev2) { // IMAP4rev2's own too (rev2.go)
				return nil, Bad("", "unknown status item "+it.S)
			}
		case "APPENDLIMIT": // RFC 7889 §4
			if !c.capable("APPENDLIMIT") {
				return nil, Bad("", "unknown status item "+it.S)
			}
		case "HIGHESTMODSEQ": // "The highest mod-sequence value of all messages", rfc7162.txt:1131-1137
			if !c.capAdvertised("CONDSTORE") {
				return nil, Bad("", "unknown status item "+it.S)
			}
		default:
			return nil, Bad("", "unknown status item "+it.S)
		}
		if !slices.Contains(items, name) {
			items = append(items, name)
		}
	}
	return items, nil
}

// capAdvertised reports whether ext is in this connection's CAPABILITY list.
func (c *Conn) capAdvertised(ext string) bool {
	return slices.Contains(c.capabilities(), ext)
}

// writeMailboxStatus writes "* STATUS name (ITEM n ...)" in the order requested
// (rfc3501.txt:3904ff, STATUS response). The caller holds the writer lock.
func (c *Conn) writeMailboxStatus(items []string, st *store.MailboxStatus) {
	w := c.Writer()
	w.Untagged()
	w.Raw("STATUS ")
	w.String(c.mailboxName(st.Name))
	w.Raw(" (")
	for i, it := range items {
		if i > 0 {
			w.SP()
		}
		w.Raw(it + " ")
		switch it {
		case "MESSAGES":
			w.Number(uint64(st.Messages))
		case "RECENT":
			w.Number(uint64(st.Recent))
		case "UIDNEXT":
			w.Number(uint64(st.UIDNext))
		case "UIDVALIDITY":
			w.Number(uint64(st.UIDValidity))
		case "UNSEEN":
			w.Number(uint64(st.Unseen))
		case "SIZE":
			w.Number(uint64(st.Size))
		case "DELETED":
			w.Number(uint64(st.Deleted))
		case "DELETED-STORAGE": // in octets: "the sum of the RFC822.SIZE of the messages with the \Deleted flag set", rfc9208.txt:394-403
			w.Number(uint64(st.DeletedSize))
		case "APPENDLIMIT": // the same for every mailbox (the capability's value)
			w.Number(uint64(c.srv.cfg.MaxAppendLiteral))
		case "MAILBOXID":
			w.Raw("(" + c.Store().ObjectIDs().Mailbox(st.ID) + ")") // "The response item in the STATUS response contains the ObjectID", rfc8474.txt:245
		case "HIGHESTMODSEQ":
			w.Number(uint64(highestModSeq(st.HighestModSeq)))
		}
	}
	w.Raw(")")
	w.CRLF()
}
