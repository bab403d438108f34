package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// root is the module root, two levels above this package.
const root = "../.."

func build(t *testing.T) *Report {
	t.Helper()
	rfcDir := filepath.Join(root, "..", "shared", "rfc")
	if _, err := os.Stat(filepath.Join(rfcDir, "rfc3501.txt")); err != nil {
		t.Skipf("RFC texts not found (%v): coverage not checked", err)
	}
	rep, err := Build(filepath.Join(root, "scenarios"), rfcDir)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// TestCoverageUpToDate fails when scenarios/COVERAGE.md is not what the
// generator writes for the current scenarios.
func TestCoverageUpToDate(t *testing.T) {
	rep := build(t)
	got, err := os.ReadFile(filepath.Join(root, "scenarios", "COVERAGE.md"))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != rep.Markdown() {
		t.Errorf("scenarios/COVERAGE.md is stale: run `make coverage` and commit it")
	}
}

// TestEveryRFC3501ItemHasAScenario fails when an RFC 3501 command, FETCH
// item, SEARCH key or response code (except the documented exemptions) has
// no scenario.
func TestEveryRFC3501ItemHasAScenario(t *testing.T) {
	rep := build(t)
	for _, g := range rep.RequiredGaps() {
		t.Errorf("no scenario covers %s", g)
	}
}

// TestListsFromRFC pins the lists read from the RFC text, so a change of the
// parsing cannot silently shrink them.
func TestListsFromRFC(t *testing.T) {
	rep := build(t)
	want := map[string]int{"RFC 3501 commands": 25, "FETCH items": 15, "SEARCH keys": 36, "Response codes": 11}
	for _, g := range rep.Groups {
		if n, ok := want[g.Title]; ok && len(g.Items) != n {
			var names []string
			for _, it := range g.Items {
				names = append(names, it.Name)
			}
			t.Errorf("%s: %d read from the RFC, want %d: %s", g.Title, len(g.Items), n, strings.Join(names, " "))
		}
	}
	if s, ok := find(rep.RFC3501, "6.4.5"); !ok || s.Title != "FETCH Command" {
		t.Errorf("§6.4.5 = %+v", s)
	}
}

func TestSections(t *testing.T) {
	secs := Sections("Intro\n1.  First\ntext\n   2.  Toc entry ....... 3\n2.1.  Second\nmore\n7.2.4   No dot\n")
	var got []string
	for _, s := range secs {
		got = append(got, s.Num+":"+s.Title)
	}
	if strings.Join(got, "|") != "1:First|2.1:Second|7.2.4:No dot" || secs[0].From != 2 || secs[0].To != 4 {
		t.Errorf("Sections = %v %+v", got, secs)
	}
}
