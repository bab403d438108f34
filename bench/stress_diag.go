package bench

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// StressDiagnosis looks at where our time goes during the many-sessions
// line (bench/ANALYSIS.md): pg_stat_statements over the command phase, what
// the backends are doing and waiting for (pg_stat_activity and ungranted
// pg_locks, sampled every 50 ms), the WAL flushes, a CPU profile, a
// goroutine dump and an execution trace of `decimail serve` (its -pprof
// listener).
type StressDiagnosis struct {
	Dir string // where the profile and the goroutine dump go (default: the temp dir)

	pprofAddr string
	adminAddr string // decimail serve -admin: /metrics
}

// settings are the Postgres settings the diagnosis needs.
func (d *StressDiagnosis) settings() []string {
	return []string{"shared_preload_libraries=pg_stat_statements", "pg_stat_statements.track=all", "pg_stat_statements.track_planning=on",
		"track_io_timing=on", "track_wal_io_timing=on"}
}

// start begins sampling; the returned func stops it and logs the findings.
func (d *StressDiagnosis) start(ctx context.Context, dur *Durable, cfg StressConfig) func() {
	logf := cfg.Log
	dir := d.Dir
	if dir == "" {
		dir = os.TempDir()
	}
	conn, err := pgx.Connect(ctx, dur.DSN)
	if err != nil {
		logf("diagnosis: %v", err)
		return func() {}
	}
	for _, q := range []string{"CREATE EXTENSION IF NOT EXISTS pg_stat_statements", "SELECT pg_stat_statements_reset()",
		"SELECT pg_stat_reset_shared('wal')", "SELECT pg_stat_reset()"} {
		if _, err := conn.Exec(ctx, q); err != nil {
			logf("diagnosis: %s: %v", q, err)
		}
	}
	sctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var mu sync.Mutex
	activity := map[string]int{} // "state wait_event_type:wait_event" -> samples
	locks := map[string]int{}    // ungranted "locktype relation mode" -> samples
	active := map[string]int{}   // active backends' statement (first 70 chars) -> samples
	samples := 0
	wg.Go(func() {
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-sctx.Done():
				return
			case <-t.C:
			}
			rows, err := conn.Query(sctx, `SELECT state, coalesce(wait_event_type, '-') || ':' || coalesce(wait_event, '-'),
					left(regexp_replace(query, '\s+', ' ', 'g'), 70)
				FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'`)
			if err != nil {
				continue
			}
			mu.Lock()
			samples++
			var st, wait, q string
			pgx.ForEachRow(rows, []any{&st, &wait, &q}, func() error {
				activity[st+" "+wait]++
				if st == "active" {
					active[wait+" "+q]++
				}
				return nil
			})
			mu.Unlock()
			rows, err = conn.Query(sctx, `SELECT locktype || ' ' || coalesce(relation::regclass::text, '') || ' ' || mode
				FROM pg_locks WHERE NOT granted`)
			if err != nil {
				continue
			}
			mu.Lock()
			pgx.ForEachRow(rows, []any{&q}, func() error { locks[q]++; return nil })
			mu.Unlock()
		}
	})
	get := func(path, file string) {
		resp, err := http.Get("http://" + d.pprofAddr + path)
		if err != nil {
			logf("diagnosis: pprof %s: %v", path, err)
			return
		}
		defer resp.Body.Close()
		f, err := os.Create(file)
		if err != nil {
			logf("diagnosis: %v", err)
			return
		}
		io.Copy(f, resp.Body)
		f.Close()
		logf("diagnosis: wrote %s", file)
	}
	secs := max(1, int(cfg.Duration.Seconds())-4)
	prof := fmt.Sprintf("%s/stress-serve-%d.pprof", dir, time.Now().Unix())
	wg.Go(func() {
		// The login storm takes the first seconds: start with the mix.
		select {
		case <-sctx.Done():
			return
		case <-time.After(3 * time.Second):
		}
		get(fmt.Sprintf("/debug/pprof/profile?seconds=%d", secs), prof)
	})
	wg.Go(func() {
		select {
		case <-sctx.Done():
			return
		case <-time.After(cfg.Duration / 2):
		}
		get("/debug/pprof/goroutine?debug=1", strings.TrimSuffix(prof, ".pprof")+".goroutines.txt")
		// An execution trace of 3 s: where a session's command waits
		// (`go tool trace -pprof=sched|sync|net FILE`: for the CPU, a lock,
		// the network).
		get("/debug/pprof/trace?seconds=3", strings.TrimSuffix(prof, ".pprof")+".trace")
	})
	return func() {
		cancel()
		wg.Wait()
		// The server's own counters of how sessions read changes.
		if resp, err := http.Get("http://" + d.adminAddr + "/metrics"); err != nil {
			logf("diagnosis: metrics: %v", err)
		} else {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			for _, l := range strings.Split(string(b), "\n") {
				// and how long the server took per command, from its
				// dispatch to its reply (the client's figures add the
				// network and both sides' waits for a CPU)
				if strings.HasPrefix(l, "decimail_change_") || strings.HasPrefix(l, "decimail_imap_command_duration_seconds_bucket") &&
					(strings.Contains(l, `"UID FETCH"`) || strings.Contains(l, `"UID SEARCH"`)) && strings.Contains(l, `status="OK"`) {
					logf("diagnosis: %s", l)
				}
			}
		}
		mu.Lock()
		defer mu.Unlock()
		top := func(title string, m map[string]int, n int) {
			keys := slices.SortedFunc(maps.Keys(m), func(a, b string) int { return m[b] - m[a] })
			logf("diagnosis: %s (average backends over %d samples):", title, samples)
			for _, k := range keys[:min(n, len(keys))] {
				logf("  %6.2f  %s", float64(m[k])/float64(max(samples, 1)), k)
			}
		}
		top("backends by state and wait event", activity, 15)
		top("active backends by wait event and statement", active, 25)
		top("ungranted locks", locks, 10)
		rows, err := conn.Query(ctx, `SELECT calls, round(total_exec_time::numeric, 0), round(mean_exec_time::numeric, 2),
				round(max_exec_time::numeric, 1), round(total_plan_time::numeric, 0), plans, rows,
				left(regexp_replace(query, '\s+', ' ', 'g'), 100)
			FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
			ORDER BY total_exec_time + total_plan_time DESC LIMIT 25`)
		if err == nil {
			logf("diagnosis: pg_stat_statements by total time (calls, total ms, mean ms, max ms, planning ms, plans, rows, statement):")
			var calls, plans, nrows int64
			var total, mean, mx, plan float64
			var q string
			pgx.ForEachRow(rows, []any{&calls, &total, &mean, &mx, &plan, &plans, &nrows, &q}, func() error {
				logf("  %7d %8.0f %7.2f %7.1f %7.0f %7d %8d  %s", calls, total, mean, mx, plan, plans, nrows, q)
				return nil
			})
		} else {
			logf("diagnosis: pg_stat_statements: %v", err)
		}
		var walRec, walSync, walWrite int64
		var walSyncMs, walWriteMs float64
		if err := conn.QueryRow(ctx, `SELECT wal_records, wal_write, wal_sync, wal_write_time, wal_sync_time FROM pg_stat_wal`).
			Scan(&walRec, &walWrite, &walSync, &walWriteMs, &walSyncMs); err == nil {
			logf("diagnosis: WAL: %d records, %d writes (%.0f ms), %d syncs (%.0f ms, %.2f ms each)", walRec, walWrite, walWriteMs,
				walSync, walSyncMs, walSyncMs/float64(max(walSync, 1)))
		}
		var commits, rollbacks int64
		if err := conn.QueryRow(ctx, `SELECT xact_commit, xact_rollback FROM pg_stat_database WHERE datname = current_database()`).
			Scan(&commits, &rollbacks); err == nil {
			logf("diagnosis: %d commits, %d rollbacks", commits, rollbacks)
		}
		conn.Close(ctx)
	}
}

// keepLog copies the server's log into Dir before the process goes.
func (d *StressDiagnosis) keepLog(p *Process, logf func(string, ...any)) {
	b, err := os.ReadFile(filepath.Join(p.dir, "serve.log"))
	if err != nil {
		logf("diagnosis: %v", err)
		return
	}
	dir := d.Dir
	if dir == "" {
		dir = os.TempDir()
	}
	f := filepath.Join(dir, fmt.Sprintf("stress-serve-%d.log", time.Now().Unix()))
	if err := os.WriteFile(f, b, 0o644); err != nil {
		logf("diagnosis: %v", err)
		return
	}
	logf("diagnosis: wrote %s", f)
}
