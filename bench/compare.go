package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/crypto/bcrypt"

	"decimail/server/store"
)

// CompareConfig says what one side-by-side run does.
type CompareConfig struct {
	N         int    // corpus size
	Seed      uint64 // corpus seed
	SMTPTotal int    // messages for the SMTP throughput line (8 senders)
	// SMTPSustained, if > 0, is a second, longer run past the indexer's
	// backlog (store/indexer.go), where text indexing runs alongside.
	SMTPSustained int
	IdleConns     int // idle IDLE connections held for the memory line (ours)
	// DovecotIdleConns is smaller: every Dovecot connection is a process.
	DovecotIdleConns int
	// Stress, if set, runs the many-sessions line (stress.go) on a durable
	// cluster of its own and a Dovecot of its own.
	Stress *StressConfig
	// Durable, if set, measures the IMAP lines a second time on Decimail as
	// production runs it (a durable cluster, fsync and synchronous_commit
	// on; `decimail serve` as separate processes), against Dovecot again,
	// alternately: issue 15's lines must hold there, not only on the fast
	// test cluster.
	Durable bool
	Log     func(format string, args ...any)
}

// Row is one line of the comparison table.
type Row struct {
	Name, Stat, Unit, Goal string
	Ours, Dovecot          float64 // 0 = not measured
	OursErr, DovecotErr    string
}

// Ratio is ours/Dovecot (0 when either is missing).
func (r Row) Ratio() float64 {
	if r.Ours == 0 || r.Dovecot == 0 {
		return 0
	}
	return r.Ours / r.Dovecot
}

// Report is the outcome of one comparison at one size.
type Report struct {
	N            int
	Settings     string // the DECIMAIL_BENCH_* settings of a partial run, for the header
	Rows         []Row
	Notes        []string
	Started      time.Time
	Took         time.Duration
	Machine      string
	LoadBefore   string
	LoadAfter    string
	OursLoad     time.Duration // store.Deliver of the corpus
	DovecotLoad  time.Duration // IMAP APPEND of the corpus
	CorpusBytes  int64
	PostgresVer  string
	DovecotVer   string
	CorpusMedian int
}

// Compare loads the same corpus into Decimail (through the store) and a
// private Dovecot (over IMAP APPEND), then puts both through IMAPLines, one
// line at a time for both servers (so background load hits both alike), and
// adds the lines only ours has (SMTP delivery, memory per idle connection).
func Compare(ctx context.Context, cfg CompareConfig) (*Report, error) {
	logf := cfg.Log
	if logf == nil {
		logf = func(string, ...any) {}
	}
	rep := &Report{N: cfg.N, Started: time.Now(), LoadBefore: loadAvg(), Machine: machine(), DovecotVer: DovecotVersion()}
	msgs := Corpus(cfg.N, cfg.Seed)
	sizes := make([]int, len(msgs))
	for i, m := range msgs {
		rep.CorpusBytes += int64(len(m.Raw))
		sizes[i] = len(m.Raw)
	}
	rep.CorpusMedian = median(sizes)

	ours, err := StartOurs(ctx)
	if err != nil {
		return nil, err
	}
	defer ours.Close()
	ours.Store.Pool().QueryRow(ctx, "SHOW server_version").Scan(&rep.PostgresVer)
	t0 := time.Now()
	if err := LoadStore(ctx, ours.Store, ours.UserID, "INBOX", msgs); err != nil {
		return nil, fmt.Errorf("load ours: %w", err)
	}
	rep.OursLoad = time.Since(t0)
	logf("decimail: %d messages delivered through the store in %v", cfg.N, rep.OursLoad)
	envO, err := Prepare(&ours.Target, msgs, func(name, def string) error {
		_, err := ours.Store.DefineMailbox(ctx, ours.UserID, name, def)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("prepare ours: %w", err)
	}
	// Statistics and the visibility map, as autovacuum would have them on a
	// server in use and as the durable section has them (Durable.LoadFolder).
	if _, err := ours.Store.Pool().Exec(ctx, "VACUUM (ANALYZE)"); err != nil {
		return nil, err
	}

	var envD *Env
	var dov *Dovecot
	if rep.DovecotVer == "" {
		rep.Notes = append(rep.Notes, "Dovecot is not installed: only our column is measured.")
	} else {
		// The views as virtual-plugin mailboxes, for the one line that reads
		// them (built when Prepare first opens them: minutes at 100k).
		var virtual map[string]string
		if only := selectedLines(); len(only) == 0 || only["StoreUnseenThenStatusVirtual"] {
			virtual = VirtualViews(msgs)
		}
		if dov, err = StartDovecot(virtual); err != nil {
			return nil, err
		}
		defer dov.Close()
		t0 = time.Now()
		if err := LoadIMAP(dov.Addr, dov.User, dov.Pass, "INBOX", msgs); err != nil {
			return nil, fmt.Errorf("load dovecot: %w", err)
		}
		rep.DovecotLoad = time.Since(t0)
		logf("dovecot: %d messages appended in %v", cfg.N, rep.DovecotLoad)
		if envD, err = Prepare(&dov.Target, msgs, nil); err != nil {
			return nil, fmt.Errorf("prepare dovecot: %w", err)
		}
	}

	if err := settle(ctx, ours.Store.Pool()); err != nil {
		return nil, err
	}
	// The corpus (2.2 GB at 100,000 messages) is not held while lines are
	// measured: it is made again, the same, where it is needed next.
	msgs = nil
	letGo()
	rep.Rows = append(rep.Rows, measureLines(envO, envD, "", logf, func() string { return activity(ctx, ours.Store.Pool()) })...)
	corpus := func() []Message { return Corpus(cfg.N, cfg.Seed) }
	if cfg.Durable {
		rows, err := durableLines(ctx, corpus, envD, logf)
		if err != nil {
			rep.Notes = append(rep.Notes, "The durable section failed: "+err.Error())
		}
		rep.Rows = append(rep.Rows, rows...)
	}

	// Delivery: ours over SMTP; Dovecot's own LDA/LMTP is not set up, so its
	// column is the IMAP APPEND load above (a different path; not a ratio).
	if cfg.SMTPTotal > 0 || cfg.SMTPSustained > 0 {
		msgs = corpus()
		// The making's garbage, not collected while delivering; its pages
		// stay with the process (no debug.FreeOSMemory: the 400-message
		// burst measured 233 and 259 msg/s with it, bench/ANALYSIS.md).
		runtime.GC()
	}
	if cfg.SMTPTotal > 0 {
		pg0, self0 := CPUOf("postgres"), SelfCPU()
		rate, err := SMTPThroughput(ours.Store, msgs, 8, cfg.SMTPTotal)
		n := float64(cfg.SMTPTotal)
		rep.Notes = append(rep.Notes, fmt.Sprintf("SMTP delivery, CPU per message: Postgres backends %.2f ms, this process "+
			"(smtpd, store, and the 8 sending clients) %.2f ms; the machine has %d CPUs.",
			(CPUOf("postgres")-pg0)/n*1000, (SelfCPU()-self0)/n*1000, runtime.NumCPU()))
		rep.Rows = append(rep.Rows, Row{Name: fmt.Sprintf("SMTP delivery, 8 senders, %d messages (with the user's %d views)", cfg.SMTPTotal, Views+3),
			Stat: "rate", Unit: "msg/s", Goal: "≥ 300 msg/s", Ours: rate, OursErr: errString(err)})
		logf("smtp: %.0f msg/s %v", rate, err)
		// The texts of the burst are indexed once it is over: how long that takes.
		k, took, cpu, err := indexLeft(ctx, ours.Store)
		rep.Notes = append(rep.Notes, fmt.Sprintf("After the SMTP burst, %d texts were still unindexed; the store's indexer "+
			"(off the delivery path) had indexed them all %v later, %.2f ms of Postgres CPU per text%s.", k, took.Round(time.Millisecond),
			cpu/float64(max(k, 1))*1000, errNote(err)))
	}
	if cfg.SMTPSustained > 0 {
		rate, err := SMTPThroughput(ours.Store, msgs, 8, cfg.SMTPSustained)
		rep.Rows = append(rep.Rows, Row{Name: fmt.Sprintf("SMTP delivery, 8 senders, %d messages: sustained, text indexing alongside "+
			"(past the indexer's backlog of %d)", cfg.SMTPSustained, store.IndexBacklog),
			Stat: "rate", Unit: "msg/s", Ours: rate, OursErr: errString(err)})
		logf("smtp sustained: %.0f msg/s %v", rate, err)
	}
	if cfg.IdleConns > 0 {
		row := Row{Name: fmt.Sprintf("memory per idle IDLE connection (ours: %d held, separate `decimail serve` process; Dovecot: %d held)",
			cfg.IdleConns, cfg.DovecotIdleConns), Stat: "PSS delta", Unit: "KiB/conn", Goal: "≤ 64 KiB"}
		// While they are held: the CPU the servers use, per 1,000 idle
		// connections (an idle session should cost none).
		cpu := Row{Name: fmt.Sprintf("CPU while the idle IDLE connections are held (5 s; ours: %d, Dovecot: %d), per 1,000 connections",
			cfg.IdleConns, cfg.DovecotIdleConns), Stat: "mean", Unit: "ms CPU/s", Goal: "≤ 10 ms"}
		load := func(pids func() []int, conns int, v *float64, threads *int) func() error {
			return func() error {
				ms, n := IdleLoad(pids(), 5*time.Second)
				*v, *threads = ms*1000/float64(conns), n
				return nil
			}
		}
		var oursThreads, dovThreads int
		p, err := StartServe(ctx, ours.DSN)
		if err == nil {
			row.Ours, err = MemoryPerIdle(&p.Target, p.PIDs, cfg.IdleConns, load(p.PIDs, cfg.IdleConns, &cpu.Ours, &oursThreads))
			if err != nil {
				logf("decimail serve log:\n%s", p.Log())
			}
			p.Close()
		}
		row.OursErr, cpu.OursErr = errString(err), errString(err)
		if envD != nil && cfg.DovecotIdleConns > 0 {
			v, err := MemoryPerIdle(&dov.Target, dov.PIDs, cfg.DovecotIdleConns, load(dov.PIDs, cfg.DovecotIdleConns, &cpu.Dovecot, &dovThreads))
			row.Dovecot, row.DovecotErr = v, errString(err)
			cpu.DovecotErr = row.DovecotErr
		}
		rep.Rows = append(rep.Rows, row, cpu)
		logf("memory: ours %.1f KiB/conn (%s), dovecot %.1f KiB/conn (%s)", row.Ours, row.OursErr, row.Dovecot, row.DovecotErr)
		logf("idle CPU per 1,000 connections: ours %.2f ms/s (%d threads), dovecot %.2f ms/s (%d threads)", cpu.Ours, oursThreads, cpu.Dovecot, dovThreads)
	}
	if cfg.Stress != nil {
		sc := *cfg.Stress
		if sc.Log == nil {
			sc.Log = logf
		}
		rows, notes, err := CompareStress(ctx, sc)
		if err != nil {
			rows = StressRows(sc, nil, nil, err, err)
		}
		for _, row := range rows {
			logf("%-90s ours %9.2f  dovecot %9.2f  %s%s", row.Name, row.Ours, row.Dovecot, row.OursErr, row.DovecotErr)
		}
		rep.Rows = append(rep.Rows, rows...)
		rep.Notes = append(rep.Notes, notes...)
	}
	rep.Took = time.Since(rep.Started)
	rep.LoadAfter = loadAvg()
	return rep, nil
}

// measureLines puts both envs through IMAPLines, one line at a time for both
// (envD may be nil); suffix marks the rows' names. probe (may be nil) says
// what ours' database did meanwhile (activity); when it changed during a
// line, the log has that and the line's samples in the order measured.
func measureLines(envO, envD *Env, suffix string, logf func(string, ...any), probe func() string) []Row {
	var rows []Row
	only := selectedLines()
	for _, l := range IMAPLines() {
		if len(only) > 0 && !only[l.Key] {
			continue
		}
		if envD != nil {
			// The lines that read messages not read before take the same
			// ones on both servers (the durable section's env of ours is
			// new, Dovecot's the fast section's).
			envO.next = max(envO.next, envD.next)
			envD.next = envO.next
		}
		var before string
		if probe != nil {
			before = probe()
		}
		ro := Measure(envO, l)
		if probe != nil {
			if after := probe(); after != before {
				logf("%-90s during ours: %s → %s; samples in run order %s", l.Key+suffix, before, after, fmtSamples(ro.InOrder))
			}
		}
		var rd Result
		if envD != nil {
			rd = Measure(envD, l)
		}
		stats := l.Stats
		if len(stats) == 0 {
			stats = []string{"median"}
		}
		for _, st := range stats {
			row := Row{Name: l.Name + suffix, Stat: st, Unit: "ms", Goal: l.Goal}
			if len(stats) > 1 {
				row.Name = l.Name + " (" + st + ")" + suffix
				if st != "p99" {
					row.Goal = ""
				}
			}
			row.Ours, row.OursErr = ro.Values[st], errString(ro.Err)
			if envD != nil {
				row.Dovecot, row.DovecotErr = rd.Values[st], errString(rd.Err)
			}
			rows = append(rows, row)
			logf("%-90s ours %9.2f  dovecot %9.2f  %s%s", row.Name, row.Ours, row.Dovecot, row.OursErr, row.DovecotErr)
		}
		// Every sample, sorted: whether a median moved with all of them or
		// with a few (a spread across runs is diagnosed from these).
		logf("%-90s samples ours %s  dovecot %s", l.Key+suffix, fmtSamples(ro.Samples), fmtSamples(rd.Samples))
	}
	return rows
}

// indexLeft counts the texts not indexed yet, then indexes them: the
// store's own indexer, which starts once deliveries pause, and IndexTexts
// share the work (SKIP LOCKED), so what IndexTexts returns is not how many
// were left. It returns that count, the time until none is left, and the
// Postgres CPU meanwhile (seconds).
func indexLeft(ctx context.Context, st *store.Store) (left int, took time.Duration, pgCPU float64, err error) {
	t0, pg0 := time.Now(), CPUOf("postgres")
	count := func() (n int, err error) {
		err = st.Pool().QueryRow(ctx, `SELECT count(*) FROM message_texts WHERE NOT indexed`).Scan(&n)
		return n, err
	}
	if left, err = count(); err != nil {
		return 0, 0, 0, err
	}
	for n := left; n > 0; time.Sleep(10 * time.Millisecond) {
		if _, err = st.IndexTexts(ctx); err != nil {
			break
		}
		if n, err = count(); err != nil {
			break
		}
		if time.Since(t0) > 5*time.Minute {
			err = fmt.Errorf("%d texts still unindexed after %v", n, time.Since(t0).Round(time.Second))
			break
		}
	}
	return left, time.Since(t0), CPUOf("postgres") - pg0, err
}

// selectedLines is the set of line keys DECIMAIL_BENCH_LINES names (empty:
// every line).
func selectedLines() map[string]bool {
	only := map[string]bool{}
	for _, k := range strings.Split(os.Getenv("DECIMAIL_BENCH_LINES"), ",") {
		if k != "" {
			only[k] = true
		}
	}
	return only
}

// fmtSamples writes samples as "[1.2 3.4]", at most 40 of them.
func fmtSamples(v []float64) string {
	if len(v) > 40 {
		v = v[:40]
	}
	var b strings.Builder
	b.WriteByte('[')
	for i, x := range v {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(strconv.FormatFloat(x, 'f', 2, 64))
	}
	b.WriteByte(']')
	return b.String()
}

// DurableSuffix marks the rows measured on Decimail as production runs it.
const DurableSuffix = " [durable, separate process]"

// settle writes out what a bulk load left to write before lines are
// measured: Postgres's dirty buffers (CHECKPOINT) and the system's dirty
// pages (sync(2): a maildir just written, a cluster's files). Measured in
// the middle of that, a durable COMMIT waited behind the load's writes:
// IDLE p99 41 ms at 100,000 messages (bench/ANALYSIS.md).
func settle(ctx context.Context, pool *pgxpool.Pool) error {
	if _, err := pool.Exec(ctx, "CHECKPOINT"); err != nil {
		return err
	}
	syscall.Sync()
	return nil
}

// checkpoints describes the checkpoints the cluster started so far: after
// one begins, the first change of each page writes the whole page to the
// WAL, so a STORE run right after one costs more (bench/ANALYSIS.md). The
// checkpointer reports its counters when a checkpoint ends, and may be a
// moment late: one ending as a line ends may show in the next line's log.
func checkpoints(ctx context.Context, pool *pgxpool.Pool) string {
	var timed, req int64
	if err := pool.QueryRow(ctx, `SELECT checkpoints_timed, checkpoints_req FROM pg_stat_bgwriter`).Scan(&timed, &req); err != nil {
		return "checkpoints unknown (" + err.Error() + ")"
	}
	return fmt.Sprintf("checkpoints timed %d, requested %d", timed, req)
}

// autovacuums counts the runs of autovacuum and autoanalyze on the
// database's tables so far: one during a line competes with it for the
// machine's two cores and for the rows it changes (the 10k +FLAGS row of
// one run had 3 of 5 samples 20 ms slower, bench/ANALYSIS.md). Like the
// checkpointer, a worker reports its counts when it is done.
func autovacuums(ctx context.Context, pool *pgxpool.Pool) string {
	var n int64
	if err := pool.QueryRow(ctx, `SELECT coalesce(sum(autovacuum_count + autoanalyze_count), 0) FROM pg_stat_user_tables`).Scan(&n); err != nil {
		return "autovacuum runs unknown (" + err.Error() + ")"
	}
	return fmt.Sprintf("autovacuum runs %d", n)
}

// activity is the probe of both sections: checkpoints and autovacuum runs.
func activity(ctx context.Context, pool *pgxpool.Pool) string {
	return checkpoints(ctx, pool) + "; " + autovacuums(ctx, pool)
}

// letGo returns the memory of a dropped corpus to the system before lines
// are measured.
func letGo() {
	runtime.GC()
	debug.FreeOSMemory()
}

// durableLines loads the corpus into a durable cluster (Durable), starts two
// `decimail serve` processes on it (the second is IDLE's other process),
// prepares the same mailboxes and measures the IMAP lines against envD
// again. The account's password hash is of bcrypt's minimum cost here, not
// production's: lines that time a LOGIN compare with Dovecot's plain
// password (the many-sessions line keeps production's cost).
func durableLines(ctx context.Context, corpus func() []Message, envD *Env, logf func(string, ...any)) ([]Row, error) {
	msgs := corpus()
	free := fmt.Sprint(AuthAllowance)
	d, err := StartDurable(ctx, DurableOptions{Config: map[string]string{"auth_addr_free": free, "auth_user_free": free}})
	if err != nil {
		return nil, err
	}
	defer d.Close()
	t0 := time.Now()
	if err := d.LoadFolder(ctx, "INBOX", msgs); err != nil {
		return nil, err
	}
	logf("decimail (durable): %d messages delivered in %v", len(msgs), time.Since(t0))
	p1, err := d.Serve(ctx)
	if err != nil {
		return nil, err
	}
	p2, err := d.Serve(ctx)
	if err != nil {
		return nil, err
	}
	st, err := store.Open(ctx, d.DSN, store.Options{PasswordCost: bcrypt.MinCost})
	if err != nil {
		return nil, err
	}
	defer st.Close()
	if err := st.SetPassword(ctx, "u", "pw"); err != nil {
		return nil, err
	}
	tg := p1.Target
	tg.Name, tg.NotifyAddr, tg.User, tg.Pass = "decimail (durable)", p2.Addr, "u", "pw"
	env, err := Prepare(&tg, msgs, func(name, def string) error {
		_, err := st.DefineMailbox(ctx, d.UserID, name, def)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("prepare: %w", err)
	}
	if _, err := st.Pool().Exec(ctx, "VACUUM (ANALYZE)"); err != nil { // as LoadFolder
		return nil, err
	}
	if err := settle(ctx, st.Pool()); err != nil {
		return nil, err
	}
	msgs = nil
	letGo()
	return measureLines(env, envD, DurableSuffix, logf, func() string { return activity(ctx, st.Pool()) }), nil
}

// errNote is err as a parenthesised suffix of a note, or "".
func errNote(err error) string {
	if err == nil {
		return ""
	}
	return " (" + errString(err) + ")"
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	s := err.Error()
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

func median(v []int) int {
	if len(v) == 0 {
		return 0
	}
	s := append([]int{}, v...)
	for i := 1; i < len(s); i++ { // insertion sort is fine for a report
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	return s[len(s)/2]
}

func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func machine() string {
	mem := "?"
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "MemTotal:") {
				var kb int64
				fmt.Sscanf(strings.TrimSpace(l[9:]), "%d", &kb)
				mem = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
			}
		}
	}
	cpu := "?"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				cpu = strings.TrimSpace(l[strings.IndexByte(l, ':')+1:])
				break
			}
		}
	}
	return fmt.Sprintf("%d CPUs (%s), %s RAM, %s/%s, %s", runtime.NumCPU(), cpu, mem, runtime.GOOS, runtime.GOARCH, runtime.Version())
}

// WriteTable prints the rows as an aligned text table.
func (r *Report) WriteTable(w io.Writer) {
	fmt.Fprintf(w, "\n%d messages (%d MB, median %d B); load: decimail %v (store), dovecot %v (APPEND)\n",
		r.N, r.CorpusBytes>>20, r.CorpusMedian, r.OursLoad.Round(time.Millisecond), r.DovecotLoad.Round(time.Millisecond))
	fmt.Fprintf(w, "%-100s %10s %10s %7s  %s\n", "line", "ours", "dovecot", "ratio", "goal")
	for _, row := range r.Rows {
		fmt.Fprintf(w, "%-100s %10s %10s %7s  %s %s\n", row.Name+" ["+row.Unit+"]", cell(row, row.Ours, row.OursErr),
			cell(row, row.Dovecot, row.DovecotErr), ratio(row), row.Goal, verdict(row))
		if row.OursErr != "" {
			fmt.Fprintf(w, "    ours: %s\n", row.OursErr)
		}
		if row.DovecotErr != "" {
			fmt.Fprintf(w, "    dovecot: %s\n", row.DovecotErr)
		}
	}
}

func num(v float64, err string) string {
	switch {
	case err != "":
		return "error"
	case v == 0:
		return "—"
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

// cell is one value of a row: a count (unit "errors") or a CPU use shows
// 0, not "—".
func cell(r Row, v float64, err string) string {
	if (r.Unit == "errors" || r.Unit == "ms CPU/s" && v == 0) && err == "" {
		return fmt.Sprintf("%.0f", v)
	}
	return num(v, err)
}

// ratio is shown for times, and for any row whose goal is a ratio (e.g.
// commands/s, where higher is better: "ratio ≥ 1.0").
func ratio(r Row) string {
	if x := r.Ratio(); x > 0 && (r.Unit == "ms" || strings.HasPrefix(r.Goal, "ratio ")) {
		return fmt.Sprintf("%.2f", x)
	}
	return "—"
}

// verdict checks the goal: ratio goals against the ratio, absolute ones
// against our value.
func verdict(r Row) string {
	var lim float64
	switch {
	case r.Goal == "" || r.OursErr != "":
		return ""
	case strings.HasPrefix(r.Goal, "ratio ≤ "):
		fmt.Sscanf(strings.TrimPrefix(r.Goal, "ratio ≤ "), "%g", &lim)
		if r.Ratio() == 0 {
			return ""
		}
		return pass(r.Ratio() <= lim)
	case strings.HasPrefix(r.Goal, "ratio ≥ "):
		// Higher is better (a rate): ours must reach lim × Dovecot's.
		fmt.Sscanf(strings.TrimPrefix(r.Goal, "ratio ≥ "), "%g", &lim)
		if r.Ratio() == 0 {
			return ""
		}
		return pass(r.Ratio() >= lim)
	case r.Goal == "= 0":
		return pass(r.Ours == 0)
	case strings.HasPrefix(r.Goal, "p99 ≤ "), strings.HasPrefix(r.Goal, "≤ "):
		fmt.Sscanf(r.Goal[strings.Index(r.Goal, "≤ ")+len("≤ "):], "%g", &lim)
		return pass(r.Ours <= lim)
	case strings.HasPrefix(r.Goal, "≥ "):
		fmt.Sscanf(strings.TrimPrefix(r.Goal, "≥ "), "%g", &lim)
		return pass(r.Ours >= lim)
	}
	return ""
}

func pass(ok bool) string {
	if ok {
		return "ok"
	}
	return "MISSED"
}

// WriteMarkdown writes RESULTS.md for one or more reports.
func WriteMarkdown(w io.Writer, reps []*Report) {
	if len(reps) == 0 {
		return
	}
	r0 := reps[0]
	fmt.Fprintf(w, "# Decimail vs Dovecot: benchmark results\n\n")
	how := "`make bench-compare`"
	if r0.Settings != "" {
		how += " with " + r0.Settings
	}
	fmt.Fprintf(w, "Generated by %s (bench/compare.sh → `go test ./bench -run TestCompare -compare`) on %s. Do not edit by hand.\n\n",
		how, r0.Started.UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(w, "## Machine\n\n- %s\n- PostgreSQL %s (private cluster from pgrun: fsync=off, synchronous_commit=off, shared_buffers=256MB)\n- Dovecot %s (private instance: maildir, mail_fsync=optimized, no fts plugin)\n",
		r0.Machine, r0.PostgresVer, r0.DovecotVer)
	for _, r := range reps {
		fmt.Fprintf(w, "- load average (1/5/15 min) at start %s, at end %s; the run took %v\n", r.LoadBefore, r.LoadAfter, r.Took.Round(time.Second))
	}
	fmt.Fprintf(w, "\n## Method\n\n")
	fmt.Fprintf(w, `- Corpus: bench/corpus.go, seed 1, deterministic: median ~8.8 KB, 20%% with base64 attachments,
  plain / multipart/alternative / multipart/mixed, threads (In-Reply-To/References), 30%% list mail (List-Id),
  RFC 2047 subjects, 15%% non-ASCII bodies, dates over two years, 70%% \Seen, 5%% \Flagged, 10%% \Answered;
  each marker word (TEXT searches) is in ~1%% of the messages.
- Decimail: imapd.New(imapd.Config{}, store, nil) on 127.0.0.1, in the benchmark process, on a fresh database
  cloned from the migrated template; loaded through store.Deliver (flags, internal date). A second store + imapd on
  the same database is the "other process" for IDLE. Dovecot: loaded over IMAP APPEND (LITERAL+, MULTIAPPEND
  batches of 64).
- Both get the same %d folders (CREATE + COPY of 50 messages each) and %d more mailboxes: on Decimail query mailboxes
  (DefineMailbox: FROM one correspondent, HEADER List-Id, UNSEEN HEADER List-Id), on Dovecot folders holding
  what the same SEARCH finds (UID COPY). Plus the defaults (Decimail: 6 folders + 3 views; Dovecot: INBOX) and IdleBox.
  Dovecot also has the same views as saved searches over INBOX of its virtual plugin, in a namespace LIST does not
  list (Virtual/, opened once before the lines); only the line that says so reads them, in place of the copies.
- Every IMAP line runs over a real loopback socket with the raw path of the shared client (internal/imaptest:
  Stream) that frames literals and parses nothing else; each line runs on a fresh logged-in session with INBOX selected, once untimed (warm-up:
  both servers' caches), then N times; the table shows the median. Lines run alternately on both servers so
  background load affects both alike. STORE lines restore the flags (untimed) after each run.
- IDLE: an idler on IdleBox, APPEND from a second connection (Decimail: through the second server process-alike,
  i.e. the notification crosses processes through Postgres NOTIFY); the sample is from sending APPEND to reading
  `+"`* n EXISTS`"+` at the idler; 30 samples, p50 and p99.
- SMTP: Decimail's MX listener (smtpd) on the loaded store, 8 concurrent senders, one transaction per message.
  A delivery stores the message's search text unindexed; the store's indexer indexes it once deliveries pause
  (or alongside them past a backlog), so the first SMTP line is a burst without indexing, the note after the table
  says how long the indexing took afterwards, and the sustained line is a run long enough to index alongside.
- Loading (both servers) includes indexing: Decimail's count stops once every text is indexed.
- Memory: a separate `+"`decimail serve`"+` process on the loaded database (ours) and the Dovecot master with all its
  children; connections LOGIN, SELECT IdleBox and IDLE; the figure is the growth of the summed PSS
  (/proc/*/smaps_rollup) divided by the number of connections, after 20 warm-up connections.
- Many sessions on one account (bench/stress.go): ours on a durable cluster of its own (fsync and synchronous_commit
  on, bcrypt of the default cost, `+"`decimail serve`"+` as its own process), Dovecot on an instance of its own with a BLF-CRYPT
  password of the same cost; 50 sessions, 60 s each, one after the other; commands/s is higher-is-better
  (goal "ratio ≥ 1.0"), the p99 rows "ratio ≤ 2.0".
- Rows marked "[durable, separate process]" measure the same IMAP lines again on Decimail as production runs it: a
  durable cluster (fsync and synchronous_commit on), loaded through the store, then two `+"`decimail serve`"+` processes
  (the second is IDLE's other process); Dovecot is measured again alongside. Both Decimail setups raise the failed-login
  allowances (auth_addr_free, auth_user_free) to 5,000: the limiter counts a login as failed until it succeeds, and 50
  clients logging in at once from 127.0.0.1 (and the memory line's 2,000) exceed its defaults.
- Ratio = ours / Dovecot (lower is better for ms). "MISSED" marks a goal from issue 7 not met in this run.
- The machine is shared (other builds and tests run on it; see the load average): absolute numbers are noisy,
  ratios measured in the same run are the comparison.
`, Folders, Views)
	for _, r := range reps {
		fmt.Fprintf(w, "\n## %d messages\n\n", r.N)
		fmt.Fprintf(w, "Corpus %d MB, median message %d B. Loading: Decimail %v through store.Deliver (%.0f msg/s); Dovecot %v over APPEND (%.0f msg/s).\n\n",
			r.CorpusBytes>>20, r.CorpusMedian, r.OursLoad.Round(time.Millisecond), float64(r.N)/r.OursLoad.Seconds(),
			r.DovecotLoad.Round(time.Millisecond), float64(r.N)/max(r.DovecotLoad.Seconds(), 1e-9))
		fmt.Fprintf(w, "| line | unit | ours | Dovecot | ratio ours/Dovecot | goal | |\n|---|---|--:|--:|--:|---|---|\n")
		for _, row := range r.Rows {
			name := strings.ReplaceAll(row.Name, "|", `\|`)
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s |\n", name, row.Unit, cell(row, row.Ours, row.OursErr),
				cell(row, row.Dovecot, row.DovecotErr), ratio(row), row.Goal, verdict(row))
		}
		var errs []string
		for _, row := range r.Rows {
			if row.OursErr != "" {
				errs = append(errs, fmt.Sprintf("- %s, ours: `%s`", row.Name, row.OursErr))
			}
			if row.DovecotErr != "" {
				errs = append(errs, fmt.Sprintf("- %s, Dovecot: `%s`", row.Name, row.DovecotErr))
			}
		}
		if len(errs) > 0 {
			fmt.Fprintf(w, "\nErrors:\n\n%s\n", strings.Join(errs, "\n"))
		}
		for _, n := range r.Notes {
			fmt.Fprintf(w, "\n%s\n", n)
		}
		fmt.Fprintf(w, "\nWhere the time goes on each line, and why the missed ones miss (profiles, SQL traces): [ANALYSIS.md](ANALYSIS.md), written by hand.\n")
	}
}
