package store_test

import (
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"decimail/server/store"
)

var updateREADME = flag.Bool("update-readme", false, "rewrite the settings table in README.md from store.Settings")

const (
	settingsBegin = "<!-- settings: generated from server/store/settings.go; go test ./server/store -run TestREADMESettings -update-readme -->\n"
	settingsEnd   = "<!-- end of settings -->\n"
)

// Issue 18: every setting is documented in one place, store.Settings, and
// README.md shows that table as it is.
func TestREADMESettings(t *testing.T) {
	path := filepath.Join("..", "..", "README.md")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	i, j := strings.Index(readme, settingsBegin), strings.Index(readme, settingsEnd)
	if i < 0 || j < i {
		t.Fatalf("README.md lacks the markers of the settings table:\n%s...\n%s", settingsBegin, settingsEnd)
	}
	want := store.SettingsMarkdown()
	got := readme[i+len(settingsBegin) : j]
	if got == want {
		return
	}
	if *updateREADME {
		if err := os.WriteFile(path, []byte(readme[:i+len(settingsBegin)]+want+readme[j:]), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("README.md's settings table differs from store.Settings (rerun with -update-readme); want:\n%s", want)
}

// keyLiteral matches the string literals that look like configuration keys
// of the families Decimail has.
var keyLiteral = regexp.MustCompile(`"((?:imapd|smtpd|smtp_relay|auth|search_max|mailbox_max|delete)_[a-z_]+)"`)

// Every key in store.Settings is read somewhere (a typo in the table would
// document a key nothing reads), and every key the code reads from the
// configuration table is in the table: keys are found as string literals
// given to Config/SetConfig or in the known load tables.
func TestSettingsAreRead(t *testing.T) {
	var src strings.Builder
	err := filepath.WalkDir(filepath.Join("..", ".."), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "bench" || d.Name() == "conformance" || d.Name() == "fixtures" || strings.HasPrefix(d.Name(), ".")) && p != filepath.Join("..", "..") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(p, ".go") && !strings.HasSuffix(p, "_test.go") && !strings.HasSuffix(p, "settings.go") {
			b, err := os.ReadFile(p)
			src.Write(b)
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	code := src.String()
	known := map[string]bool{}
	for _, s := range store.Settings {
		known[strings.TrimSuffix(s.Key, ":<user>")] = true
	}
	for _, m := range keyLiteral.FindAllStringSubmatch(code, -1) {
		if !known[m[1]] {
			t.Errorf("the code reads configuration key %q (it seems): add it to store.Settings", m[1])
			known[m[1]] = true
		}
	}
	for _, s := range store.Settings {
		key := strings.TrimSuffix(s.Key, ":<user>")
		if !strings.Contains(code, `"`+key+`"`) && !strings.Contains(code, `"`+key+`:"`) && !strings.Contains(code, `'`+key+`'`) {
			t.Errorf("setting %s: no code reads %q", s.Key, key)
		}
	}
}
