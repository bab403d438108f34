package main

import (
	"flag"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestDeployFiles (issue 18, the operator walk-through) checks deploy/
// against the binary: deploy/decimail.env read by sh, as README "Running in
// production" tells operators to do for the admin commands, gives the values
// systemd gives the service (the unquoted `&` of the DSN once sent the
// assignment to the background and the space in DECIMAIL_SERVE_FLAGS ran
// the host name as a command), the DSN parses and names the role decimail,
// and every flag that decimail.service and the Dockerfile pass to `serve`
// is one `serve` has.
func TestDeployFiles(t *testing.T) {
	out, err := exec.Command("sh", "-c", `set -a; . ../../../deploy/decimail.env || exit 1; set +a
printf '%s\n' "$DECIMAIL_DATABASE_URL" "$DECIMAIL_SPOOL" "$DECIMAIL_SERVE_FLAGS"`).CombinedOutput()
	if err != nil {
		t.Fatalf("sourcing deploy/decimail.env: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("sourcing deploy/decimail.env printed more than the values (a line ran as a command?):\n%s", out)
	}
	dsn, spool, serveFlags := lines[0], lines[1], lines[2]
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatalf("DECIMAIL_DATABASE_URL %q: %v", dsn, err)
	}
	if cfg.User != "decimail" || cfg.Database != "decimail" || cfg.Host != "/var/run/postgresql" {
		t.Errorf("DECIMAIL_DATABASE_URL %q: user %q, database %q, host %q; want decimail, decimail over /var/run/postgresql",
			dsn, cfg.User, cfg.Database, cfg.Host)
	}
	if spool != "/var/lib/decimail/spool" {
		t.Errorf("DECIMAIL_SPOOL = %q, want the unit's ReadWritePaths /var/lib/decimail/spool", spool)
	}

	unit, err := os.ReadFile("../../../deploy/decimail.service")
	if err != nil {
		t.Fatal(err)
	}
	var start string
	for _, l := range strings.Split(string(unit), "\n") {
		if s, ok := strings.CutPrefix(l, "ExecStart="); ok {
			start = s
		}
	}
	// systemd: ${VAR} is one word, $VAR is split at white space.
	start = strings.ReplaceAll(start, "${CREDENTIALS_DIRECTORY}", "/run/credentials/decimail.service")
	start = strings.ReplaceAll(start, "$DECIMAIL_SERVE_FLAGS", serveFlags)
	args := strings.Fields(start)
	if len(args) < 2 || args[0] != "/usr/local/bin/decimail" || args[1] != "serve" {
		t.Fatalf("decimail.service ExecStart=%s: want /usr/local/bin/decimail serve …", start)
	}
	set := parseServe(t, "decimail.service", args[2:])
	for _, f := range []string{"tls-cert", "tls-key", "hostname", "imap", "imaps", "smtp", "submission", "admin"} {
		if set[f] == "" {
			t.Errorf("decimail.service ExecStart gives no -%s: %s", f, strings.Join(args, " "))
		}
	}

	docker, err := os.ReadFile("../../../deploy/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(docker), "\n") {
		if s, ok := strings.CutPrefix(l, "CMD "); ok {
			var words []string
			for _, w := range strings.Split(strings.Trim(s, "[] "), ",") {
				words = append(words, strings.Trim(strings.TrimSpace(w), `"`))
			}
			if len(words) == 0 || words[0] != "serve" {
				t.Fatalf("Dockerfile CMD %s: want serve …", s)
			}
			parseServe(t, "Dockerfile CMD", words[1:])
		}
	}
}

// parseServe parses args with the flags of `decimail serve` and returns
// the flags given.
func parseServe(t *testing.T, where string, args []string) map[string]string {
	t.Helper()
	c := find("serve")
	if c == nil {
		t.Fatal("no serve command")
	}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c.flags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("%s: decimail serve %s: %v", where, strings.Join(args, " "), err)
	}
	if fs.NArg() != 0 {
		t.Errorf("%s: decimail serve takes no arguments, got %q", where, fs.Args())
	}
	set := map[string]string{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = f.Value.String() })
	return set
}
