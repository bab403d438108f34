package smtpd

import (
	"sync"
	"time"

	"github.com/emersion/go-smtp"
)

// Connections to the smart host and to exchangers are kept open between
// messages (RFC 5321 §3.3: a client may send several transactions in one
// session), so a burst of mail to one place pays the connection, EHLO,
// STARTTLS and AUTH once: the next message to the same place resets the
// session (RSET) and goes on; a connection the other side has closed
// meanwhile fails the RSET and a new one is opened. A connection idle for
// KeepIdle is closed (QUIT), and one is used for at most reuseMax
// messages.

// relayConn is an open SMTP session of the relay.
type relayConn struct {
	*smtp.Client
	ec   *endConn
	sent int // transactions so far
}

// begin bounds the session's next transaction (endConn) to lease/2.
func (c *relayConn) begin(lease time.Duration) { c.ec.end = time.Now().Add(lease / 2) }

// reuseMax is the most messages one connection carries.
const reuseMax = 100

type idleConns struct {
	mu    sync.Mutex
	keep  time.Duration
	m     map[string][]idleConn // by destination, most recent last
	timer *time.Timer
}

type idleConn struct {
	c     *relayConn
	since time.Time
}

// take returns an idle connection to dest that still answers RSET, or nil.
func (p *idleConns) take(dest string) *relayConn {
	for {
		p.mu.Lock()
		list := p.m[dest]
		if len(list) == 0 {
			p.mu.Unlock()
			return nil
		}
		ic := list[len(list)-1]
		p.m[dest] = list[:len(list)-1]
		p.mu.Unlock()
		if time.Since(ic.since) > p.keep {
			ic.c.Close()
			continue
		}
		ic.c.ec.end = time.Now().Add(p.keep) // RSET's own bound
		if err := ic.c.Reset(); err != nil {
			ic.c.Close()
			continue
		}
		return ic.c
	}
}

// put keeps c for the next message to dest, or ends the session.
func (p *idleConns) put(dest string, c *relayConn) {
	c.sent++
	if p.keep <= 0 || c.sent >= reuseMax {
		c.Quit()
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = map[string][]idleConn{}
	}
	p.m[dest] = append(p.m[dest], idleConn{c, time.Now()})
	if p.timer == nil {
		p.timer = time.AfterFunc(p.keep, p.sweep)
	}
}

// sweep ends the sessions idle for keep; it runs while any are kept.
func (p *idleConns) sweep() {
	var old []*relayConn
	p.mu.Lock()
	next := time.Duration(0)
	for dest, list := range p.m {
		kept := list[:0]
		for _, ic := range list {
			if idle := time.Since(ic.since); idle >= p.keep {
				old = append(old, ic.c)
			} else {
				kept = append(kept, ic)
				if left := p.keep - idle; next == 0 || left < next {
					next = left
				}
			}
		}
		if len(kept) == 0 {
			delete(p.m, dest)
		} else {
			p.m[dest] = kept
		}
	}
	p.timer = nil
	if next > 0 {
		p.timer = time.AfterFunc(next, p.sweep)
	}
	p.mu.Unlock()
	for _, c := range old {
		c.ec.end = time.Now().Add(10 * time.Second)
		c.Quit()
	}
}

// closeAll ends every kept session (the relay stops).
func (p *idleConns) closeAll() {
	p.mu.Lock()
	m := p.m
	p.m = nil
	if p.timer != nil {
		p.timer.Stop()
		p.timer = nil
	}
	p.mu.Unlock()
	for _, list := range m {
		for _, ic := range list {
			ic.c.ec.end = time.Now().Add(10 * time.Second)
			ic.c.Quit()
		}
	}
}
