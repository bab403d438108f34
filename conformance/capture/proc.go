package main

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// proc is a program the harness started, in a process group of its own, so
// that stopping it also stops what it started (Thunderbird's child
// processes) and nothing else.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

func startProc(name string, cmd *exec.Cmd, logFile string) (*proc, error) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if logFile != "" {
		f, err := os.Create(logFile)
		if err != nil {
			return nil, err
		}
		cmd.Stdout, cmd.Stderr = f, f
		defer f.Close() // the child has its own descriptor
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// wait waits up to d for the program to exit by itself.
func (p *proc) wait(d time.Duration) bool {
	select {
	case <-p.done:
		return true
	case <-time.After(d):
		return false
	}
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop ends the program's process group: SIGTERM, then SIGKILL after 5 s.
func (p *proc) stop() {
	if p == nil {
		return
	}
	pgid := p.cmd.Process.Pid
	if !p.exited() {
		syscall.Kill(-pgid, syscall.SIGTERM)
		if p.wait(5 * time.Second) {
			syscall.Kill(-pgid, syscall.SIGKILL) // leftovers of the group
			return
		}
	}
	syscall.Kill(-pgid, syscall.SIGKILL)
	p.wait(5 * time.Second)
}
