package conformance

import (
	"bufio"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
)

// decimailTarget is set by decimail_target_test.go (written with the server)
// to start a Decimail server for the default target. It is called once per
// TestScenarios run; the Target's Reset must give a fresh, empty account
// (e.g. a fresh database) on every call and must be safe for parallel use.
var decimailTarget func(t testing.TB) Target

const (
	scenarioDir = "../scenarios"
	fixtureDir  = "../scenarios/fixtures"
)

func loadScenarios(t *testing.T) []*Scenario {
	t.Helper()
	var out []*Scenario
	err := filepath.WalkDir(scenarioDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".scn") {
			return err
		}
		rel, _ := filepath.Rel(scenarioDir, path)
		sc, err := ParseFile(path, filepath.Join(fixtureDir, "messages"))
		if err != nil {
			t.Errorf("%v", err)
			return nil
		}
		sc.File = filepath.Join("scenarios", rel)
		if sc.Fixture != "" {
			if _, err := os.Stat(filepath.Join(fixtureDir, sc.Fixture+".fix")); err != nil {
				t.Errorf("%s: fixture: %v", sc.File, err)
			}
		}
		out = append(out, sc)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].File < out[j].File })
	return out
}

// chooseTarget picks the target from the environment:
// DECIMAIL_CONFORMANCE_TARGET=dovecot starts a private Dovecot;
// DECIMAIL_CONFORMANCE_ADDR (+ _USER, _PASS) uses an external server with a
// single account; otherwise the Decimail hook, if set.
func chooseTarget(t *testing.T) (tg Target, parallel bool) {
	if os.Getenv("DECIMAIL_CONFORMANCE_TARGET") == "dovecot" {
		return StartDovecot(t), true
	}
	if addr := os.Getenv("DECIMAIL_CONFORMANCE_ADDR"); addr != "" {
		return &External{Addr: addr, User: os.Getenv("DECIMAIL_CONFORMANCE_USER"), Pass: os.Getenv("DECIMAIL_CONFORMANCE_PASS")}, false
	}
	if decimailTarget != nil {
		return decimailTarget(t), true
	}
	return nil, false
}

// TestScenarios runs every scenario as a subtest named after its file.
func TestScenarios(t *testing.T) {
	scs := loadScenarios(t)
	tg, parallel := chooseTarget(t)
	if tg == nil {
		t.Skipf("NOT RUN: %d scenarios parsed, but no target: decimailTarget is nil (no decimail_target_test.go yet); "+
			"set DECIMAIL_CONFORMANCE_TARGET=dovecot or DECIMAIL_CONFORMANCE_ADDR", len(scs))
	}
	t.Logf("running %d scenarios against %s", len(scs), tg.Name())
	known := map[string]bool{}
	if tg.Name() == "dovecot" && os.Getenv("DECIMAIL_CONFORMANCE_ALL") == "" {
		known = knownDeviations(t, "DOVECOT.md")
	}
	// Skips happen only on other targets (Decimail fails what it cannot
	// run); the summary lists them with a count, after every subtest.
	var mu sync.Mutex
	var skipped []string
	t.Cleanup(func() {
		if len(skipped) > 0 {
			sort.Strings(skipped)
			t.Logf("SKIPPED %d of %d scenarios on %s:\n  %s", len(skipped), len(scs), tg.Name(), strings.Join(skipped, "\n  "))
		}
		if tg.Name() == "decimail" && len(skipped) > 0 {
			t.Errorf("%d scenarios skipped on Decimail", len(skipped))
		}
	})
	for _, sc := range scs {
		name := strings.TrimSuffix(strings.TrimPrefix(sc.File, "scenarios/"), ".scn")
		t.Run(name, func(t *testing.T) {
			t.Cleanup(func() {
				if t.Skipped() {
					mu.Lock()
					skipped = append(skipped, name)
					mu.Unlock()
				}
			})
			if known[name] {
				t.Skip("known Dovecot deviation, see conformance/DOVECOT.md")
			}
			if parallel {
				t.Parallel()
			}
			Run(t, sc, tg, fixtureDir)
		})
	}
}

// knownDeviations reads the scenario names (first column, in backquotes) of
// the table in a deviations file such as DOVECOT.md.
func knownDeviations(t *testing.T, file string) map[string]bool {
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]bool{}
	sn := bufio.NewScanner(f)
	for sn.Scan() {
		if rest, ok := strings.CutPrefix(sn.Text(), "| `"); ok {
			if name, _, ok := strings.Cut(rest, "`"); ok {
				out[name] = true
			}
		}
	}
	return out
}
