package imapd

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"decimail/server/store"
)

// APPEND (RFC 3501 §6.3.11, rfc3501.txt:2527) with APPENDUID (RFC 4315 §3).

func init() {
	register("APPEND", cmdSpec{states: authenticated, fn: cmdAppend})
}

// appendMsg is one message of an APPEND: its options and either its
// literal or its CATENATE parts.
type appendMsg struct {
	opts store.DeliverOptions
	data Value   // the literal (or literal8)
	cat  []Value // CATENATE's cat-parts, when data is not set
}

// cmdAppend: APPEND mailbox 1*([SP flag-list] [SP date-time] SP append-data)
// (rfc3501.txt:4547; MULTIAPPEND rfc3502.txt:95-101, 1*append-message; CATENATE
// rfc4469.txt:251). The reader has already read every literal (LITERAL+
// too), each within Limits.MaxAppend and all of them within the command's
// limit (wire_read.go); large ones are in spool files.
func cmdAppend(c *Conn, cmd *Command) error {
	args := cmd.Args
	if len(args) < 2 {
		return Syntax("APPEND mailbox [(flags)] [date-time] literal ...")
	}
	name, err := c.mailboxArg(args[0])
	if err != nil {
		return err
	}
	msgs, err := c.parseAppend(name, args[1:])
	if err != nil {
		return err
	}
	// Every message is checked and assembled before anything is stored:
	// "no partial appending is permitted" (rfc3502.txt:143-146).
	ins := make([]*store.Incoming, len(msgs))
	defer func() {
		for _, in := range ins {
			if in != nil {
				in.Close()
			}
		}
	}()
	var total int64
	for i, m := range msgs {
		if ins[i], err = c.appendData(m); err != nil {
			return err
		}
		if ins[i].Size() == 0 {
			// A message of zero octets is refused ("A zero-length message
			// literal argument is an error, and MUST return a NO",
			// rfc3502.txt:140-141); it cancels a MULTIAPPEND.
			return No("", "can't save a zero byte message")
		}
		// The messages go to the store together, each in memory once: their
		// sum has the bound of the command's literals (wire_read.go), which
		// catenated messages would otherwise escape.
		if total += ins[i].Size(); total > c.srv.cfg.MaxAppendLiteral+c.srv.cfg.MaxLiteral {
			return No(CodeTooBig, "messages too big together") // TOOBIG, rfc4469.txt:231-240
		}
	}
	// Appended to the folder this session has selected read-write: its
	// EXISTS goes to this session first, which takes \Recent
	// (store.DeliverOptions.ClaimRecent).
	claim := c.sel != nil && !c.sel.readOnly && !c.sel.mb.IsQuery() && store.NormName(name) == store.NormName(c.sel.mb.Name)
	for i := range msgs {
		msgs[i].opts.ClaimRecent = claim
	}
	var ds []store.Delivered
	if len(msgs) == 1 {
		var res store.DeliveryResult
		res, err = c.Store().DeliverIncoming(c.Ctx(), ins[0], store.Delivery{Copies: []store.Copy{{UserID: c.User().ID, DeliverOptions: msgs[0].opts}}})
		ds = res.Copies
	} else {
		opts := make([]store.DeliverOptions, len(msgs))
		for i, m := range msgs {
			opts[i] = m.opts
		}
		// One transaction: "no partial appending is permitted" (rfc3502.txt:143-146).
		ds, err = c.Store().DeliverAll(c.Ctx(), c.User().ID, ins, opts)
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		return No(CodeTryCreate, "no such mailbox") // TRYCREATE, rfc3501.txt:2571
	case errors.Is(err, store.ErrCannot):
		return No(CodeCannot, "cannot append to a query mailbox") // CANNOT, rfc5530.txt:249
	case err != nil:
		return err
	}
	if c.sel != nil && c.sel.mb.ID == ds[0].MailboxID {
		// EXISTS goes out before the tagged OK (rfc3501.txt:2583).
		c.sel.dirty = true
		for _, d := range ds {
			if claim && !d.Existing {
				c.sel.view.MarkRecent(d.UID)
			}
		}
	}
	uids := make([]uint32, len(ds))
	for i, d := range ds {
		uids[i] = d.UID
	}
	// A claimed Sent copy: its UID, as that is the message appended. A
	// MULTIAPPEND's UIDs as a set, in the order of the messages
	// (rfc4315.txt:155-160; append-uid =/ uid-set, rfc4315.txt:307-313).
	return c.OK(fmt.Sprintf("APPENDUID %d %s", ds[0].UIDValidity, numSet(uids)), "APPEND completed")
}

// parseAppend splits the arguments after the mailbox into messages.
func (c *Conn) parseAppend(name string, args []Value) ([]appendMsg, error) {
	var msgs []appendMsg
	for i := 0; i < len(args); {
		var m appendMsg
		m.opts.Mailbox = name
		// A client's copy of a message the submission server already filed
		// in Sent is answered with that copy (store/sentdedup.go).
		m.opts.SentWindow = max(c.cfg.SentDedupWindow, 0)
		var err error
		if args[i].Kind == List {
			if m.opts.Flags, err = appendFlags(args[i]); err != nil {
				return nil, err
			}
			i++
		}
		if i < len(args) && args[i].Kind == String {
			if m.opts.InternalDate, err = parseDateTime(args[i].S); err != nil {
				return nil, err
			}
			i++
		}
		switch {
		case i == len(args):
			return nil, Syntax("APPEND: message literal expected")
		case args[i].Kind == Literal || args[i].Kind == Literal8 && c.capAdvertised("BINARY"): // literal8, RFC 3516 §4.4
			m.data = args[i]
			i++
		case args[i].Kind == Atom && strings.EqualFold(args[i].S, "CATENATE") && c.capAdvertised("CATENATE") &&
			i+1 < len(args) && args[i+1].Kind == List && len(args[i+1].List) > 0:
			m.cat = args[i+1].List
			i += 2
		default:
			return nil, Syntax("the message must be a literal")
		}
		msgs = append(msgs, m)
		if len(msgs) > 1 && !c.capAdvertised("MULTIAPPEND") {
			return nil, Syntax("one message per APPEND")
		}
	}
	return msgs, nil
}

// appendData returns the message m stands for: its literal, or its
// CATENATE parts joined (catenate.go).
func (c *Conn) appendData(m appendMsg) (*store.Incoming, error) {
	if m.cat != nil {
		return c.catenate(m.cat)
	}
	if m.data.File != nil {
		// A large message was spooled to disk as it arrived (wire_read.go):
		// it is read once, by the delivery.
		return m.data.File, nil
	}
	return store.IncomingBytes([]byte(m.data.S)), nil
}

// appendFlags parses the flag list; \Recent is ignored, other unknown
// system flags are BAD (flag-list, rfc3501.txt:4783).
func appendFlags(v Value) (store.Flags, error) {
	names := make([]string, 0, len(v.List))
	for _, f := range v.List {
		if f.Kind != Atom || f.S == "" || f.S == `\*` {
			return store.Flags{}, Syntax("flag expected")
		}
		names = append(names, f.S)
	}
	flags, ok := store.ParseFlags(names)
	if !ok {
		return store.Flags{}, Bad("", "unknown system flag")
	}
	return flags, nil
}

// parseDateTime parses date-time: "dd-Mon-yyyy hh:mm:ss +zzzz", the day
// two digits or space-padded (date-day-fixed, rfc3501.txt:4695; date-time, 4713).
func parseDateTime(s string) (time.Time, error) {
	bad := Bad("", "invalid date-time "+fmt.Sprintf("%q", s))
	if len(s) != 26 || s[2] != '-' || s[6] != '-' || s[11] != ' ' || s[20] != ' ' ||
		(s[0] != ' ' && (s[0] < '0' || s[0] > '9')) || (s[21] != '+' && s[21] != '-') {
		return time.Time{}, bad
	}
	// Month names are case-insensitive in the grammar; Go accepts any case.
	t, err := time.Parse("_2-Jan-2006 15:04:05 -0700", strings.TrimPrefix(s, " "))
	if err != nil {
		return time.Time{}, bad
	}
	return t, nil
}
