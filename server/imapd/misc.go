package imapd

import (
	"crypto/tls"
	"slices"
	"strconv"
	"strings"
	"time"
)

func init() {
	register("CAPABILITY", cmdSpec{states: anyState, fn: cmdCapability})
	register("NOOP", cmdSpec{states: anyState, fn: cmdNoop})
	register("LOGOUT", cmdSpec{states: anyState, fn: cmdLogout})
	register("ID", cmdSpec{states: anyState, ext: "ID", fn: cmdID})
	register("ENABLE", cmdSpec{states: authenticatedOnly, ext: "ENABLE", fn: cmdEnable})
	register("NAMESPACE", cmdSpec{states: authenticated, ext: "NAMESPACE", fn: cmdNamespace})
	register("STARTTLS", cmdSpec{states: notAuthenticated, ext: "STARTTLS", fn: cmdStartTLS})
}

// extensions are advertised in this order unless disabled. Those that
// come with a command of their own are advertised only once that command
// is registered, so the list never promises an unimplemented command.
var extensions = []struct{ name, command string }{
	{"LITERAL+", ""}, {"SASL-IR", ""}, {"IDLE", "IDLE"}, {"UIDPLUS", ""},
	{"MOVE", "MOVE"}, {"ENABLE", "ENABLE"}, {"UNSELECT", "UNSELECT"},
	{"NAMESPACE", "NAMESPACE"}, {"ID", "ID"}, {"SPECIAL-USE", ""}, {"CREATE-SPECIAL-USE", ""}, {"STATUS=SIZE", ""},
	{"LIST-EXTENDED", ""}, {"LIST-STATUS", ""}, {"CHILDREN", ""}, {"OBJECTID", ""},
	{"ESEARCH", ""}, {"SEARCHRES", ""}, {"CONDSTORE", ""}, {"QRESYNC", ""}, {"COMPRESS=DEFLATE", "COMPRESS"},
	{"SORT", "SORT"}, {"SORT=DISPLAY", "SORT"}, {"THREAD=ORDEREDSUBJECT", "THREAD"}, {"THREAD=REFERENCES", "THREAD"},
	{"APPENDLIMIT", ""}, {"MULTIAPPEND", ""}, {"CATENATE", ""}, {"BINARY", ""}, {"NOTIFY", "NOTIFY"},
	{"QUOTA", "GETQUOTA"}, {"QUOTA=RES-STORAGE", "GETQUOTA"}, {"QUOTA=RES-MESSAGE", "GETQUOTA"},
	{"SAVEDATE", ""}, {"PREVIEW", ""}, {"ESORT", "SORT"}, {"CONTEXT=SEARCH", ""}, {"CONTEXT=SORT", "SORT"},
}

// capabilities is the one place that decides what this connection
// advertises (CAPABILITY response, rfc3501.txt:3775ff).
func (c *Conn) capabilities() []string {
	caps := []string{"IMAP4rev1"}
	if c.capable("IMAP4rev2") {
		caps = append(caps, "IMAP4rev2") // both, rfc9051.txt:7863 (rev2.go)
	}
	for _, e := range extensions {
		if !c.capable(e.name) {
			continue
		}
		if _, ok := commands[e.command]; e.command != "" && !ok {
			continue
		}
		if e.name == "APPENDLIMIT" {
			// One limit for every mailbox: advertised with its value (RFC
			// 7889 §3), which STATUS APPENDLIMIT repeats per mailbox.
			caps = append(caps, "APPENDLIMIT="+strconv.FormatInt(c.srv.cfg.MaxAppendLiteral, 10))
			continue
		}
		caps = append(caps, e.name)
	}
	if c.state != NotAuthenticated {
		return caps
	}
	if c.capable("STARTTLS") {
		caps = append(caps, "STARTTLS")
	}
	// SCRAM with or without TLS: see scram.go.
	if c.scramPlusOffered() {
		caps = append(caps, "AUTH=SCRAM-SHA-256-PLUS")
	}
	if c.scramOffered() {
		caps = append(caps, "AUTH=SCRAM-SHA-256")
	}
	if !c.plaintextOK() {
		return append(caps, "LOGINDISABLED") // rfc3501.txt:3792
	}
	if !c.disabled["AUTH=PLAIN"] {
		caps = append(caps, "AUTH=PLAIN")
	}
	return caps
}

// capable reports whether ext is enabled for this connection now.
func (c *Conn) capable(ext string) bool {
	if c.disabled[ext] {
		return false
	}
	switch ext {
	case "IMAP4rev2":
		return c.rev2Capable()
	case "STARTTLS":
		return !c.isTLS && c.srv.cfg.TLS != nil && c.state == NotAuthenticated
	case "SEARCHRES":
		// SAVE is a result option of the extended SEARCH: no SEARCHRES
		// without ESEARCH's RETURN (rfc9051.txt:6970-6974).
		return !c.disabled["ESEARCH"]
	case "THREAD":
		// The THREAD command: on while one of its algorithms is
		// (sort.go, thread.go; RFC 5256 capabilities THREAD=<alg>).
		return c.capable("THREAD=ORDEREDSUBJECT") || c.capable("THREAD=REFERENCES")
	case "THREAD=ORDEREDSUBJECT", "THREAD=REFERENCES":
		return !c.disabled["THREAD"]
	case "QUOTA=RES-STORAGE", "QUOTA=RES-MESSAGE":
		return !c.disabled["QUOTA"] // switched off with QUOTA
	case "SORT=DISPLAY": // SORT's keys: off with SORT
		return !c.disabled["SORT"]
	case "ESORT", "CONTEXT=SORT":
		// SORT's return options: no ESORT without SORT, no CONTEXT=SORT
		// without ESORT's syntax (rfc5267.txt:251-254).
		return !c.disabled["SORT"] && (ext == "ESORT" || c.capable("ESORT"))
	case "CONTEXT=SEARCH":
		return !c.disabled["ESEARCH"] // its options extend ESEARCH's RETURN
	case "CANCELUPDATE":
		// The command of UPDATE (RFC 5267 §4.3.5), with either CONTEXT.
		return c.capable("CONTEXT=SEARCH") || c.capable("CONTEXT=SORT")
	case "QRESYNC":
		// "the presence of the "QRESYNC" capability implies support for
		// the CONDSTORE IMAP extension" (rfc7162.txt:1386-1409): off with it.
		return !c.disabled["CONDSTORE"]
	}
	return true
}

func (c *Conn) capabilityString() string { return strings.Join(c.capabilities(), " ") }

func noArgs(cmd *Command) error {
	if len(cmd.Args) != 0 {
		return Syntax(cmd.Name + " takes no arguments")
	}
	return nil
}

// CAPABILITY, rfc3501.txt:1300.
func cmdCapability(c *Conn, cmd *Command) error {
	if err := noArgs(cmd); err != nil {
		return err
	}
	c.Untagged("CAPABILITY %s", c.capabilityString())
	return nil
}

// NOOP, rfc3501.txt:1363: updates come from the core's poll.
// NOOP always reads the store, so updates from other sessions are reported
// even when their notification has not arrived yet (rfc3501.txt:1374-1378: "a
// periodic poll for new messages").
//
// NOOP is not a sync point for the messages this session's own commands
// took out of a view (select.go syncPoint): clients poll with it between
// their own commands (Thunderbird after every IDLE).
func cmdNoop(c *Conn, cmd *Command) error {
	if err := noArgs(cmd); err != nil {
		return err
	}
	return c.pollSelected(true, true)
}

// LOGOUT, rfc3501.txt:1407: BYE, then the tagged OK, then close.
func cmdLogout(c *Conn, cmd *Command) error {
	if err := noArgs(cmd); err != nil {
		return err
	}
	c.Untagged("BYE Decimail logging out")
	c.Unselect()
	c.state = Logout
	return nil
}

// ID, rfc2971.txt §3.1: "ID" SP ("(" field-value pairs ")" / NIL).
func cmdID(c *Conn, cmd *Command) error {
	if len(cmd.Args) != 1 {
		return Syntax("ID takes one argument")
	}
	arg := cmd.Args[0]
	if !arg.IsNIL() {
		if arg.Kind != List || len(arg.List)%2 != 0 || len(arg.List) > 60 {
			return Syntax("ID takes NIL or a list of up to 30 field-value pairs")
		}
		var kv []any
		for i := 0; i < len(arg.List); i += 2 {
			k, v := arg.List[i], arg.List[i+1]
			if !k.IsString() || len(k.S) > 30 || !(v.IsString() || v.IsNIL()) || len(v.S) > 1024 {
				return Syntax("bad ID field") // rfc2971.txt: fields <= 30 octets, values <= 1024
			}
			val := v.S
			if v.IsNIL() {
				val = ""
			}
			kv = append(kv, "id_"+strings.ToLower(k.S), val)
		}
		c.log.Info("client id", kv...)
	}
	w := c.w
	w.Lock()
	w.Untagged()
	w.Raw("ID (")
	w.String("name")
	w.SP()
	w.String("Decimail")
	w.SP()
	w.String("version")
	w.SP()
	w.String(c.srv.cfg.Version)
	w.Raw(")")
	w.CRLF()
	w.Unlock()
	return nil
}

// ENABLE, rfc5161.txt §3.1: unknown capabilities are ignored; the ENABLED
// response lists only what this command newly enabled. CONDSTORE and
// QRESYNC can be enabled (rfc7162.txt:384-386, RFC 7162 §3.2.3); QRESYNC
// enables CONDSTORE too: a server "is REQUIRED to support "ENABLE QRESYNC"
// and "ENABLE QRESYNC CONDSTORE" (which are "CONDSTORE enabling commands",
// see Section 3.1, and have identical results)" (rfc7162.txt:1386-1409).
// IMAP4rev2 can be enabled too (rev2.go). ENABLE is valid only in the
// authenticated state, so no HIGHESTMODSEQ is due.
func cmdEnable(c *Conn, cmd *Command) error {
	if len(cmd.Args) == 0 {
		return Syntax("ENABLE needs a capability")
	}
	var enabled []string
	for _, a := range cmd.Args {
		if a.Kind != Atom {
			return Syntax("ENABLE takes atoms")
		}
		ext := strings.ToUpper(a.S)
		if ext == "IMAP4REV2" {
			if c.enableRev2() {
				enabled = append(enabled, "IMAP4rev2") // rev2.go
			}
			continue
		}
		if ext != "CONDSTORE" && ext != "QRESYNC" || !c.capable(ext) || slices.Contains(enabled, ext) {
			continue
		}
		// Listed even when an implicit enabling command came first:
		// it is enabled, as the client asked (so does Dovecot).
		c.condstore = true
		c.qresync = c.qresync || ext == "QRESYNC"
		enabled = append(enabled, ext)
	}
	c.Untagged("%s", strings.TrimSpace("ENABLED "+strings.Join(enabled, " ")))
	return nil
}

// NAMESPACE, rfc2342.txt §5: one personal namespace, "/" hierarchy.
func cmdNamespace(c *Conn, cmd *Command) error {
	if err := noArgs(cmd); err != nil {
		return err
	}
	c.Untagged(`NAMESPACE (("" "/")) NIL NIL`)
	return nil
}

// STARTTLS, rfc3501.txt:1468. The handshake starts after the tagged OK
// has been flushed; anything the client pipelined after STARTTLS is
// discarded (rfc3501.txt:1478-1480 forbids it, the client "MUST NOT issue
// further commands"; plaintext command injection).
func cmdStartTLS(c *Conn, cmd *Command) error {
	if err := noArgs(cmd); err != nil {
		return err
	}
	c.afterReply = func() error {
		if n := c.br.Buffered(); n > 0 {
			c.log.Warn("discarding data pipelined after STARTTLS", "bytes", n)
		}
		tc := tls.Server(c.nc, c.srv.cfg.TLS)
		tc.SetDeadline(time.Now().Add(c.srv.cfg.PreAuthTimeout))
		if err := tc.HandshakeContext(c.ctx); err != nil {
			return err
		}
		tc.SetDeadline(time.Time{})
		c.isTLS = true
		c.setStream(tc)
		return nil
	}
	return c.OK("", "Begin TLS negotiation now")
}
