package bench

import (
	"fmt"
	"net"
	"sync/atomic"
	"testing"

	"decimail/internal/imaptest"
)

// BenchmarkCompressHeaderListing measures the octets on the wire of a
// client's header listing, UID FETCH 1:* (UID FLAGS ENVELOPE
// BODYSTRUCTURE) over the whole corpus INBOX, without and with COMPRESS
// DEFLATE (RFC 4978). Reported: wire-B/op (octets received from the
// socket), resp-B/op (the responses, decompressed) and wire/resp. Time is
// reported too but is not the point: the socket is loopback.
//
//	go test ./bench -run XXX -bench CompressHeaderListing -benchtime 3x
func BenchmarkCompressHeaderListing(b *testing.B) {
	for _, n := range benchSizes(1000) {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			o, _ := oursWithInbox(b, n)
			for _, deflate := range []bool{false, true} {
				name := "plain"
				if deflate {
					name = "deflate"
				}
				b.Run(name, func(b *testing.B) { benchListing(b, o.Addr, deflate, n) })
			}
		})
	}
}

func benchListing(b *testing.B, addr string, deflate bool, n int) {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	wire := &countingConn{Conn: nc}
	c := imaptest.New(wire)
	defer c.Close()
	if err := c.ReadGreeting(); err != nil {
		b.Fatal(err)
	}
	if err := c.Login("u", "pw"); err != nil {
		b.Fatal(err)
	}
	if deflate {
		if err := c.Compress(); err != nil {
			b.Fatal(err)
		}
	}
	if _, _, err := c.Command("SELECT INBOX"); err != nil {
		b.Fatal(err)
	}
	var resp int64
	wire.in.Store(0)
	b.ResetTimer()
	for range b.N {
		got := 0
		err := c.Stream("UID FETCH 1:* (UID FLAGS ENVELOPE BODYSTRUCTURE)", func(r *imaptest.Raw) {
			resp += int64(len(r.Bytes))
			got++
		})
		if err != nil {
			b.Fatal(err)
		}
		if got != n {
			b.Fatalf("%d FETCH responses, want %d", got, n)
		}
	}
	b.StopTimer()
	w := float64(wire.in.Load()) / float64(b.N)
	r := float64(resp) / float64(b.N)
	b.ReportMetric(w, "wire-B/op")
	b.ReportMetric(r, "resp-B/op")
	b.ReportMetric(w/r, "wire/resp")
}

// countingConn counts the octets read from the connection.
type countingConn struct {
	net.Conn
	in atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.in.Add(int64(n))
	return n, err
}
