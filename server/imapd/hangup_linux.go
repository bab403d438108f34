package imapd

import (
	"crypto/tls"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// hangupDelay: commands that finish sooner are not watched at all.
// hangupEvery: how often a longer command's connection is looked at.
const (
	hangupDelay = 50 * time.Millisecond
	hangupEvery = 100 * time.Millisecond
)

// watchHangup cancels the connection's context when the client goes away
// while a command runs, so that the store call it waits for (a long SEARCH,
// a FETCH of many bodies) is cancelled in Postgres instead of running on for
// nobody. Nothing reads the socket during a command, so the watcher asks the
// kernel: POLLRDHUP is the peer's FIN (IMAP has no half-close: a client that
// stops sending is gone), POLLHUP/POLLERR a reset. stop ends the watch.
//
// The poll does not wait (timeout 0) and a timer repeats it: a poll that
// waited would hold an OS thread for as long, and with thousands of
// sessions in commands the process would run thousands of threads (Go
// stops at 10,000). Commands that read the client themselves (IDLE) are
// not watched (cmdSpec.readsClient).
func (c *Conn) watchHangup() (stop func()) {
	peer := c.peer
	if tc, ok := peer.(*tls.Conn); ok {
		peer = tc.NetConn() // IMAPS: the FIN is the TCP connection's
	}
	sc, ok := peer.(syscall.Conn)
	if !ok {
		return func() {}
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return func() {}
	}
	var mu sync.Mutex
	var t *time.Timer
	stopped := false
	check := func() {
		c.srv.hangupPolls.Add(1)
		hung := false
		// Control holds the descriptor open during the poll.
		err := rc.Control(func(fd uintptr) {
			fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLRDHUP}}
			n, _ := unix.Poll(fds, 0)
			hung = n > 0 && fds[0].Revents&(unix.POLLRDHUP|unix.POLLHUP|unix.POLLERR|unix.POLLNVAL) != 0
		})
		if hung {
			c.log.Info("client went away during a command")
			c.cancel()
		}
		if hung || err != nil {
			return
		}
		mu.Lock()
		if !stopped {
			t.Reset(hangupEvery)
		}
		mu.Unlock()
	}
	mu.Lock()
	t = time.AfterFunc(hangupDelay, check)
	mu.Unlock()
	return func() {
		mu.Lock()
		stopped = true
		t.Stop()
		mu.Unlock()
	}
}
