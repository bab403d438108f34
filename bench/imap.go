package bench

import (
	"bytes"
	"fmt"
	"time"

	"decimail/internal/imaptest"
)

// The benchmarks speak IMAP through internal/imaptest's client, on its raw
// path: responses are framed by their literals into one reused buffer and
// never tokenized, so what a measurement times is the server. The same
// client runs against Decimail and Dovecot. Deadlines are the caller's
// (Client.Timeout 0): a line sets one for its whole run.

// Login dials, logs in and makes sure the capabilities are known.
func Login(addr, user, pass string) (*imaptest.Client, error) {
	c, err := imaptest.Dial(addr)
	if err != nil {
		return nil, err
	}
	c.Timeout = 0
	if err := c.Stream("LOGIN "+imaptest.Quote(user)+" "+imaptest.Quote(pass), nil); err != nil {
		c.Close()
		return nil, err
	}
	if !c.Caps["LITERAL+"] {
		if err := c.Stream("CAPABILITY", nil); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

// count runs cmd and returns the number of untagged responses that start
// with "* " and contain word (e.g. "FETCH") in their first 40 octets.
func count(c *imaptest.Client, cmd, word string) (int, error) {
	n := 0
	w := []byte(word)
	err := c.Stream(cmd, func(r *imaptest.Raw) {
		if b := r.Bytes; bytes.HasPrefix(b, []byte("* ")) && bytes.Contains(b[:min(len(b), 40)], w) {
			n++
		}
	})
	return n, err
}

// searchCount runs a (UID) SEARCH and returns the number of hits.
func searchCount(c *imaptest.Client, cmd string) (int, error) {
	n := 0
	err := c.Stream(cmd, func(r *imaptest.Raw) {
		if bytes.HasPrefix(r.Bytes, []byte("* SEARCH")) {
			n += len(bytes.Fields(r.Bytes)) - 2
		}
	})
	return n, err
}

// appendMsgs stores msgs in mailbox with their flags and dates, pipelined
// in windows of window commands when the server offers LITERAL+ (one round
// trip per message otherwise). With MULTIAPPEND (RFC 3502) as well, each
// window is one APPEND command: Dovecot then commits (and fsyncs) once per
// window instead of once per message, which is what a migration tool does.
func appendMsgs(c *imaptest.Client, mailbox string, msgs []Message, window int) error {
	if window < 1 {
		window = 1
	}
	plus := c.Caps["LITERAL+"]
	if plus && c.Caps["MULTIAPPEND"] {
		return multiAppend(c, mailbox, msgs, window)
	}
	w := c.Buffer()
	var tags []string
	flushWait := func() error {
		if err := c.Flush(); err != nil {
			return err
		}
		for _, t := range tags {
			if err := c.WaitRaw(t, nil); err != nil {
				return fmt.Errorf("append: %w", err)
			}
		}
		tags = tags[:0]
		return nil
	}
	for i := range msgs {
		m := &msgs[i]
		tag := c.NextTag()
		date := m.Date.Format("02-Jan-2006 15:04:05 -0700")
		if plus {
			fmt.Fprintf(w, "%s APPEND %s %s %q {%d+}\r\n", tag, imaptest.Quote(mailbox), m.FlagList(), date, len(m.Raw))
			w.Write(m.Raw)
			w.WriteString("\r\n")
			tags = append(tags, tag)
			if len(tags) >= window {
				if err := flushWait(); err != nil {
					return err
				}
			}
			continue
		}
		fmt.Fprintf(w, "%s APPEND %s %s %q {%d}\r\n", tag, imaptest.Quote(mailbox), m.FlagList(), date, len(m.Raw))
		if err := c.Flush(); err != nil {
			return err
		}
		r, err := c.ReadRaw()
		if err != nil {
			return err
		}
		if r.Bytes[0] != '+' {
			return fmt.Errorf("append: no continuation: %q", r.Bytes)
		}
		w.Write(m.Raw)
		w.WriteString("\r\n")
		tags = append(tags, tag)
		if err := flushWait(); err != nil {
			return err
		}
	}
	return flushWait()
}

func multiAppend(c *imaptest.Client, mailbox string, msgs []Message, window int) error {
	w := c.Buffer()
	for len(msgs) > 0 {
		batch := msgs[:min(window, len(msgs))]
		msgs = msgs[len(batch):]
		tag := c.NextTag()
		fmt.Fprintf(w, "%s APPEND %s", tag, imaptest.Quote(mailbox))
		for i := range batch {
			m := &batch[i]
			fmt.Fprintf(w, " %s %q {%d+}\r\n", m.FlagList(), m.Date.Format("02-Jan-2006 15:04:05 -0700"), len(m.Raw))
			w.Write(m.Raw)
		}
		w.WriteString("\r\n")
		if err := c.Flush(); err != nil {
			return err
		}
		if err := c.WaitRaw(tag, nil); err != nil {
			return fmt.Errorf("append: %w", err)
		}
	}
	return nil
}

// idleUntil enters IDLE (the caller has selected a mailbox), calls ready
// once the server confirmed, and returns when an untagged response
// containing want arrives (or the deadline passes); it then ends IDLE with
// DONE.
func idleUntil(c *imaptest.Client, want string, ready func(), deadline time.Time) (time.Time, error) {
	tag := c.Queue("IDLE")
	if err := c.Flush(); err != nil {
		return time.Time{}, err
	}
	for {
		r, err := c.ReadRaw()
		if err != nil {
			return time.Time{}, err
		}
		if r.Bytes[0] == '+' {
			break
		}
		if r.Tagged(tag) {
			return time.Time{}, fmt.Errorf("IDLE: %s", r.Line())
		}
	}
	c.Conn().SetReadDeadline(deadline)
	defer c.Conn().SetReadDeadline(time.Time{})
	ready()
	var at time.Time
	for {
		r, err := c.ReadRaw()
		if err != nil {
			return time.Time{}, err
		}
		if bytes.Contains(r.Bytes, []byte(want)) {
			at = time.Now()
			break
		}
	}
	c.Conn().SetReadDeadline(time.Time{})
	if err := c.Write([]byte("DONE\r\n")); err != nil {
		return at, err
	}
	return at, c.WaitRaw(tag, nil)
}
