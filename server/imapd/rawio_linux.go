package imapd

import (
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"
)

// rawIO is an accepted TCP connection whose Read and Write call read(2)
// and write(2) as raw system calls on the non-blocking socket, waiting
// through Go's network poller when it has nothing to read or no room to
// write (syscall.RawConn). Everything else (deadlines, Close, addresses,
// SyscallConn) is the TCP connection's.
//
// Why (bench/ANALYSIS.md, "A session's round trip"): net.Conn's Read and
// Write enter the system call through the runtime (entersyscall), which
// wakes the runtime's monitor thread (sysmon) whenever the process was
// idle: with one client sending commands one at a time, every command
// woke it, and it then slept in 20 µs steps until the process was idle
// again. In `decimail serve` answering STATUS one at a time, those futex
// and nanosleep calls took as much CPU as the reads and writes. A read or
// write of a non-blocking socket never blocks, so it need not tell the
// scheduler.
type rawIO struct {
	*net.TCPConn
	rc syscall.RawConn
}

// fastIO returns nc with raw reads and writes when it is a TCP connection,
// else nc.
func fastIO(nc net.Conn) net.Conn {
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		return nc
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nc
	}
	return &rawIO{TCPConn: tc, rc: rc}
}

func (c *rawIO) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	var n int
	var errno syscall.Errno
	err := c.rc.Read(func(fd uintptr) bool {
		for {
			r, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
			switch e {
			case syscall.EINTR:
				continue
			case syscall.EAGAIN:
				return false // wait until readable
			}
			n, errno = int(r), e
			return true
		}
	})
	switch {
	case err != nil:
		return 0, c.opError("read", err)
	case errno != 0:
		return 0, c.opError("read", os.NewSyscallError("read", errno))
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

func (c *rawIO) Write(p []byte) (int, error) {
	var n int
	var errno syscall.Errno
	err := c.rc.Write(func(fd uintptr) bool {
		for n < len(p) {
			r, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[n])), uintptr(len(p)-n))
			switch e {
			case 0:
				n += int(r)
			case syscall.EINTR:
			case syscall.EAGAIN:
				return false // wait until writable
			default:
				errno = e
				return true
			}
		}
		return true
	})
	switch {
	case err != nil:
		return n, c.opError("write", err)
	case errno != 0:
		return n, c.opError("write", os.NewSyscallError("write", errno))
	}
	return n, nil
}

// opError wraps err as net.Conn's methods do, so that callers' checks
// (net.ErrClosed, os.ErrDeadlineExceeded, net.Error's Timeout) hold; the
// RawConn's own wrapping ("raw-read") is taken off.
func (c *rawIO) opError(op string, err error) error {
	if oe, ok := err.(*net.OpError); ok {
		err = oe.Err
	}
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}
