package bench

import (
	"bytes"
	"context"
	"flag"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

var compareFlag = flag.Bool("compare", false, "run TestCompare: Decimail vs a private Dovecot, rewrite RESULTS.md")

// benchSizes are the corpus sizes: DECIMAIL_BENCH_SIZES=1000,10000,100000,
// else def.
func benchSizes(def ...int) []int {
	s := os.Getenv("DECIMAIL_BENCH_SIZES")
	if s == "" {
		return def
	}
	var out []int
	for _, f := range strings.Split(s, ",") {
		if n, err := strconv.Atoi(strings.TrimSpace(f)); err == nil && n > 0 {
			out = append(out, n)
		}
	}
	return out
}

// TestCompare is `make bench-compare-10k` (`make bench-compare` runs it,
// then bench-compare-100k): the side-by-side run (10,000 messages unless
// DECIMAIL_BENCH_SIZES says otherwise). DECIMAIL_BENCH_QUICK=1 runs only
// the IMAP lines (both sections), DECIMAIL_BENCH_LINES=Key,... only those
// lines. It prints the table and rewrites RESULTS.md
// (DECIMAIL_BENCH_RESULTS names another file).
func TestCompare(t *testing.T) {
	if !*compareFlag {
		t.Skip("side-by-side comparison: go test ./bench -run TestCompare -compare -timeout 60m (make bench-compare)")
	}
	ctx := context.Background()
	var reps []*Report
	for _, n := range benchSizes(10000) {
		cfg := CompareConfig{N: n, Seed: 1, SMTPTotal: 400, SMTPSustained: 2500, IdleConns: 2000, DovecotIdleConns: 300,
			Stress:  &StressConfig{Sessions: 50, Duration: 60 * time.Second, Messages: 1000},
			Durable: true,
			Log:     func(f string, a ...any) { t.Logf(f, a...) }}
		if os.Getenv("DECIMAIL_BENCH_QUICK") != "" {
			// Only the IMAP lines (DECIMAIL_BENCH_LINES=Key,... picks some),
			// fast cluster and durable: for working on a line.
			cfg.SMTPTotal, cfg.SMTPSustained, cfg.IdleConns, cfg.Stress = 0, 0, 0, nil
		}
		rep, err := Compare(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"DECIMAIL_BENCH_SIZES", "DECIMAIL_BENCH_QUICK", "DECIMAIL_BENCH_LINES"} {
			if v := os.Getenv(k); v != "" {
				rep.Settings = strings.TrimSpace(rep.Settings + " `" + k + "=" + v + "`")
			}
		}
		var b bytes.Buffer
		rep.WriteTable(&b)
		t.Log(b.String())
		os.Stdout.Write(b.Bytes())
		reps = append(reps, rep)
	}
	var md bytes.Buffer
	WriteMarkdown(&md, reps)
	out := os.Getenv("DECIMAIL_BENCH_RESULTS")
	if out == "" {
		out = "RESULTS.md"
	}
	if err := os.WriteFile(out, md.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s", out)
}
