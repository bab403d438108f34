package bench

import (
	"fmt"
	"strings"
	"testing"

	"decimail/internal/imaptest"
)

// BenchmarkSortThread: SORT and THREAD (RFC 5256) over a corpus INBOX
// (its Subject, References and In-Reply-To as the generator makes them),
// through the real server on a loopback socket:
//
//	go test ./bench -run XXX -bench SortThread -benchtime 20x
//
// Size: 3000 messages, or DECIMAIL_BENCH_SIZES. Reports the spaces in the
// response (SORT: one a message), to catch a benchmark of an empty answer.
// On the 2-core development machine under load: SORT (REVERSE DATE) about
// 30 ms, THREAD REFERENCES about 27 ms for 3000 messages.
func BenchmarkSortThread(b *testing.B) {
	for _, n := range benchSizes(3000) {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			o, _ := oursWithInbox(b, n)
			for _, cmd := range []string{"SORT (REVERSE DATE) UTF-8 ALL", "THREAD REFERENCES UTF-8 ALL",
				"SORT (SUBJECT FROM) UTF-8 ALL", "THREAD ORDEREDSUBJECT UTF-8 ALL"} {
				b.Run(strings.ReplaceAll(cmd, " ", "_"), func(b *testing.B) {
					c, err := Login(o.Addr, o.User, o.Pass)
					if err != nil {
						b.Fatal(err)
					}
					defer c.Close()
					if err := c.Stream("SELECT INBOX", nil); err != nil {
						b.Fatal(err)
					}
					var spaces int
					for b.Loop() {
						spaces = 0
						if err := c.Stream(cmd, func(r *imaptest.Raw) {
							spaces += strings.Count(string(r.Bytes), " ")
						}); err != nil {
							b.Fatal(err)
						}
					}
					b.ReportMetric(float64(spaces), "spaces")
				})
			}
		})
	}
}
