package imapd

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"decimail/server/store"
)

func init() {
	register("COPY", cmdSpec{states: selected, fn: func(c *Conn, cmd *Command) error { return cmdCopy(c, cmd, false, false) }})
	register("UID COPY", cmdSpec{states: selected, fn: func(c *Conn, cmd *Command) error { return cmdCopy(c, cmd, true, false) }})
	register("MOVE", cmdSpec{states: selected, ext: "MOVE", fn: func(c *Conn, cmd *Command) error { return cmdCopy(c, cmd, false, true) }})
	register("UID MOVE", cmdSpec{states: selected, ext: "MOVE", fn: func(c *Conn, cmd *Command) error { return cmdCopy(c, cmd, true, true) }})
}

// cmdCopy implements COPY, UID COPY (RFC 3501 §6.4.7, §6.4.8), and MOVE,
// UID MOVE (RFC 6851 §3), with UIDPLUS COPYUID (RFC 4315 §3).
func cmdCopy(c *Conn, cmd *Command, uid, move bool) error {
	if len(cmd.Args) != 2 {
		return Syntax(cmd.Name + " sequence-set mailbox")
	}
	uids, err := c.resolveSet(cmd.Args[0], uid)
	if err != nil {
		return err
	}
	dst, err := c.mailboxArg(cmd.Args[1])
	if err != nil {
		return err
	}
	s := c.sel
	if move && s.readOnly {
		// MOVE has the effect of COPY + STORE \Deleted + UID EXPUNGE
		// (rfc6851.txt:149-156); none of the last two is permitted in a
		// mailbox selected with EXAMINE (rfc3501.txt:1870-1872: "No changes
		// to the permanent state of the mailbox").
		return No("", "mailbox is read-only")
	}
	// The store is called even with no messages, so that a missing or
	// query destination is reported as for a non-empty set.
	// Messages this session's own STORE took out of the view are still
	// the client's at their UIDs: copied or moved by message id, a MOVE
	// taking them out of every folder as from the view (README "Own
	// changes in a view").
	held := s.view.Gone(uids, true)
	var res store.Copied
	if move {
		res, err = c.Store().MoveHeld(c.Ctx(), s.mb.Box(), uids, held, dst)
	} else {
		res, err = c.Store().CopyHeld(c.Ctx(), s.mb.Box(), uids, held, dst)
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		// rfc3501.txt:3316-3322: the client may CREATE it and retry.
		return No(CodeTryCreate, "no such mailbox")
	case errors.Is(err, store.ErrCannot):
		// A query mailbox's membership is its definition (DESIGN "Data
		// model"); rfc5530.txt: CANNOT = the operation can never succeed.
		return No(CodeCannot, "cannot copy into a query mailbox")
	case err != nil:
		return err
	}
	if dst == s.mb.Name || move {
		// New messages in the selected mailbox (COPY to itself) or the
		// moved ones leaving it: the post-command poll sends EXISTS or
		// EXPUNGE before the tagged OK.
		s.dirty = true
	}
	if move && len(res.Src) > 0 {
		// The held messages moved are expunged from this view now, not at
		// a sync point: MOVE has the effect of COPY + STORE \Deleted + UID
		// EXPUNGE for each message (rfc6851.txt:149-156).
		s.view.Release(res.Src)
	}
	if len(res.Src) == 0 {
		// rfc4315.txt:246: "nothing copied", OK without COPYUID.
		return nil
	}
	code := fmt.Sprintf("COPYUID %d %s %s", res.UIDValidity, numSet(res.Src), numSet(res.Dst))
	if move {
		// rfc6851.txt:258-263: COPYUID in an untagged OK before the
		// EXPUNGEs, which the post-command poll sends (allowed for MOVE:
		// dispatch.go noExpunge), each with the sequence number valid when
		// it is sent (rfc3501.txt:4023-4028: "immediately decremented"),
		// then the tagged OK.
		c.Untagged("OK [%s] moved", code)
		if c.qresync {
			// "If at least one message was moved, the server MUST send
			// the updated per-mailbox modification sequence using the
			// HIGHESTMODSEQ response code" (rfc6851.txt:272-289).
			return c.okSynced(cmd)
		}
		return nil
	}
	return c.OK(code, cmd.Name+" completed") // COPYUID "is returned in a tagged OK response to the COPY command", rfc4315.txt:202-203
}

// numSet renders numbers as a set in the given order, joining only runs
// that ascend by one: the source and destination sets of COPYUID correspond
// element by element and must keep their order (rfc4315.txt:192-195: "the
// destination UID set corresponds to the source UID set and is in the same
// order").
func numSet(uids []uint32) string {
	var b strings.Builder
	for i := 0; i < len(uids); {
		j := i
		for j+1 < len(uids) && uids[j+1] == uids[j]+1 {
			j++
		}
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatUint(uint64(uids[i]), 10))
		if j > i {
			b.WriteByte(':')
			b.WriteString(strconv.FormatUint(uint64(uids[j]), 10))
		}
		i = j + 1
	}
	return b.String()
}
