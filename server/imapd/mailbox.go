package imapd

import (
	"errors"
	"strings"

	"decimail/server/store"
)

// CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE (RFC 3501 §6.3.3-§6.3.7).

func init() {
	register("CREATE", cmdSpec{states: authenticated, fn: cmdCreate})
	register("DELETE", cmdSpec{states: authenticated, fn: cmdDelete})
	register("RENAME", cmdSpec{states: authenticated, fn: cmdRename})
	register("SUBSCRIBE", cmdSpec{states: authenticated, fn: cmdSubscribe})
	register("UNSUBSCRIBE", cmdSpec{states: authenticated, fn: cmdUnsubscribe})
}

// specialUses are the RFC 6154 attributes a mailbox may carry, \All to \Trash (rfc6154.txt:179ff).
var specialUses = []string{`\All`, `\Archive`, `\Drafts`, `\Flagged`, `\Junk`, `\Sent`, `\Trash`}

func canonicalSpecialUse(s string) (string, bool) {
	for _, u := range specialUses {
		if strings.EqualFold(u, s) {
			return u, true
		}
	}
	return "", false
}

// newMailboxArg decodes the name of a mailbox to create: a trailing
// hierarchy delimiter is dropped (rfc3501.txt:1911-1917: "the name created is
// without the trailing hierarchy delimiter").
func (c *Conn) newMailboxArg(v Value) (string, error) {
	name, err := c.mailboxArg(v)
	if err == errNotMUTF7 {
		return "", No(CodeCannot, "a mailbox name must be modified UTF-7") // CANNOT, rfc5530.txt:249-251
	}
	if err != nil {
		return "", err
	}
	if c.rev2 && !netUnicode(name) {
		return "", No(CodeCannot, "a mailbox name must be UTF-8 in Unicode Normalization Form C") // rev2.go
	}
	if t := strings.TrimSuffix(name, store.Delim); t != name && t != "" {
		name = store.NormName(t)
	}
	return name, nil
}

// cmdCreate: CREATE mailbox [(USE (\Attr))] (RFC 3501 §6.3.3, RFC 6154 §3).
func cmdCreate(c *Conn, cmd *Command) error {
	if len(cmd.Args) < 1 || len(cmd.Args) > 2 {
		return Syntax("CREATE mailbox [(USE (attributes))]")
	}
	name, err := c.newMailboxArg(cmd.Args[0])
	if err != nil {
		return err
	}
	use, explicit, err := createUse(cmd.Args[1:])
	if err != nil {
		return err
	}
	if name == "INBOX" {
		return No(CodeAlreadyExists, "INBOX always exists") // rfc3501.txt:1900
	}
	if !explicit {
		if use, err = c.defaultSpecialUse(name); err != nil {
			return err
		}
	}
	mb, err := c.Store().CreateMailbox(c.Ctx(), c.User().ID, name, "", use)
	if st := nameRefused(err); st != nil {
		return st
	}
	switch {
	case errors.Is(err, store.ErrExists):
		return No(CodeAlreadyExists, "mailbox already exists") // ALREADYEXISTS, rfc5530.txt:287
	case errors.Is(err, store.ErrInvalid):
		return No(CodeCannot, "invalid mailbox name") // CANNOT, rfc5530.txt:249
	case err != nil:
		return err
	}
	if c.capable("OBJECTID") {
		return c.OK("MAILBOXID ("+c.Store().ObjectIDs().Mailbox(mb.ID)+")", "CREATE completed") // rfc8474.txt:183-184
	}
	return nil
}

// createUse parses the optional create-param list; only USE is known
// (rfc6154.txt:256). More than one use, or an unknown one, is refused with
// NO [USEATTR] (rfc6154.txt:292).
func createUse(args []Value) (use string, explicit bool, err error) {
	if len(args) == 0 {
		return "", false, nil
	}
	p := args[0]
	if p.Kind != List || len(p.List) != 2 || p.List[0].Kind != Atom || !strings.EqualFold(p.List[0].S, "USE") || p.List[1].Kind != List {
		return "", false, Syntax("only the USE create parameter is supported")
	}
	attrs := p.List[1].List
	for _, a := range attrs {
		if a.Kind != Atom || !strings.HasPrefix(a.S, `\`) {
			return "", false, Syntax("special-use attribute expected")
		}
	}
	switch len(attrs) {
	case 0:
		return "", true, nil
	case 1:
		u, ok := canonicalSpecialUse(attrs[0].S)
		if !ok {
			return "", false, No("USEATTR", "unsupported special-use attribute "+attrs[0].S)
		}
		return u, true, nil
	}
	return "", false, No("USEATTR", "a mailbox can have one special use only")
}

// defaultSpecialUse gives a newly created mailbox with a well-known name
// (store.DefaultFolders: Sent, Drafts, ...) that name's special use, unless
// another mailbox already has it: clients that recreate "Sent" expect it
// to be found again by RFC 6154 attribute (Dovecot does it by config).
func (c *Conn) defaultSpecialUse(name string) (string, error) {
	use := ""
	for _, f := range store.DefaultFolders {
		if f.Name == name {
			use = f.SpecialUse
		}
	}
	if use == "" {
		return "", nil
	}
	mbs, err := c.Store().Mailboxes(c.Ctx(), c.User().ID)
	if err != nil {
		return "", err
	}
	for _, m := range mbs {
		if m.SpecialUse == use {
			return "", nil
		}
	}
	return use, nil
}

// cmdDelete: DELETE mailbox (RFC 3501 §6.3.4). Deleting the selected
// mailbox is allowed; that session gets BYE at its next poll (select.go).
func cmdDelete(c *Conn, cmd *Command) error {
	if len(cmd.Args) != 1 {
		return Syntax("DELETE mailbox")
	}
	name, err := c.mailboxArg(cmd.Args[0])
	if err != nil {
		return err
	}
	err = c.Store().DeleteMailbox(c.Ctx(), c.User().ID, name)
	switch {
	case errors.Is(err, store.ErrSpecialFolder):
		return No(CodeCannot, "INBOX cannot be deleted") // rfc3501.txt:1969, CANNOT: rfc5530.txt:249
	case errors.Is(err, store.ErrNotFound):
		return No(CodeNonExistent, "no such mailbox") // NONEXISTENT, rfc5530.txt:295
	case errors.Is(err, store.ErrHasChildren):
		// RFC 3501 lets the name stay as \Noselect (rfc3501.txt:1980); the
		// store keeps no placeholders, so we refuse as IMAP4rev2 describes,
		// with its HASCHILDREN code (rfc9051.txt:1996-2003).
		return No("HASCHILDREN", "mailbox has inferiors; delete them first")
	}
	return err
}

// cmdRename: RENAME from to (RFC 3501 §6.3.5). The store renames inferiors,
// creates missing superiors, keeps the mailbox id (MAILBOXID, RFC 8474) and
// moves INBOX's messages when INBOX is renamed.
func cmdRename(c *Conn, cmd *Command) error {
	if len(cmd.Args) != 2 {
		return Syntax("RENAME from to")
	}
	from, err := c.mailboxArg(cmd.Args[0])
	if err != nil {
		return err
	}
	to, err := c.newMailboxArg(cmd.Args[1])
	if err != nil {
		return err
	}
	err = c.Store().RenameMailbox(c.Ctx(), c.User().ID, from, to)
	if st := nameRefused(err); st != nil {
		return st
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		return No(CodeNonExistent, "no such mailbox") // "rename from a mailbox name that does not exist", rfc3501.txt:2054; NONEXISTENT, rfc5530.txt:295
	case errors.Is(err, store.ErrExists):
		return No(CodeAlreadyExists, "target mailbox already exists") // "to a mailbox name that already exists", rfc3501.txt:2054; ALREADYEXISTS, rfc5530.txt:287
	case errors.Is(err, store.ErrInvalid):
		return No(CodeCannot, "cannot rename to that name") // CANNOT, rfc5530.txt:249
	}
	return err
}

// cmdSubscribe: SUBSCRIBE mailbox (RFC 3501 §6.3.6). A name without a
// mailbox may be subscribed (the server "MAY validate the mailbox argument",
// rfc3501.txt:2150; we don't, like Dovecot).
func cmdSubscribe(c *Conn, cmd *Command) error {
	if len(cmd.Args) != 1 {
		return Syntax("SUBSCRIBE mailbox")
	}
	name, err := c.mailboxArg(cmd.Args[0])
	if err != nil {
		return err
	}
	if name == "" {
		return No(CodeCannot, "empty mailbox name")
	}
	err = c.Store().Subscribe(c.Ctx(), c.User().ID, name)
	if st := nameRefused(err); st != nil {
		return st
	}
	if errors.Is(err, store.ErrInvalid) {
		return No(CodeCannot, "invalid mailbox name") // CANNOT, rfc5530.txt:249-251
	}
	return err
}

// nameRefused answers a mailbox name the store refuses for its length or
// a control character (store.NameError), or returns nil. A name over the
// length limits is NO [LIMIT]: the command is well-formed and the name
// legal IMAP, it runs into an implementation limit (rfc5530.txt:256-259),
// as a too long SEARCH does; BAD [TOOBIG] stays what the command reader
// says of lines and literals it will not read (rfc7888.txt:290). A control
// character ("Servers MAY refuse to create mailbox names containing
// Unicode CTL characters", rfc9051.txt:980-981) can never be created: NO
// [CANNOT] (rfc5530.txt:249-251). The text says why, without echoing the name.
func nameRefused(err error) *Status {
	var ne *store.NameError
	switch {
	case !errors.As(err, &ne):
		return nil
	case ne.TooLong:
		return No(CodeLimit, "mailbox name "+ne.Reason)
	case ne.Control:
		return No(CodeCannot, "mailbox name "+ne.Reason)
	}
	return nil
}

// cmdUnsubscribe: UNSUBSCRIBE mailbox (RFC 3501 §6.3.7). A name that is
// not subscribed is not an error (rfc9051.txt:2213-2217: OK "if the mailbox is
// not subscribed").
func cmdUnsubscribe(c *Conn, cmd *Command) error {
	if len(cmd.Args) != 1 {
		return Syntax("UNSUBSCRIBE mailbox")
	}
	name, err := c.mailboxArg(cmd.Args[0])
	if err != nil {
		return err
	}
	err = c.Store().Unsubscribe(c.Ctx(), c.User().ID, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}
