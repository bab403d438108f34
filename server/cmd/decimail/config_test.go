package main

import (
	"context"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"decimail/internal/imaptest"
	"decimail/server/pgrun"
	"decimail/server/store"
)

// cli runs the decimail binary with env and returns its combined output.
func cli(t *testing.T, env []string) func(args ...string) (string, error) {
	return func(args ...string) (string, error) {
		t.Helper()
		cmd := exec.Command(binary(t), args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
}

// dbEnv is the environment of a decimail command on dsn, and nothing else
// that would name a database (no dev directory: -var points nowhere).
func dbEnv(t *testing.T, dsn string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DECIMAIL_DATABASE_URL=") && !strings.HasPrefix(kv, "DECIMAIL_SPOOL=") {
			env = append(env, kv)
		}
	}
	if dsn != "" {
		env = append(env, "DECIMAIL_DATABASE_URL="+dsn)
	}
	return append(env, "DECIMAIL_SPOOL="+t.TempDir())
}

// Issue 18: `decimail config` refuses unknown keys and values of the wrong
// type, takes pattern keys for existing users only, and stores values as
// the daemons read them (a bool as true/false: imapd compares with "true").
func TestConfigCommands(t *testing.T) {
	dsn := pgrun.TestDB(t)
	run := cli(t, dbEnv(t, dsn))
	must := func(args ...string) string {
		t.Helper()
		out, err := run(args...)
		if err != nil {
			t.Fatalf("decimail %q: %v\n%s", args, err, out)
		}
		return out
	}
	refused := func(want string, args ...string) {
		t.Helper()
		out, err := run(args...)
		if err == nil || !strings.Contains(out, want) {
			t.Errorf("decimail %q: err %v, output %q; want a failure saying %q", args, err, out, want)
		}
	}
	must("user", "add", "alice", "-password", "pw")

	refused(`unknown setting "imapd_log_imapp"`, "config", "set", "imapd_log_imapp", "true")
	refused(`unknown setting "no_such_key"`, "config", "get", "no_such_key")
	refused("want true or false", "config", "set", "imapd_log_imap", "yes please")
	refused("want a duration", "config", "set", "imapd_sent_dedup_window", "10 minutes")
	refused("want an integer", "config", "set", "search_max_terms", "1e3")
	refused("not zero", "config", "set", "mailbox_max_name", "0")
	refused("want trash or delete", "config", "set", "view_expunge:alice", "shred")
	refused("network prefixes", "config", "set", "smtpd_trusted_nets", "10.0.0.0/8,bogus")
	refused("host:port", "config", "set", "smtp_relay_host", "smarthost.example")
	refused(`user "bob"`, "config", "set", "imapd_disable:bob", "IDLE")
	refused("written by the server", "config", "set", "objectid_key", "00")

	if out := must("config", "set", "imapd_log_imap", "1"); !strings.Contains(out, "imapd_log_imap = true (running servers take it up now)") {
		t.Errorf("config set imapd_log_imap 1: %q", out)
	}
	if out := must("config", "set", "search_max_terms", "500"); !strings.Contains(out, "restart") {
		t.Errorf("config set search_max_terms: %q, want it to say a restart is needed", out)
	}
	must("config", "set", "imapd_disable:alice", " IDLE , CONDSTORE ")
	must("config", "set", "smtp_relay_password", "hunter2")
	if out := must("config", "get", "imapd_disable:alice"); out != "IDLE,CONDSTORE\n" {
		t.Errorf("config get imapd_disable:alice = %q", out)
	}
	if out := must("config", "get", "imapd_sent_dedup_window"); !strings.Contains(out, "not set; default: 10m") {
		t.Errorf("config get of an unset key: %q", out)
	}
	list := must("config", "list")
	for _, want := range []string{"imapd_log_imap", "true", "imapd_disable:alice", "search_max_terms", "smtp_relay_password"} {
		if !strings.Contains(list, want) {
			t.Errorf("config list lacks %q:\n%s", want, list)
		}
	}
	if strings.Contains(list, "hunter2") {
		t.Errorf("config list shows the relay password:\n%s", list)
	}
	if all := must("config", "list", "-all"); !strings.Contains(all, "imapd_sent_dedup_window") || !strings.Contains(all, "(default 10m)") {
		t.Errorf("config list -all:\n%s", all)
	}
	must("config", "unset", "imapd_log_imap")
	refused("not set", "config", "unset", "imapd_log_imap")

	// What the CLI stored is what the store reads.
	ctx := context.Background()
	s, err := store.Open(ctx, dsn, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for key, want := range map[string]string{"imapd_log_imap": "", "search_max_terms": "500", "imapd_disable:alice": "IDLE,CONDSTORE"} {
		if v, err := s.Config(ctx, key, ""); err != nil || v != want {
			t.Errorf("configuration %s = %q, %v; want %q", key, v, err, want)
		}
	}
}

// Issue 18: a setting marked live reaches a running `decimail serve`
// without restart: `decimail config set imapd_disable IDLE` against the
// running server's database, and the next IMAP connection no longer
// offers IDLE (nor accepts it); a connection open before keeps what it
// had; unset, IDLE is back. Per-user keys are read at each login.
func TestConfigLiveReload(t *testing.T) {
	ctx := context.Background()
	dsn := pgrun.TestDB(t)
	s, err := store.Open(ctx, dsn, store.Options{PasswordCost: bcrypt.MinCost})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.CreateUser(ctx, "alice", "pw")
	s.Close()
	if err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, dsn, t.TempDir())
	run := cli(t, dbEnv(t, dsn))
	caps := func() map[string]bool {
		t.Helper()
		c, err := imaptest.Dial(d.imap)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, _, err := c.Command("CAPABILITY"); err != nil {
			t.Fatal(err)
		}
		return c.Caps
	}
	// eventually waits for the reload (a notification, delivered at once).
	eventually := func(what string, ok func(map[string]bool) bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !ok(caps()) {
			if time.Now().After(deadline) {
				t.Fatalf("after 10 s: %s; capabilities %v", what, caps())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if !caps()["IDLE"] {
		t.Fatal("IDLE not offered to begin with")
	}
	before, err := imaptest.Dial(d.imap)
	if err != nil {
		t.Fatal(err)
	}
	defer before.Close()

	if out, err := run("config", "set", "imapd_disable", "IDLE"); err != nil {
		t.Fatalf("config set: %v\n%s", err, out)
	}
	eventually("IDLE still offered to new connections", func(c map[string]bool) bool { return !c["IDLE"] })
	c, err := imaptest.Dial(d.imap)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login("alice", "pw"); err != nil {
		t.Fatal(err)
	}
	if _, done, _ := c.Command("IDLE"); done == nil || done.Status != "BAD" {
		t.Errorf("IDLE after imapd_disable IDLE: %v, want BAD", done)
	}
	if _, _, err := before.Command("CAPABILITY"); err != nil || !before.Caps["IDLE"] {
		t.Errorf("a connection made before the change lost IDLE (%v)", err)
	}

	// Per user: read at login.
	if out, err := run("config", "set", "imapd_disable:alice", "CONDSTORE"); err != nil {
		t.Fatalf("config set: %v\n%s", err, out)
	}
	u, err := imaptest.Dial(d.imap)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	if err := u.Login("alice", "pw"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := u.Command("CAPABILITY"); err != nil || u.Caps["CONDSTORE"] || !u.Caps["IMAP4REV1"] {
		t.Errorf("alice's capabilities after imapd_disable:alice CONDSTORE: %v (%v)", u.Caps, err)
	}

	if out, err := run("config", "unset", "imapd_disable"); err != nil {
		t.Fatalf("config unset: %v\n%s", err, out)
	}
	eventually("IDLE not offered again after unset", func(c map[string]bool) bool { return c["IDLE"] })
	if d.cmd.ProcessState != nil {
		t.Fatal("the server exited")
	}
}

// Issue 18: README's command table names every command there is.
func TestREADMEListsCommands(t *testing.T) {
	b, err := os.ReadFile("../../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	i := strings.Index(readme, "## The `decimail` command")
	j := strings.Index(readme[i+1:], "\n## ")
	if i < 0 || j < 0 {
		t.Fatal("README.md has no section \"The `decimail` command\"")
	}
	section := readme[i : i+1+j]
	for _, c := range commands {
		if !regexp.MustCompile("`" + regexp.QuoteMeta(c.name) + "[ `]").MatchString(section) {
			t.Errorf("README.md, \"The `decimail` command\": %q is missing", c.name)
		}
	}
}
