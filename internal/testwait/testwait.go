// Package testwait is how tests wait for something another goroutine or
// process does, when no event says it happened.
//
// Wait on an event wherever there is one: a channel, a response read with a
// deadline, a notification, a lock, exec.Cmd.Wait for a child, Exited for
// any other process. For is the one polling loop, for what can only be
// looked at (a port, a terminal screen, a row another process writes); no
// test sleeps in a loop of its own.
package testwait

import (
	"fmt"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// For calls cond until it reports done, first at once, then at intervals
// growing from 5 to 100 ms. When timeout passes first it fails t with what
// it waited for and the state cond reported last.
func For(t testing.TB, timeout time.Duration, what string, cond func() (done bool, state string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for interval := 5 * time.Millisecond; ; interval = min(2*interval, 100*time.Millisecond) {
		done, state := cond()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s; last seen: %s", timeout, what, state)
		}
		time.Sleep(interval)
	}
}

// Process is a process pinned by a pidfd, so that waiting for its exit
// cannot mistake a later process with the same pid for it. For processes
// that are not the caller's children (those have exec.Cmd.Wait).
type Process struct {
	Pid int
	fd  int // -1: had already exited when pinned
}

// Pin pins the running process pid. A process that has already exited (no
// such pid) pins as exited.
func Pin(pid int) (*Process, error) {
	fd, err := unix.PidfdOpen(pid, 0)
	if err == unix.ESRCH {
		return &Process{Pid: pid, fd: -1}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("pidfd_open %d: %w", pid, err)
	}
	return &Process{Pid: pid, fd: fd}, nil
}

// Close releases the pidfd.
func (p *Process) Close() {
	if p.fd >= 0 {
		unix.Close(p.fd)
		p.fd = -1
	}
}

// Exited waits until every process in ps has exited (a pidfd becomes
// readable when its process exits), failing t after timeout with the pids
// still running. It closes the pidfds.
func Exited(t testing.TB, timeout time.Duration, what string, ps ...*Process) {
	t.Helper()
	defer func() {
		for _, p := range ps {
			p.Close()
		}
	}()
	deadline := time.Now().Add(timeout)
	for {
		var fds []unix.PollFd
		var pids []int
		for _, p := range ps {
			if p.fd >= 0 {
				fds = append(fds, unix.PollFd{Fd: int32(p.fd), Events: unix.POLLIN})
				pids = append(pids, p.Pid)
			}
		}
		if len(fds) == 0 {
			return
		}
		left := time.Until(deadline)
		if left <= 0 {
			t.Fatalf("timed out after %v waiting for %s: pids %v still running", timeout, what, pids)
		}
		if _, err := unix.Poll(fds, int(left.Milliseconds())+1); err != nil && err != unix.EINTR {
			t.Fatalf("waiting for %s: poll: %v", what, err)
		}
		for _, f := range fds {
			if f.Revents != 0 {
				for _, p := range ps {
					if p.fd == int(f.Fd) {
						p.Close()
					}
				}
			}
		}
	}
}
