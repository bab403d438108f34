package conformance

// Helpers for the real-client tests (clients_test.go): checking the
// clients are installed and reading what they stored locally.

import (
	"bytes"
	_ "embed"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// clientDeps lists each client binary with its Debian package; `make
// test-deps` installs them (conformance/install-deps.sh).
//
//go:embed clients.deps
var clientDeps string

// ClientPackages maps each client binary to its Debian package.
var ClientPackages = parseDeps(clientDeps)

// parseDeps reads BINARY=PACKAGE lines; # starts a comment.
func parseDeps(s string) map[string]string {
	m := map[string]string{}
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		bin, pkg, ok := strings.Cut(l, "=")
		if !ok || bin == "" || pkg == "" {
			panic(fmt.Sprintf("clients.deps: %q is not BINARY=PACKAGE", l))
		}
		m[bin] = pkg
	}
	return m
}

// MissingClients says which clients are not installed, and how to install
// them; nil when all are there. Installing is make's job, never go test's.
func MissingClients() error {
	var bins, pkgs []string
	for bin, pkg := range ClientPackages {
		if _, err := exec.LookPath(bin); err != nil {
			bins, pkgs = append(bins, bin), append(pkgs, pkg)
		}
	}
	if len(bins) == 0 {
		return nil
	}
	sort.Strings(bins)
	sort.Strings(pkgs)
	return fmt.Errorf("real clients %v not installed: run `make test-deps` (`make test` does), or install the Debian packages %s",
		bins, strings.Join(pkgs, " "))
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

// MuttRC is client-configs/muttrc for user and password on the IMAP server
// at addr (host:port), without the mailboxes it polls, plus the settings
// that keep mutt and neomutt from asking questions on the way out. The
// mutt test and the neomutt capture share it.
func MuttRC(user, password, addr string) string {
	return fmt.Sprintf(`set imap_user = %q
set imap_pass = %q
set folder = "imap://%s@%s/"
set spoolfile = "+INBOX"
set record = ""
set postponed = "+Drafts"
set ssl_starttls = no
set ssl_force_tls = no
set header_cache = ""
set message_cachedir = ""
set mail_check = 60
set timeout = 30
set sort = date
set move = no
set quit = yes
set mark_old = no
set wait_key = no
set delete = yes
`, user, password, user, addr)
}
