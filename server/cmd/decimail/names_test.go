package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"decimail/server/pgrun"
)

func TestPrintable(t *testing.T) {
	for in, want := range map[string]string{
		"INBOX":                "INBOX",
		"Entwürfe/日本":          "Entwürfe/日本",
		"a\x1b[31mred\x1b[0m":  `a\x1b[31mred\x1b[0m`,
		"bell\a tab\t nl\n":    `bell\a tab\t nl\n`,
		"del\x7f csi\u009b":    `del\x7f csi\u009b`,
		"rlo\u202eevil":        `rlo\u202eevil`,
		"bad\xffutf8":          `bad\xffutf8`,
		`back\slash`:           `back\slash`,
		"nbsp\u00a0and space ": `nbsp\u00a0and space `, // spaces but U+0020 do not show what they are
	} {
		if got := printable(in); got != want {
			t.Errorf("printable(%q) = %q, want %q", in, got, want)
		}
	}
}

// Issue 13: mailbox names with terminal escape sequences were accepted and
// printed raw by `decimail mailbox list`. The store refuses them now, with
// a clear error; names stored before are printed escaped.
func TestCLIMailboxNamesEscaped(t *testing.T) {
	bin := binary(t)
	dsn := pgrun.TestDB(t)
	env := append(os.Environ(), "DECIMAIL_DATABASE_URL="+dsn, "DECIMAIL_SPOOL="+t.TempDir())
	run := func(args ...string) (string, error) {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if strings.ContainsAny(string(out), "\x1b\a\u009b") {
			t.Errorf("decimail %q printed a control character: %q", args, out)
		}
		return string(out), err
	}
	must := func(out string, err error) string {
		t.Helper()
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		return out
	}
	must(run("migrate"))
	must(run("user", "add", "alice", "-password", "secret"))

	// A name stored before names were checked.
	ctx := context.Background()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, `INSERT INTO mailboxes (user_id, name) SELECT id, $1 FROM users WHERE name = 'alice'`,
		"evil\x1b[2J\x1b]0;owned\a\u009b"); err != nil {
		t.Fatal(err)
	}
	out := must(run("mailbox", "list", "alice"))
	if !strings.Contains(out, `evil\x1b[2J\x1b]0;owned\a\u009b`) {
		t.Errorf("mailbox list does not show the name escaped:\n%s", out)
	}

	for _, tc := range []struct{ name, def, want string }{
		{"Bad\x1b[31m", "SEEN", "mailbox name contains the control character U+001B"},
		{"C1\u009b", "SEEN", "mailbox name contains the control character U+009B"},
		{strings.Repeat("n", 1001), "SEEN", "mailbox name is 1001 bytes long, at most 1000 allowed"},
		{"Big", strings.Repeat("SUBJECT x ", 3000) + bigProgram(1000), "1001 search keys, at most 1000 allowed"},
		{"Long", "BODY " + strings.Repeat("v", 1025), "1025 bytes in a search string, at most 1024 allowed"},
	} {
		out, err := run("mailbox", "define", "alice", tc.name, tc.def)
		if err == nil || !strings.Contains(out, tc.want) {
			t.Errorf("mailbox define %q: %v\n%.300s\nwant an error saying %q", printable(tc.name[:min(len(tc.name), 20)]), err, out, tc.want)
		}
	}
	if out := must(run("mailbox", "list", "alice")); strings.Contains(out, "Bad") || strings.Contains(out, "Big") || strings.Contains(out, "nnn") {
		t.Errorf("a refused mailbox was made:\n%.2000s", out)
	}
}

// bigProgram is n distinct search keys.
func bigProgram(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "TO t%d ", i)
	}
	return b.String()
}
