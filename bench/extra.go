package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/emersion/go-smtp"

	"decimail/internal/imaptest"
	"decimail/server/smtpd"
	"decimail/server/store"
)

// SMTPThroughput delivers total messages to u@bench.test through Decimail's
// MX listener (smtpd on st) with senders concurrent connections, one
// transaction per message, and returns messages per second.
func SMTPThroughput(st *store.Store, msgs []Message, senders, total int) (float64, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	srv := smtpd.New(smtpd.Config{Hostname: "bench.test"}, st, nil)
	go srv.ServeMX(ln)
	defer srv.Close()
	var wg sync.WaitGroup
	errs := make([]error, senders)
	t0 := time.Now()
	for s := range senders {
		wg.Go(func() {
			c, err := smtp.Dial(ln.Addr().String())
			if err != nil {
				errs[s] = err
				return
			}
			defer c.Close()
			if err := c.Hello("sender.example"); err != nil {
				errs[s] = err
				return
			}
			for i := s; i < total; i += senders {
				m := msgs[i%len(msgs)]
				if err := c.Mail("sender@example.com", nil); err != nil {
					errs[s] = err
					return
				}
				if err := c.Rcpt("u@bench.test", nil); err != nil {
					errs[s] = err
					return
				}
				w, err := c.Data()
				if err != nil {
					errs[s] = err
					return
				}
				if _, err := w.Write(m.Raw); err != nil {
					errs[s] = err
					return
				}
				if err := w.Close(); err != nil {
					errs[s] = err
					return
				}
			}
			errs[s] = c.Quit()
		})
	}
	wg.Wait()
	d := time.Since(t0)
	if err := errors.Join(errs...); err != nil {
		return 0, err
	}
	return float64(total) / d.Seconds(), nil
}

// Process is a server running as its own OS process (for memory).
type Process struct {
	Target
	cmd *exec.Cmd
	dir string
}

// PIDs are the process and its children.
func (p *Process) PIDs() []int { return descendants(p.cmd.Process.Pid) }

// PID is the process's id.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Log returns the tail of the process's log.
func (p *Process) Log() string {
	b, _ := os.ReadFile(filepath.Join(p.dir, "serve.log"))
	// The WARN and ERROR lines first (up to 20): under thousands of
	// sessions the tail is only their INFO lines.
	var bad []string
	for _, l := range strings.Split(string(b), "\n") {
		if (strings.Contains(l, "level=ERROR") || strings.Contains(l, "level=WARN")) && len(bad) < 20 {
			bad = append(bad, l)
		}
	}
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return strings.Join(bad, "\n") + "\n…\n" + string(b)
}

// Close stops the process.
func (p *Process) Close() {
	p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-done
	}
	os.RemoveAll(p.dir)
}

// moduleRoot finds the directory of go.mod.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", err
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside the decimail module")
	}
	return filepath.Dir(gomod), nil
}

// StartServe builds ./server/cmd/decimail (or takes the binary
// DECIMAIL_BENCH_SERVE_BIN names) and runs `decimail serve` (IMAP only) on
// dsn as a separate process; args are more flags (e.g. -pprof).
func StartServe(ctx context.Context, dsn string, args ...string) (*Process, error) {
	root, err := moduleRoot()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "decimail-bench-serve-")
	if err != nil {
		return nil, err
	}
	bin := os.Getenv("DECIMAIL_BENCH_SERVE_BIN") // a binary built elsewhere (another commit, for before/after)
	if bin == "" {
		bin = filepath.Join(dir, "decimail")
		build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./server/cmd/decimail")
		build.Dir = root
		if out, err := build.CombinedOutput(); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("go build: %v\n%s", err, out)
		}
	}
	addr, err := freeLoopback()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	cmd := exec.Command(bin, append([]string{"serve", "-imap", addr, "-smtp", "", "-submission", ""}, args...)...)
	cmd.Env = append(os.Environ(), "DECIMAIL_DATABASE_URL="+dsn, "DECIMAIL_SPOOL="+filepath.Join(dir, "spool"))
	logf, err := os.Create(filepath.Join(dir, "serve.log"))
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	p := &Process{cmd: cmd, dir: dir}
	p.Addr, p.NotifyAddr, p.Name, p.User, p.Pass = addr, addr, "decimail serve", "u", "pw"
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return p, nil
		}
		if time.Now().After(deadline) {
			out, _ := os.ReadFile(logf.Name())
			p.Close()
			return nil, fmt.Errorf("decimail serve did not listen on %s:\n%s", addr, out)
		}
	}
}

// MemoryPerIdle opens conns connections to t (LOGIN, SELECT IdleBox, IDLE)
// and returns the growth of the server processes' memory per connection
// in KiB: PSS summed over pids() (for one Go process PSS ≈ RSS; for a
// forking server it splits shared pages fairly). The whileHeld functions run
// after the measure, while the connections are still open (e.g. to save
// the server's heap profile).
func MemoryPerIdle(t *Target, pids func() []int, conns int, whileHeld ...func() error) (float64, error) {
	open := func() (*imaptest.Client, error) {
		c, err := Login(t.Addr, t.User, t.Pass)
		if err != nil {
			return nil, err
		}
		if err := c.Stream("SELECT IdleBox", nil); err != nil {
			c.Close()
			return nil, err
		}
		c.Queue("IDLE")
		if err := c.Flush(); err != nil {
			c.Close()
			return nil, err
		}
		r, err := c.ReadRaw()
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("IDLE: %w", err)
		}
		if r.Bytes[0] != '+' {
			c.Close()
			return nil, fmt.Errorf("IDLE: %q", r.Line())
		}
		return c, nil
	}
	// Warm up: pools, caches, the first session's one-off allocations.
	var held []*imaptest.Client
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for range 20 {
		c, err := open()
		if err != nil {
			return 0, err
		}
		held = append(held, c)
	}
	time.Sleep(time.Second)
	before := PSS(pids())
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	var firstErr error
	for range conns {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			c, err := open()
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if firstErr == nil {
					firstErr = err
				}
				return
			}
			held = append(held, c)
		})
	}
	wg.Wait()
	if firstErr != nil {
		return 0, fmt.Errorf("%d connections open: %w", len(held), firstErr)
	}
	time.Sleep(2 * time.Second)
	after := PSS(pids())
	for _, f := range whileHeld {
		if err := f(); err != nil {
			return 0, err
		}
	}
	return float64(after-before) / float64(conns), nil
}

// CPUOf sums the user+system CPU seconds of the live processes named comm
// (e.g. every postgres backend: the pool's connections live through a run).
func CPUOf(comm string) float64 {
	ds, _ := os.ReadDir("/proc")
	var ticks float64
	for _, d := range ds {
		if c, t, ok := procStat(d.Name()); ok && c == comm {
			ticks += t
		}
	}
	return ticks / 100 // USER_HZ
}

// procStat reads /proc/pid/stat: the command name and the user + system
// CPU in clock ticks (USER_HZ, 100 a second).
func procStat(pid string) (comm string, ticks float64, ok bool) {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return "", 0, false
	}
	s := string(b)
	i, j := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if i < 0 || j < i {
		return "", 0, false
	}
	f := strings.Fields(s[j+2:])
	var u, k float64
	fmt.Sscan(f[11], &u)
	fmt.Sscan(f[12], &k)
	return s[i+1 : j], u + k, true
}

// SelfCPU is this process's user+system CPU seconds.
func SelfCPU() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// freeLoopback returns a loopback address with a port free at the time of
// the call, for a flag of a process started next (-pprof, -admin).
func freeLoopback() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// saveProfiles saves the named net/http/pprof profiles of the server whose
// -pprof listens on addr into dir as <name>.pprof (heap: gc=1 first, so it
// counts live memory).
func saveProfiles(addr, dir string, names ...string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, n := range names {
		q := ""
		if n == "heap" {
			q = "?gc=1"
		}
		resp, err := http.Get("http://" + addr + "/debug/pprof/" + n + q)
		if err != nil {
			return err
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("pprof %s: %s", n, resp.Status)
		}
		if err := os.WriteFile(filepath.Join(dir, n+".pprof"), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// IdleLoad measures the processes pids over d: the CPU they used (ms of
// CPU per second of wall time, user + system) and their OS threads at the
// end. A server holding idle connections should use neither.
func IdleLoad(pids []int, d time.Duration) (cpuMsPerSec float64, threads int) {
	ticks := func() (t float64) {
		for _, p := range pids {
			_, pt, _ := procStat(strconv.Itoa(p))
			t += pt
		}
		return t
	}
	t0, w0 := ticks(), time.Now()
	time.Sleep(d)
	cpu := (ticks() - t0) * 10 / time.Since(w0).Seconds() // USER_HZ ticks → ms
	for _, p := range pids {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", p))
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "Threads:"); ok {
				n, _ := strconv.Atoi(strings.TrimSpace(v))
				threads += n
			}
		}
	}
	return cpu, threads
}
