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

// cmdAppend: APPEND mailbox [flag-list] [date-time] literal
// (rfc3501.txt:4547). The reader has already read the literal (LITERAL+
// too) within Limits.MaxAppend.
func cmdAppend(c *Conn, cmd *Command) error {
	args := cmd.Args
	if len(args) < 2 || len(args) > 4 {
		return Syntax("APPEND mailbox [(flags)] [date-time] literal")
	}
	name, err := mailboxArg(args[0])
	if err != nil {
		return err
	}
	msg := args[len(args)-1]
	if msg.Kind != Literal && !(msg.Kind == Literal8 && c.capAdvertised("BINARY")) {
		return Syntax("the message must be a literal")
	}
	var opts store.DeliverOptions
	opts.Mailbox = name
	// A client's copy of a message the submission server already filed
	// in Sent is answered with that copy (store/sentdedup.go).
	opts.SentWindow = max(c.cfg.SentDedupWindow, 0)
	i, last := 1, len(args)-1
	if i < last && args[i].Kind == List {
		if opts.Flags, err = appendFlags(args[i]); err != nil {
			return err
		}
		i++
	}
	if i < last && args[i].Kind == String {
		if opts.InternalDate, err = parseDateTime(args[i].S); err != nil {
			return err
		}
		i++
	}
	if i != last {
		return Syntax("APPEND mailbox [(flags)] [date-time] literal")
	}
	if msg.File == nil && len(msg.S) == 0 {
		// A message of zero octets is refused (rfc3501.txt:2537 "error
		// in ... message text"), like Dovecot.
		return No("", "can't save a zero byte message")
	}
	// A large message was spooled to disk as it arrived (wire_read.go):
	// it is read once, by the delivery.
	in := msg.File
	if in == nil {
		in = store.IncomingBytes([]byte(msg.S))
	}
	var d store.Delivered
	res, err := c.Store().DeliverIncoming(c.Ctx(), in, store.Delivery{Copies: []store.Copy{{UserID: c.User().ID, DeliverOptions: opts}}})
	if err == nil {
		d = res.Copies[0]
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		return No(CodeTryCreate, "no such mailbox") // TRYCREATE, rfc3501.txt:2571
	case errors.Is(err, store.ErrCannot):
		return No(CodeCannot, "cannot append to a query mailbox") // CANNOT, rfc5530.txt:249
	case err != nil:
		return err
	}
	if c.sel != nil && c.sel.mb.ID == d.MailboxID {
		// EXISTS goes out before the tagged OK (rfc3501.txt:2583).
		c.sel.dirty = true
	}
	// A claimed Sent copy: its UID, as that is the message appended.
	return c.OK(fmt.Sprintf("APPENDUID %d %d", d.UIDValidity, d.UID), "APPEND completed") // APPENDUID "Followed by the UIDVALIDITY of the destination mailbox and the UID", rfc4315.txt:148-153
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
