package smtpd_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"decimail/server/smtpd"
)

// BenchmarkInboundDelivery: 8 concurrent go-smtp clients, each on its own
// connection, deliver ~8.8 KB messages to the MX listener (one commit each).
func BenchmarkInboundDelivery(b *testing.B) {
	e := newEnv(b, smtpd.Config{})
	body := strings.Repeat(strings.Repeat("lorem ipsum ", 7)+"\r\n", 100) // ~8.6 KB
	const clients = 8
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	work := make(chan int)
	for range clients {
		c := dial(b, e.mx)
		wg.Go(func() {
			for n := range work {
				msg := testMsg("bench"+strings.Repeat("x", n%3)) + body
				if err := send(c, "alice@remote.example", []string{"u@example.test"}, msg); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	for i := 0; i < b.N; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}
