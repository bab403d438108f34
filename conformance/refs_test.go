package conformance

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// rfcDir is shared/rfc beside the repository.
const rfcDir = "../../shared/rfc"

var refRe = regexp.MustCompile(`^(rfc\d+\.txt):(\d+)(?:-(\d+))?$`)

// TestScenarioHeaders checks every scenario without a server: it parses,
// has a title, covers keywords, and rfc: references that exist in shared/rfc.
func TestScenarioHeaders(t *testing.T) {
	scs := loadScenarios(t)
	if len(scs) == 0 {
		t.Fatal("no scenarios found")
	}
	lines := map[string]int{}
	_, err := os.Stat(rfcDir)
	haveRFCs := err == nil
	if !haveRFCs {
		t.Logf("%s not found: rfc: references not checked", rfcDir)
	}
	for _, sc := range scs {
		if sc.Title == "" || len(sc.Covers) == 0 {
			t.Errorf("%s: needs a # title and a covers: header", sc.File)
		}
		for _, ref := range sc.RFC {
			m := refRe.FindStringSubmatch(ref)
			if m == nil {
				t.Errorf("%s: rfc reference %q is not rfcNNNN.txt:FROM[-TO]", sc.File, ref)
				continue
			}
			if !haveRFCs {
				continue
			}
			n, ok := lines[m[1]]
			if !ok {
				data, err := os.ReadFile(filepath.Join(rfcDir, m[1]))
				if err != nil {
					t.Errorf("%s: %v", sc.File, err)
					continue
				}
				n = strings.Count(string(data), "\n")
				lines[m[1]] = n
			}
			from, _ := strconv.Atoi(m[2])
			to := from
			if m[3] != "" {
				to, _ = strconv.Atoi(m[3])
			}
			if from < 1 || to < from || to > n {
				t.Errorf("%s: %s is outside %s (%d lines)", sc.File, ref, m[1], n)
			}
		}
	}
	t.Logf("%d scenarios", len(scs))
}
