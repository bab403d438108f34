//go:build !linux

// Package rawio: raw reads and writes are Linux's (rawio_linux.go).
package rawio

import "net"

// Wrap returns nc.
func Wrap(nc net.Conn) net.Conn { return nc }

// Listener returns ln.
func Listener(ln net.Listener) net.Listener { return ln }
