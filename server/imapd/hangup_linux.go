package imapd

import (
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// hangupDelay: commands that finish sooner are not watched at all.
const hangupDelay = 50 * time.Millisecond

// watchHangup cancels the connection's context when the client goes away
// while a command runs, so that the store call it waits for (a long SEARCH,
// a FETCH of many bodies) is cancelled in Postgres instead of running on for
// nobody. Nothing reads the socket during a command, so the watcher asks the
// kernel: POLLRDHUP is the peer's FIN (IMAP has no half-close: a client that
// stops sending is gone), POLLHUP/POLLERR a reset. stop ends the watch.
func (c *Conn) watchHangup() (stop func()) {
	sc, ok := c.peer.(syscall.Conn)
	if !ok {
		return func() {}
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return func() {}
	}
	done := make(chan struct{})
	t := time.AfterFunc(hangupDelay, func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			hung := false
			// Control holds the descriptor open while poll waits on it.
			err := rc.Control(func(fd uintptr) {
				fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLRDHUP}}
				n, _ := unix.Poll(fds, 200)
				hung = n > 0 && fds[0].Revents&(unix.POLLRDHUP|unix.POLLHUP|unix.POLLERR|unix.POLLNVAL) != 0
			})
			if hung {
				c.log.Info("client went away during a command")
				c.cancel()
			}
			if hung || err != nil {
				return
			}
		}
	})
	return func() {
		t.Stop()
		close(done)
	}
}
