package imapd

func init() {
	register("EXPUNGE", cmdSpec{states: selected, fn: func(c *Conn, cmd *Command) error { return cmdExpunge(c, cmd, false) }})
	register("UID EXPUNGE", cmdSpec{states: selected, ext: "UIDPLUS", fn: func(c *Conn, cmd *Command) error { return cmdExpunge(c, cmd, true) }})
}

// cmdExpunge implements EXPUNGE (RFC 3501 §6.4.3) and UID EXPUNGE (RFC 4315
// §2.1). The store removes the messages; the post-command poll then sends
// "* n EXPUNGE" for each, with the sequence number valid at the moment it
// is sent (rfc3501.txt:4023-4028: "immediately decremented"), before the
// tagged OK ("Before returning an OK to the client", rfc3501.txt:2707-2709).
func cmdExpunge(c *Conn, cmd *Command, uid bool) error {
	var uids []uint32 // nil: every \Deleted message
	if uid {
		if len(cmd.Args) != 1 {
			return Syntax("UID EXPUNGE sequence-set")
		}
		var err error
		if uids, err = c.resolveSet(cmd.Args[0], true); err != nil {
			return err
		}
	} else if err := noArgs(cmd); err != nil {
		return err
	}
	s := c.sel
	// A sync point: the messages held since this session's own STORE took
	// them out of the view are announced with the expunged ones
	// (select.go syncPoint). They are not expunged from the store: they
	// are no longer in this mailbox.
	s.view.Release(nil)
	if s.readOnly {
		// rfc3501.txt:2702: "NO - expunge failure: can't expunge (e.g.,
		// permission denied)"; EXAMINE permits no change (rfc3501.txt:1870: "No
		// changes to the permanent state").
		return No("", "mailbox is read-only")
	}
	if uid && len(uids) == 0 {
		// No known UID in the set: nothing to remove (rfc4315.txt:85-90).
		// (nil would mean "all \Deleted" to the store.)
		return nil
	}
	gone, err := c.Store().Expunge(c.Ctx(), s.mb.Box(), uids)
	if err != nil {
		return err
	}
	s.dirty = true
	if !c.qresync || len(gone) == 0 {
		return nil
	}
	// With QRESYNC, the tagged OK carries the mailbox's new mod-sequence:
	// "the server MUST send the updated per-mailbox modification sequence
	// using the HIGHESTMODSEQ response code" (rfc7162.txt:1799-1804,
	// 1914-1919).
	return c.okSynced(cmd)
}
