package rawio

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// pair returns an accepted connection made by wrap (the server's side)
// and the client's side of a loopback connection over network ("tcp",
// "unix").
func pair(t *testing.T, network string, wrap func(net.Conn) net.Conn) (srv net.Conn, cli net.Conn) {
	t.Helper()
	addr := "127.0.0.1:0"
	if network == "unix" {
		addr = filepath.Join(t.TempDir(), "s")
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial(network, ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return wrap(s), c
}

// The raw reads and writes behave as net.Conn's do: the same bytes, the
// same errors (EOF, deadlines, a closed connection, a reset), checked on
// both so that a difference shows as a failure of one.
func TestRawIO(t *testing.T) {
	if s, _ := pair(t, "tcp", Wrap); s.(*Conn) == nil {
		t.Fatal("Wrap does not wrap a TCP connection")
	}
	if s, _ := pair(t, "unix", Wrap); s.(*Conn) == nil {
		t.Fatal("Wrap does not wrap a Unix socket connection")
	}
	if p, _ := net.Pipe(); Wrap(p) != p {
		t.Fatal("Wrap wrapped a connection that is not a socket")
	}
	for _, k := range []struct {
		name, network string
		wrap          func(net.Conn) net.Conn
	}{
		{"net.Conn over tcp", "tcp", func(c net.Conn) net.Conn { return c }},
		{"raw over tcp", "tcp", Wrap},
		{"net.Conn over unix", "unix", func(c net.Conn) net.Conn { return c }},
		{"raw over unix", "unix", Wrap},
	} {
		t.Run(k.name, func(t *testing.T) {
			rawPair := func(t *testing.T, wrap func(net.Conn) net.Conn) (net.Conn, net.Conn) {
				return pair(t, k.network, wrap)
			}
			t.Run("bytes both ways, past the socket buffers", func(t *testing.T) {
				s, c := rawPair(t, k.wrap)
				big := make([]byte, 16<<20)
				for i := range big {
					big[i] = byte(rand.IntN(256))
				}
				// The client reads late: the server's write meets a full
				// socket buffer (EAGAIN) and must wait, then go on.
				got := make(chan []byte, 1)
				go func() {
					time.Sleep(100 * time.Millisecond)
					b := make([]byte, len(big))
					_, err := io.ReadFull(c, b)
					if err != nil {
						t.Error(err)
					}
					got <- b
				}()
				if n, err := s.Write(big); n != len(big) || err != nil {
					t.Fatalf("Write = %d, %v; want %d, nil", n, err, len(big))
				}
				if !bytes.Equal(<-got, big) {
					t.Fatal("the client read other bytes than written")
				}
				go func() {
					for i := 0; i < len(big); i += 100_000 {
						c.Write(big[i:min(i+100_000, len(big))])
					}
					c.(interface{ CloseWrite() error }).CloseWrite()
				}()
				b, err := io.ReadAll(s)
				if err != nil || !bytes.Equal(b, big) {
					t.Fatalf("server read %d bytes (err %v), want the %d sent then EOF", len(b), err, len(big))
				}
				if n, err := s.Read(make([]byte, 10)); n != 0 || err != io.EOF {
					t.Fatalf("Read after EOF = %d, %v", n, err)
				}
			})
			t.Run("read deadline, then reads again", func(t *testing.T) {
				s, c := rawPair(t, k.wrap)
				s.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
				_, err := s.Read(make([]byte, 10))
				var ne net.Error
				if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
					t.Fatalf("Read past the deadline: %v, want a timeout", err)
				}
				s.SetReadDeadline(time.Time{})
				c.Write([]byte("a1 NOOP\r\n"))
				b := make([]byte, 10)
				if n, err := s.Read(b); string(b[:n]) != "a1 NOOP\r\n" || err != nil {
					t.Fatalf("Read = %q, %v", b[:n], err)
				}
			})
			t.Run("write deadline with a client that does not read", func(t *testing.T) {
				s, _ := rawPair(t, k.wrap)
				s.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
				big := make([]byte, 64<<20)
				n, err := s.Write(big)
				if !errors.Is(err, os.ErrDeadlineExceeded) || n >= len(big) {
					t.Fatalf("Write = %d, %v; want part written and a timeout", n, err)
				}
			})
			t.Run("close during a read", func(t *testing.T) {
				s, _ := rawPair(t, k.wrap)
				time.AfterFunc(50*time.Millisecond, func() { s.Close() })
				if _, err := s.Read(make([]byte, 10)); !errors.Is(err, net.ErrClosed) {
					t.Fatalf("Read of a connection closed meanwhile: %v, want net.ErrClosed", err)
				}
			})
			t.Run("reset by the client", func(t *testing.T) {
				s, c := rawPair(t, k.wrap)
				if tc, ok := c.(*net.TCPConn); ok {
					tc.SetLinger(0)
				}
				c.Write([]byte("x"))
				c.Close()
				time.Sleep(50 * time.Millisecond)
				_, err := s.Write([]byte("* OK\r\n"))
				if err == nil {
					_, err = s.Read(make([]byte, 10))
				}
				if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE) {
					t.Fatalf("after a reset: %v, want ECONNRESET or EPIPE", err)
				}
			})
		})
	}
}
