package bench

import (
	"os"
	"sync/atomic"
	"testing"
	"time"
)

// IdleLoad sees a process that works: this one, spinning on one core for
// its 300 ms, uses most of a core's second of CPU and runs threads. (The
// comparison's idle-CPU row would read 0 for any server if it did not.)
func TestIdleLoad(t *testing.T) {
	var stop atomic.Bool
	go func() {
		for !stop.Load() {
		}
	}()
	defer stop.Store(true)
	ms, threads := IdleLoad([]int{os.Getpid()}, 300*time.Millisecond)
	if ms < 300 || threads < 1 {
		t.Errorf("IdleLoad of a spinning process: %.0f ms CPU a second, %d threads", ms, threads)
	}
	if CPUOf("bench.test") <= 0 {
		t.Errorf("CPUOf(bench.test) saw no CPU of this process")
	}
}
