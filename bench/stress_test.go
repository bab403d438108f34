package bench

import (
	"bytes"
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// stressConfigFromEnv: DECIMAIL_STRESS_DURATION (default def),
// DECIMAIL_STRESS_SESSIONS (50), DECIMAIL_STRESS_MESSAGES (1000),
// DECIMAIL_STRESS_DIAG=dir (diagnose our run: stress_diag.go),
// DECIMAIL_STRESS_OURS_ONLY=1 (skip Dovecot while working on ours),
// DECIMAIL_STRESS_SETUP_SQL (SQL run on our database before the server
// starts, e.g. for a server binary of another commit:
// DECIMAIL_BENCH_SERVE_BIN).
func stressConfigFromEnv(def time.Duration, logf func(string, ...any)) StressConfig {
	cfg := StressConfig{Duration: def, Log: logf}
	if d, err := time.ParseDuration(os.Getenv("DECIMAIL_STRESS_DURATION")); err == nil {
		cfg.Duration = d
	}
	cfg.Sessions, _ = strconv.Atoi(os.Getenv("DECIMAIL_STRESS_SESSIONS"))
	cfg.Messages, _ = strconv.Atoi(os.Getenv("DECIMAIL_STRESS_MESSAGES"))
	cfg.OursOnly = os.Getenv("DECIMAIL_STRESS_OURS_ONLY") != ""
	if q := os.Getenv("DECIMAIL_STRESS_SETUP_SQL"); q != "" {
		cfg.SetupSQL = []string{q}
	}
	if dir := os.Getenv("DECIMAIL_STRESS_DIAG"); dir != "" {
		cfg.Diagnose = &StressDiagnosis{Dir: dir}
	}
	return cfg
}

// TestStress runs only the many-sessions line of the comparison (ours on a
// durable cluster and Dovecot, one after the other) and prints its rows:
//
//	DECIMAIL_STRESS=1 go test ./bench -run TestStress -v -timeout 20m
//
// with DECIMAIL_STRESS_DIAG=/tmp/x for the diagnosis of our run.
func TestStress(t *testing.T) {
	if os.Getenv("DECIMAIL_STRESS") == "" {
		t.Skip("set DECIMAIL_STRESS=1 to run the many-sessions line alone (make bench-compare runs it too)")
	}
	cfg := stressConfigFromEnv(60*time.Second, t.Logf)
	rep := &Report{Started: time.Now(), LoadBefore: loadAvg()}
	rows, notes, err := CompareStress(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	rep.Rows, rep.Notes, rep.LoadAfter = rows, notes, loadAvg()
	var b bytes.Buffer
	rep.WriteTable(&b)
	for _, n := range notes {
		b.WriteString(n + "\n")
	}
	t.Logf("load average before %s, after %s\n%s", rep.LoadBefore, rep.LoadAfter, b.String())
}

// BenchmarkManySessions is the many-sessions line with a shorter command
// phase (10 s, or DECIMAL_STRESS_DURATION), both servers; it reports
// commands/s and the p99 of each command kind, ours and Dovecot's.
//
//	go test ./bench -run XXX -bench ManySessions -benchtime 1x
func BenchmarkManySessions(b *testing.B) {
	cfg := stressConfigFromEnv(10*time.Second, b.Logf)
	for b.Loop() {
		rows, notes, err := CompareStress(context.Background(), cfg)
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range rows {
			switch {
			case r.Unit == "cmd/s":
				b.ReportMetric(r.Ours, "ours-cmd/s")
				b.ReportMetric(r.Dovecot, "dovecot-cmd/s")
			case r.Stat == "p99" && r.Goal != "":
				k := r.Name[len(StressLineName(cfg))+2:]
				k = k[:len(k)-len(" (p99)")]
				b.ReportMetric(r.Ours, "ours-"+k+"-p99-ms")
				b.ReportMetric(r.Dovecot, "dovecot-"+k+"-p99-ms")
			case r.Unit == "errors" && strings.Contains(r.Name, "protocol-state"):
				b.ReportMetric(r.Ours, "ours-state-errors")
				b.ReportMetric(r.Dovecot, "dovecot-state-errors")
			case r.Unit == "errors":
				b.ReportMetric(r.Ours, "ours-errors")
				b.ReportMetric(r.Dovecot, "dovecot-errors")
			}
			if r.OursErr != "" || r.DovecotErr != "" {
				b.Logf("%s: ours %s; dovecot %s", r.Name, r.OursErr, r.DovecotErr)
			}
		}
		for _, n := range notes {
			b.Log(n)
		}
	}
}
