package imapd

import (
	"strings"
	"time"
)

func init() {
	register("IDLE", cmdSpec{states: authenticated, ext: "IDLE", fn: cmdIdle, readsClient: true})
}

// idlePoll is how often an idling session reads the store without a
// notification, so a lost notification only delays (DESIGN "Notifications").
var idlePoll = 30 * time.Second

// cmdIdle implements IDLE (RFC 2177): updates are sent as they happen until
// the client sends DONE ("terminated by the receipt of a DONE continuation",
// rfc2177.txt:85). The session holds no database
// connection while it waits: it sleeps on its notifier subscription.
func cmdIdle(c *Conn, cmd *Command) error {
	if err := noArgs(cmd); err != nil {
		return err
	}
	if err := c.Continue("idling"); err != nil {
		return err
	}
	type line struct {
		s   string
		err error
	}
	// The reader goroutine must be gone when IDLE returns, or it would read
	// the connection (and the session's state) alongside the next command:
	// an early return wakes it with a past deadline and waits for it.
	if err := c.setReadDeadline(); err != nil {
		return c.lineFailed(err)
	}
	done := make(chan line, 1)
	go func() {
		s, err := c.r.ReadLine()
		done <- line{s, err}
	}()
	finished := false
	defer func() {
		if !finished {
			c.nc.SetReadDeadline(time.Now())
			<-done
		}
	}()
	tick := time.NewTicker(idlePoll)
	defer tick.Stop()
	// Under NOTIFY, IDLE sends "exactly the same events" (rfc5465.txt:406-
	// 408): the selected mailbox's only if SELECTED asked for them, and
	// those of the other mailboxes watched.
	var notify, others <-chan struct{}
	if c.notify != nil {
		others = c.notify.ch
	}
	if c.sel != nil && (c.notify == nil || c.notify.selected != nil) {
		notify = c.sel.sub.C
		// Anything that happened between the last poll and now.
		if err := c.idleUpdate(); err != nil {
			return err
		}
	}
	for {
		select {
		case l := <-done:
			finished = true
			if l.err != nil {
				return c.lineFailed(l.err) // EOF: no reply, no SERVERBUG
			}
			if !strings.EqualFold(strings.TrimSpace(l.s), "DONE") {
				return Bad("", "expected DONE")
			}
			return nil
		case <-notify:
			c.sel.stale = true // the signal is consumed here, not by syncSelected
			if err := c.idleUpdate(); err != nil {
				return err
			}
		case <-others:
			if err := c.notifyOthers(); err != nil {
				return err
			}
			if err := c.Flush(); err != nil {
				return err
			}
		case <-tick.C:
			if notify != nil {
				if err := c.idleUpdate(); err != nil {
					return err
				}
			}
			if others != nil {
				if err := c.notifyOthers(); err != nil {
					return err
				}
				if err := c.Flush(); err != nil {
					return err
				}
			}
		}
	}
}

// idleUpdate sends what changed. IDLE is not a sync point for the messages
// this session's own commands took out of a view (select.go syncPoint):
// Thunderbird idles after every command, so it would lose the message it
// just marked read before its user can act on it.
func (c *Conn) idleUpdate() error {
	if err := c.pollSelected(true, true); err != nil {
		return err
	}
	return c.Flush()
}
