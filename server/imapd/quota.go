package imapd

import (
	"decimail/server/store"
)

// QUOTA (RFC 9208): one quota root per user, named "", holding every
// mailbox of the user; resources STORAGE and MESSAGE. Limits are set by
// the administrator (`decimail user set NAME quota_storage KIB`), so
// SETQUOTA answers NO and QUOTASET is not advertised (rfc9208.txt:327-330).
// Over a limit, APPEND and COPY answer NO [OVERQUOTA] (dispatch.go,
// rfc9208.txt:474-476).

func init() {
	register("GETQUOTA", cmdSpec{states: authenticated, ext: "QUOTA", fn: cmdGetQuota})
	register("GETQUOTAROOT", cmdSpec{states: authenticated, ext: "QUOTA", fn: cmdGetQuotaRoot})
	register("SETQUOTA", cmdSpec{states: authenticated, ext: "QUOTA", fn: cmdSetQuota})
}

// cmdGetQuota: GETQUOTA quota-root-name (rfc9208.txt:245-276).
func cmdGetQuota(c *Conn, cmd *Command) error {
	root, ok := oneAString(cmd)
	if !ok {
		return Syntax("GETQUOTA quota-root")
	}
	if root != "" {
		return No(CodeNonExistent, "no such quota root") // "no such quota root", rfc9208.txt:253
	}
	return c.writeQuota()
}

// cmdGetQuotaRoot: GETQUOTAROOT mailbox (rfc9208.txt:278-314); the
// mailbox "doesn't have to reference an existing mailbox"
// (rfc9208.txt:295-297): every name is under "".
func cmdGetQuotaRoot(c *Conn, cmd *Command) error {
	name, ok := oneAString(cmd)
	if !ok {
		return Syntax("GETQUOTAROOT mailbox")
	}
	if _, err := c.mailboxArg(cmd.Args[0]); err != nil {
		return err
	}
	w := c.Writer()
	w.Lock()
	w.Untagged()
	w.Raw("QUOTAROOT ")
	w.AString(name) // the name as the client sent it (modified UTF-7)
	w.Raw(` ""`)
	w.CRLF()
	w.Unlock()
	return c.writeQuota()
}

// cmdSetQuota: limits are the administrator's (rfc9208.txt:324 "NO -
// setquota error: can't set that data").
func cmdSetQuota(c *Conn, cmd *Command) error {
	if len(cmd.Args) != 2 || cmd.Args[1].Kind != List {
		return Syntax("SETQUOTA quota-root (resource limit ...)")
	}
	return No(CodeNoPerm, "quota limits are set by the administrator")
}

func oneAString(cmd *Command) (string, bool) {
	if len(cmd.Args) != 1 {
		return "", false
	}
	return cmd.Args[0].AString()
}

// writeQuota writes `* QUOTA "" (...)` with the resources that have a
// limit; "Resources not named in the list are not limited"
// (rfc9208.txt:440-442). STORAGE is in units of 1024 octets
// (rfc9208.txt:543), rounded up so that usage within the limit never
// shows above it, nor a refused message under it.
func (c *Conn) writeQuota() error {
	q, err := c.Store().Quota(c.Ctx(), c.User().ID)
	if err != nil {
		return err
	}
	var list []uint64
	var names []string
	if q.StorageKiB >= 0 {
		names, list = append(names, "STORAGE"), append(list, uint64((q.Bytes+1023)/1024), uint64(q.StorageKiB))
	}
	if q.MaxMessages >= 0 {
		names, list = append(names, "MESSAGE"), append(list, uint64(q.Messages), uint64(q.MaxMessages))
	}
	w := c.Writer()
	w.Lock()
	defer w.Unlock()
	w.Untagged()
	w.Raw(`QUOTA "" (`)
	for i, n := range names {
		if i > 0 {
			w.SP()
		}
		w.Raw(n + " ")
		w.Number(list[2*i])
		w.SP()
		w.Number(list[2*i+1])
	}
	w.Raw(")")
	w.CRLF()
	return nil
}

// quotaStatus fills DELETED and DELETED-STORAGE when items ask for them.
func (c *Conn) quotaStatus(items []string, sts ...*store.MailboxStatus) error {
	for _, it := range items {
		if it == "DELETED" || it == "DELETED-STORAGE" {
			return c.Store().AddDeleted(c.Ctx(), c.User().ID, sts...)
		}
	}
	return nil
}
