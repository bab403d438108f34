package conformance

// Helpers for the real-client tests (clients_test.go): installing the
// clients from Debian packages and reading what they stored locally.

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// ClientPackages maps each client binary to its Debian package.
var ClientPackages = map[string]string{
	"curl":      "curl",
	"mbsync":    "isync",
	"fetchmail": "fetchmail",
	"mutt":      "mutt",
	"tmux":      "tmux",
}

var (
	installOnce sync.Once
	installErr  error
)

// EnsureClients installs the missing client packages with apt-get, once
// per process. apt-get update runs only when the first install fails. An
// error means the clients are not available (no apt, no root, no mirror):
// the caller must fail, not skip.
func EnsureClients() error {
	installOnce.Do(func() { installErr = ensureClients() })
	return installErr
}

func ensureClients() error {
	var missing []string
	for bin, pkg := range ClientPackages {
		if _, err := exec.LookPath(bin); err != nil {
			missing = append(missing, pkg)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	sort.Strings(missing)
	apt, err := exec.LookPath("apt-get")
	if err != nil {
		return fmt.Errorf("clients %v missing and apt-get unavailable (%v): install them (Debian packages %s)", missing, err, strings.Join(missing, " "))
	}
	run := func(args ...string) ([]byte, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, apt, args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		return cmd.CombinedOutput()
	}
	install := append([]string{"install", "-y", "--no-install-recommends"}, missing...)
	if out, err := run(install...); err != nil {
		if out2, err2 := run("update"); err2 != nil {
			return fmt.Errorf("apt-get install %v: %v\n%s\napt-get update: %v\n%s", missing, err, outputTail(out), err2, outputTail(out2))
		}
		if out, err = run(install...); err != nil {
			return fmt.Errorf("apt-get install %v (after update): %v\n%s", missing, err, outputTail(out))
		}
	}
	for bin := range ClientPackages {
		if _, err := exec.LookPath(bin); err != nil {
			return fmt.Errorf("%s still missing after apt-get install: %v", bin, err)
		}
	}
	return nil
}

func outputTail(b []byte) string {
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// MaildirMsg is one message file of a Maildir.
type MaildirMsg struct {
	Path  string
	Flags string // the letters after ":2," (sorted), e.g. "FS"
	Data  []byte
}

// ReadMaildirs reads every Maildir under root (a directory with cur/, new/
// and tmp/), keyed by its path relative to root with "/" separators.
func ReadMaildirs(root string) (map[string][]MaildirMsg, error) {
	out := map[string][]MaildirMsg{}
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		if _, err := os.Stat(filepath.Join(p, "cur")); err != nil {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		out[rel] = []MaildirMsg{}
		for _, sub := range []string{"cur", "new"} {
			ents, err := os.ReadDir(filepath.Join(p, sub))
			if err != nil {
				return err
			}
			for _, e := range ents {
				fp := filepath.Join(p, sub, e.Name())
				data, err := os.ReadFile(fp)
				if err != nil {
					return err
				}
				m := MaildirMsg{Path: fp, Data: data}
				if _, info, ok := strings.Cut(e.Name(), ":2,"); ok {
					letters := strings.Split(info, "")
					sort.Strings(letters)
					m.Flags = strings.Join(letters, "")
				}
				out[rel] = append(out[rel], m)
			}
		}
		return nil
	})
	return out, err
}

// MaildirFlags gives the Maildir info letters for IMAP flags
// (https://cr.yp.to/proto/maildir.html; $Forwarded is "P", passed, as
// mbsync maps it); other keywords have no letter.
func MaildirFlags(flags []string) string {
	letter := map[string]string{`\draft`: "D", `\flagged`: "F", `\answered`: "R", `\seen`: "S", `\deleted`: "T", `$forwarded`: "P"}
	var out []string
	for _, f := range flags {
		if l, ok := letter[strings.ToLower(f)]; ok {
			out = append(out, l)
		}
	}
	sort.Strings(out)
	return strings.Join(out, "")
}

// ToLF converts CRLF line ends to LF, as clients that write Unix files do.
func ToLF(b []byte) []byte { return bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n")) }
