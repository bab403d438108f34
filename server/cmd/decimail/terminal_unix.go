//go:build unix

package main

import (
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"
)

// takeTerminal makes the process the foreground process group of its
// terminal, when it was started in the foreground of one (`make run`), and
// returns the function that gives the terminal back.
//
// Ctrl-C sends SIGINT to the terminal's whole foreground group. `decimail
// dev` shuts down on it and exits 0; but make, in the same group, dies of
// the signal too (GNU make re-raises it after its recipe ends), so
// `make run` ended with status 130 however cleanly decimail stopped (and
// `go run` exits 1 on SIGINT). With decimail alone in the foreground, only
// decimail gets the SIGINT, and make sees its recipe succeed. A shell that
// starts decimail itself has done this already; in the background or
// without a terminal nothing changes.
func takeTerminal() (restore func()) {
	noop := func() {}
	fd := int(os.Stdin.Fd())
	fg, err := unix.IoctlGetInt(fd, unix.TIOCGPGRP)
	if err != nil || fg != unix.Getpgrp() || fg == unix.Getpid() {
		return noop // no terminal, in the background, or already leading the foreground
	}
	if err := unix.Setpgid(0, 0); err != nil {
		return noop
	}
	// A background group that sets the foreground group gets SIGTTOU.
	signal.Ignore(syscall.SIGTTOU)
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPGRP, unix.Getpid()); err != nil {
		unix.Setpgid(0, fg)
		signal.Reset(syscall.SIGTTOU)
		return noop
	}
	return func() {
		unix.IoctlSetPointerInt(fd, unix.TIOCSPGRP, fg)
		unix.Setpgid(0, fg)
	}
}
