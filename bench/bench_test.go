package bench

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"decimail/server/store"
)

// These are benchmarks (make bench: go test -run XXX -bench . ./bench/);
// `go test ./bench/` runs only the quick tests. Every benchmark talks to the
// real server over a loopback socket. Sizes: 1000 and 10000 messages, or
// DECIMAIL_BENCH_SIZES=1000,10000,100000.
//
//	go test ./bench -run XXX -bench 'IMAP/n=10000/HeaderListing' -benchtime 10x

// oursWithInbox starts Decimail on a fresh database (closed with the
// benchmark) whose INBOX holds the n messages of the corpus (seed 1).
func oursWithInbox(b *testing.B, n int) (*Ours, []Message) {
	b.Helper()
	ctx := context.Background()
	o, err := StartOurs(ctx)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(o.Close)
	msgs := Corpus(n, 1)
	if err := LoadStore(ctx, o.Store, o.UserID, "INBOX", msgs); err != nil {
		b.Fatal(err)
	}
	return o, msgs
}

// loadOurs starts Decimail on a fresh database with n corpus messages and the
// Prepare mailboxes (100 folders, 100 query mailboxes, IdleBox).
func loadOurs(b *testing.B, n int) (*Ours, *Env) {
	b.Helper()
	ctx := context.Background()
	t0 := time.Now()
	o, msgs := oursWithInbox(b, n)
	b.Logf("n=%d: delivered through the store in %v", n, time.Since(t0))
	e, err := Prepare(&o.Target, msgs, func(name, def string) error {
		_, err := o.Store.DefineMailbox(ctx, o.UserID, name, def)
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	return o, e
}

// BenchmarkIMAP runs every IMAP line of the comparison against ours. The
// reported ms/cmd is the line's own measurement (restores after STORE are
// excluded); ns/op includes them.
func BenchmarkIMAP(b *testing.B) {
	for _, n := range benchSizes(1000, 10000) {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			o, e := loadOurs(b, n)
			for _, l := range IMAPLines() {
				if l.Key == "IdleNotify" {
					continue // BenchmarkIMAP/…/IdleNotifyStore below measures it through the store
				}
				b.Run(l.Key, func(b *testing.B) {
					c, err := Login(e.Addr, e.User, e.Pass)
					if err != nil {
						b.Fatal(err)
					}
					defer c.Close()
					if err := c.Stream("SELECT INBOX", nil); err != nil {
						b.Fatal(err)
					}
					var total float64
					var k int
					for b.Loop() {
						v, err := l.Run(e, c)
						if err != nil {
							b.Fatal(err)
						}
						for _, x := range v {
							total += x
							k++
						}
					}
					b.ReportMetric(total/float64(k), "ms/cmd")
				})
			}
			b.Run("IdleNotifyStore", func(b *testing.B) { benchIdleStore(b, o) })
			b.Run("IdleFlagStore", func(b *testing.B) { benchIdleFlagStore(b, o) })
		})
	}
}

// benchIdleStore: an idler on IdleBox of one server; each iteration delivers
// one message through the SECOND store (its own pool and notifier: another
// process as far as Postgres is concerned) and times Deliver's start to the
// idler reading "* n EXISTS". Reports p50/p99.
func benchIdleStore(b *testing.B, o *Ours) {
	ctx := context.Background()
	c, err := Login(o.Addr, o.User, o.Pass)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	if err := c.Stream("SELECT IdleBox", nil); err != nil {
		b.Fatal(err)
	}
	var lat, after []float64
	for b.Loop() {
		var t0, t1 time.Time
		errc := make(chan error, 1)
		// ready runs once the server has answered "+ idling": the session
		// has been subscribed to IdleBox's notifications since SELECT, so the
		// delivery can start at once.
		at, err := idleUntil(c, " EXISTS", func() {
			go func() {
				t0 = time.Now()
				_, err := o.Store2.Deliver(ctx, o.UserID, idleMsg, store.DeliverOptions{Mailbox: "IdleBox"})
				t1 = time.Now()
				errc <- err
			}()
		}, time.Now().Add(30*time.Second))
		if err := <-errc; err != nil {
			b.Fatal(err)
		}
		if err != nil {
			b.Fatal(err)
		}
		lat = append(lat, float64(at.Sub(t0))/float64(time.Millisecond))
		after = append(after, max(0, float64(at.Sub(t1))/float64(time.Millisecond)))
	}
	// p50/p99: from the start of Deliver (what a user sees: delivery +
	// notification); commit-p50/p99: from Deliver's return (commit) to EXISTS,
	// the notification path alone (0 when EXISTS came first).
	slices.Sort(lat)
	slices.Sort(after)
	b.ReportMetric(percentile(lat, 50), "p50-ms")
	b.ReportMetric(percentile(lat, 99), "p99-ms")
	b.ReportMetric(percentile(after, 50), "commit-p50-ms")
	b.ReportMetric(percentile(after, 99), "commit-p99-ms")
}

// benchIdleFlagStore: an idler on IdleBox of one server; each iteration
// sets or clears \Flagged on one IdleBox message through the SECOND store
// (another process as far as Postgres is concerned) and times StoreFlags'
// start to the idler reading "* n FETCH". Reports p50/p99. (The test
// imapd.TestIdleAcrossServers checks that such changes arrive; the time
// they take is measured here.)
func benchIdleFlagStore(b *testing.B, o *Ours) {
	ctx := context.Background()
	d, err := o.Store2.Deliver(ctx, o.UserID, idleMsg, store.DeliverOptions{Mailbox: "IdleBox"})
	if err != nil {
		b.Fatal(err)
	}
	c, err := Login(o.Addr, o.User, o.Pass)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	if err := c.Stream("SELECT IdleBox", nil); err != nil {
		b.Fatal(err)
	}
	var lat []float64
	op := store.FlagsAdd
	for b.Loop() {
		var t0 time.Time
		errc := make(chan error, 1)
		at, err := idleUntil(c, " FETCH ", func() {
			go func() {
				t0 = time.Now()
				_, err := o.Store2.StoreFlags(ctx, d.Box(), []uint32{d.UID}, op, store.Flags{Flagged: true})
				errc <- err
			}()
		}, time.Now().Add(30*time.Second))
		if err := <-errc; err != nil {
			b.Fatal(err)
		}
		if err != nil {
			b.Fatal(err)
		}
		lat = append(lat, float64(at.Sub(t0))/float64(time.Millisecond))
		if op == store.FlagsAdd {
			op = store.FlagsDel
		} else {
			op = store.FlagsAdd
		}
	}
	slices.Sort(lat)
	b.ReportMetric(percentile(lat, 50), "p50-ms")
	b.ReportMetric(percentile(lat, 99), "p99-ms")
}

// BenchmarkSMTPDelivery: 8 concurrent senders into one fresh account (the
// default views only), 200 messages per iteration; reports msg/s.
func BenchmarkSMTPDelivery(b *testing.B) {
	o, err := StartOurs(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	defer o.Close()
	msgs := Corpus(200, 2)
	var rates []float64
	for b.Loop() {
		r, err := SMTPThroughput(o.Store, msgs, 8, len(msgs))
		if err != nil {
			b.Fatal(err)
		}
		rates = append(rates, r)
	}
	slices.Sort(rates)
	b.ReportMetric(percentile(rates, 50), "msg/s")
}

// BenchmarkIdleMemory holds 2,000 idle IDLE connections on a separate
// `decimail serve` process and reports its memory growth (PSS ≈ RSS for one
// process) per connection. The account is empty but for IdleBox, or holds
// DECIMAIL_BENCH_IDLE_LOAD corpus messages and the Prepare mailboxes.
// DECIMAIL_BENCH_IDLE_PROFILE=dir saves the server's heap and goroutine
// profiles (net/http/pprof) there while the connections are held. It also
// reports the CPU the server uses while they are held (ms a second) and
// its OS threads.
func BenchmarkIdleMemory(b *testing.B) {
	ctx := context.Background()
	var o *Ours
	if n, _ := strconv.Atoi(os.Getenv("DECIMAIL_BENCH_IDLE_LOAD")); n > 0 {
		o, _ = loadOurs(b, n)
	} else {
		var err error
		if o, err = StartOurs(ctx); err != nil {
			b.Fatal(err)
		}
		defer o.Close()
		if _, err := o.Store.CreateMailbox(ctx, o.UserID, "IdleBox", "", ""); err != nil {
			b.Fatal(err)
		}
	}
	var args []string
	dir, pprofAddr := os.Getenv("DECIMAIL_BENCH_IDLE_PROFILE"), ""
	if dir != "" {
		var err error
		if pprofAddr, err = freeLoopback(); err != nil {
			b.Fatal(err)
		}
		args = append(args, "-pprof", pprofAddr)
	}
	p, err := StartServe(ctx, o.DSN, args...)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	var cpu float64
	var threads int
	held := []func() error{func() error {
		cpu, threads = IdleLoad(p.PIDs(), 5*time.Second)
		return nil
	}}
	if dir != "" {
		held = append(held, func() error { return saveProfiles(pprofAddr, dir, "heap", "goroutine") })
	}
	for b.Loop() {
		kib, err := MemoryPerIdle(&p.Target, p.PIDs, 2000, held...)
		if err != nil {
			b.Fatalf("%v\nserver log:\n%s", err, p.Log())
		}
		b.ReportMetric(kib, "KiB/conn")
		b.ReportMetric(cpu, "cpu-ms/s")
		b.ReportMetric(float64(threads), "threads")
	}
}
