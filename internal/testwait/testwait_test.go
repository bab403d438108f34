package testwait

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// recorder is a testing.TB whose Fatalf records the message and ends the
// goroutine, as the real one does.
type recorder struct {
	testing.TB
	msg string
}

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(format string, args ...any) {
	r.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// run calls f with a recorder in its own goroutine and returns what it
// failed with ("" when it did not).
func run(f func(testing.TB)) string {
	r := &recorder{}
	done := make(chan struct{})
	go func() { defer close(done); f(r) }()
	<-done
	return r.msg
}

func TestFor(t *testing.T) {
	n := 0
	if msg := run(func(tb testing.TB) {
		For(tb, 5*time.Second, "the third call", func() (bool, string) { n++; return n == 3, strconv.Itoa(n) })
	}); msg != "" || n != 3 {
		t.Fatalf("For: %d calls, failed with %q", n, msg)
	}
	msg := run(func(tb testing.TB) {
		For(tb, 50*time.Millisecond, "never", func() (bool, string) { return false, "still no" })
	})
	if !strings.Contains(msg, "waiting for never") || !strings.Contains(msg, "last seen: still no") {
		t.Fatalf("timeout message %q", msg)
	}
}

// orphan starts `sleep secs` in the background of a shell that exits at
// once, so the sleep is not this process's child, and returns its pid.
func orphan(t *testing.T, secs string) int {
	t.Helper()
	out, err := exec.Command("sh", "-c", "sleep "+secs+" >/dev/null 2>&1 & echo $!").Output()
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

func TestExited(t *testing.T) {
	// A process that ends by itself (its sleep is the behaviour waited for).
	short, err := Pin(orphan(t, "0.2"))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if msg := run(func(tb testing.TB) { Exited(tb, 10*time.Second, "sleep 0.2", short) }); msg != "" {
		t.Fatal(msg)
	}
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Fatalf("Exited returned after %v, before the process could have exited", d)
	}
	// Gone, or a zombie until whoever adopted it reaps it.
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", short.Pid)); err == nil && !strings.Contains(string(b), ") Z ") {
		t.Errorf("pid %d still running after Exited: %s", short.Pid, b)
	}

	long, err := Pin(orphan(t, "60"))
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Kill(long.Pid, syscall.SIGKILL)
	msg := run(func(tb testing.TB) { Exited(tb, 100*time.Millisecond, "sleep 60", long) })
	if !strings.Contains(msg, fmt.Sprintf("pids [%d] still running", long.Pid)) {
		t.Fatalf("timeout message %q", msg)
	}
}
