package store

import "sync"

// statusCache keeps the STATUS numbers of the mailboxes this process read
// last (issue 15: a client that sends STATUS for each of its 200 mailboxes
// one at a time, at start and then every few minutes, paid a query each,
// 3× Dovecot's read of its index files). An entry is used only while the
// notifier says nothing of its mailbox or user may have changed since it
// was read (Notifier.Fresh): every change of the numbers is signalled —
// memberships, flags and \Recent claims NOTIFY from their triggers, a
// mailbox deleted, renamed or redefined from schema 0013's, and a change
// through this process's store at the user's gate (Touch) or at a claim
// (mark) — and while the listener is down nothing is used.
type statusCache struct {
	mu sync.Mutex
	m  map[statusKey]statusEntry
}

type statusKey struct {
	userID int64
	name   string // NormName
}

type statusEntry struct {
	st  MailboxStatus
	gen uint64 // Notifier.Gen before the read
}

// maxStatuses bounds the cache: past it, it starts afresh.
const maxStatuses = 100_000

func (c *statusCache) get(n *Notifier, k statusKey) (MailboxStatus, bool) {
	c.mu.Lock()
	e, ok := c.m[k]
	c.mu.Unlock()
	if !ok || !n.Fresh(k.userID, e.st.ID, e.gen) {
		return MailboxStatus{}, false
	}
	return e.st, true
}

func (c *statusCache) put(k statusKey, st MailboxStatus, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxStatuses {
		c.m = map[statusKey]statusEntry{}
	}
	c.m[k] = statusEntry{st, gen}
}
