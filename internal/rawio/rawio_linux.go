// Package rawio gives a TCP or Unix socket connection reads and writes
// that are raw system calls on its non-blocking socket, waiting through
// Go's network poller when there is nothing to read or no room to write
// (syscall.RawConn). Everything else (deadlines, Close, addresses) is the
// connection's own.
//
// Why (bench/ANALYSIS.md, "Stop 31"): net.Conn's Read and Write enter the
// system call through the runtime (entersyscall), which wakes the
// runtime's monitor thread (sysmon) when the process was idle. With one
// client sending commands one at a time, every command woke it, and it
// then slept in 20 µs steps until the process was idle again: in `decimail
// serve` answering STATUS one at a time, its futex and nanosleep calls cost
// as much CPU as the reads and writes. A read or write of a non-blocking
// socket never blocks, so it need not tell the scheduler.
package rawio

import (
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"
)

// Conn is a connection with raw reads and writes (Wrap).
type Conn struct {
	net.Conn
	rc syscall.RawConn
}

// Wrap returns nc with raw reads and writes when it is a TCP or Unix
// socket connection, else nc.
func Wrap(nc net.Conn) net.Conn {
	switch nc.(type) {
	case *net.TCPConn, *net.UnixConn:
	default:
		return nc
	}
	rc, err := nc.(syscall.Conn).SyscallConn()
	if err != nil {
		return nc
	}
	return &Conn{Conn: nc, rc: rc}
}

// SyscallConn is the connection's own (a poll of the socket, say).
func (c *Conn) SyscallConn() (syscall.RawConn, error) { return c.rc, nil }

func (c *Conn) Read(p []byte) (int, error) {
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

func (c *Conn) Write(p []byte) (int, error) {
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
func (c *Conn) opError(op string, err error) error {
	if oe, ok := err.(*net.OpError); ok {
		err = oe.Err
	}
	return &net.OpError{Op: op, Net: c.LocalAddr().Network(), Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}

// Listener returns ln whose accepted connections have raw reads and writes
// (Wrap); a TLS listener on top of it gets them under its encryption.
func Listener(ln net.Listener) net.Listener { return listener{ln} }

type listener struct{ net.Listener }

func (l listener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return Wrap(nc), nil
}
