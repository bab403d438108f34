package bench

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"decimail/internal/imaptest"

	"github.com/google/go-cmp/cmp"
)

// Every line leaves INBOX as it found it: the same messages with the same
// flags. The durable section measures the same Dovecot after the fast one,
// and each server's Env (its seen and unseen sets, N) is read once: a line
// that left messages behind made the next section's listings fail on
// Dovecot ("10006 FETCH responses, want 10000": ThreadAfterAppend's
// replies, bench/RESULTS.md before this test). Each line runs once (after
// its warm-up, as Measure does), on a small corpus, against ours and, when
// it is installed, Dovecot.
func TestLinesLeaveInboxAsFound(t *testing.T) {
	ctx := context.Background()
	msgs := Corpus(300, 1)
	o, err := StartOurs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if err := LoadStore(ctx, o.Store, o.UserID, "INBOX", msgs); err != nil {
		t.Fatal(err)
	}
	envO, err := Prepare(&o.Target, msgs, func(name, def string) error {
		_, err := o.Store.DefineMailbox(ctx, o.UserID, name, def)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	envs := []*Env{envO}
	if _, err := os.Stat(DovecotBinary); err == nil {
		d, err := StartDovecot(VirtualViews(msgs))
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		if err := LoadIMAP(d.Addr, d.User, d.Pass, "INBOX", msgs); err != nil {
			t.Fatal(err)
		}
		envD, err := Prepare(&d.Target, msgs, nil)
		if err != nil {
			t.Fatal(err)
		}
		envs = append(envs, envD)
	} else {
		t.Log("dovecot not installed: ours only")
	}
	if len(envs) == 2 {
		sameViews(t, envs[0], envs[1])
	}
	for _, e := range envs {
		before := inboxState(t, e)
		if len(before) != len(msgs) {
			t.Fatalf("%s: INBOX has %d messages, want %d", e.Name, len(before), len(msgs))
		}
		for _, l := range IMAPLines() {
			if err := runOnce(e, l); err != nil {
				t.Fatalf("%s: %s: %v", e.Name, l.Key, err)
			}
			if after := inboxState(t, e); !slices.Equal(after, before) {
				t.Fatalf("%s: %s left INBOX with %d messages (before: %d), or other flags (-before +after):\n%s",
					e.Name, l.Key, len(after), len(before), cmp.Diff(before, after))
			}
		}
	}
}

// sameViews: Dovecot's virtual-plugin views (StoreUnseenThenStatusVirtual's
// peer) hold what ours hold, as the line reads them: STATUS of each after
// loading, and after UID STORE 1:* -FLAGS (\Seen) (which the flag-terms
// views follow), and after the flags are restored.
func sameViews(t *testing.T, ours, dov *Env) {
	t.Helper()
	if len(dov.Virtual) != Views {
		t.Fatalf("dovecot has %d virtual views, want %d", len(dov.Virtual), Views)
	}
	login := func(e *Env) *imaptest.Client {
		c, err := Login(e.Addr, e.User, e.Pass)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Stream("SELECT INBOX", nil); err != nil {
			t.Fatal(err)
		}
		return c
	}
	co, cd := login(ours), login(dov)
	defer co.Close()
	defer cd.Close()
	status := func(c *imaptest.Client, name string) string {
		var got string
		if err := c.Stream("STATUS "+name+" (MESSAGES UNSEEN)", func(r *imaptest.Raw) {
			if s := string(r.Bytes); strings.HasPrefix(s, "* STATUS ") {
				got = strings.TrimSpace(s[strings.LastIndexByte(s, '('):])
			}
		}); err != nil || got == "" {
			t.Fatalf("STATUS %s: %q %v", name, got, err)
		}
		return got
	}
	compare := func(when string) {
		t.Helper()
		nonEmpty := 0
		for i := range Views {
			name := fmt.Sprintf("v%03d", i)
			o, d := status(co, name), status(cd, dov.Virtual[name])
			if o != d {
				t.Errorf("%s: ours %s %s, dovecot %s %s", when, name, o, dov.Virtual[name], d)
			}
			if !strings.HasPrefix(o, "(MESSAGES 0 ") {
				nonEmpty++
			}
		}
		if nonEmpty < Views/2 {
			t.Errorf("%s: only %d of %d views hold a message", when, nonEmpty, Views)
		}
	}
	compare("loaded")
	for _, c := range []*imaptest.Client{co, cd} {
		if err := c.Stream(`UID STORE 1:* -FLAGS.SILENT (\Seen)`, nil); err != nil {
			t.Fatal(err)
		}
	}
	compare(`after -FLAGS (\Seen)`)
	for _, e := range []struct {
		c *imaptest.Client
		e *Env
	}{{co, ours}, {cd, dov}} {
		if err := restore(e.c, nil, ` +FLAGS.SILENT (\Seen)`, e.e.seen); err != nil {
			t.Fatal(err)
		}
	}
	compare("restored")
}

// runOnce runs a line as Measure does, with one run after the warm-up.
func runOnce(e *Env, l Line) error {
	c, err := Login(e.Addr, e.User, e.Pass)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Stream("SELECT INBOX", nil); err != nil {
		return err
	}
	for range 2 {
		if _, err := l.Run(e, c); err != nil {
			return err
		}
	}
	return nil
}

// inboxState is INBOX's "uid flags" lines, \Recent left out (it belongs
// to a session), in UID order.
func inboxState(t *testing.T, e *Env) []string {
	t.Helper()
	c, err := Login(e.Addr, e.User, e.Pass)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Stream("EXAMINE INBOX", nil); err != nil {
		t.Fatal(err)
	}
	var out []string
	if err := c.Stream("UID FETCH 1:* (UID FLAGS)", func(r *imaptest.Raw) {
		s := string(r.Bytes)
		if !strings.Contains(s, " FETCH ") {
			return
		}
		var uid string
		var flags []string
		f := strings.Fields(strings.NewReplacer("(", " ( ", ")", " ) ").Replace(s))
		for i := 0; i < len(f); i++ {
			switch f[i] {
			case "UID":
				uid = f[i+1]
			case "FLAGS":
				for j := i + 2; j < len(f) && f[j] != ")"; j++ {
					if f[j] != `\Recent` {
						flags = append(flags, f[j])
					}
				}
			}
		}
		slices.Sort(flags)
		out = append(out, uid+" "+strings.Join(flags, " "))
	}); err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(out, func(a, b string) int {
		return compareUIDs(strings.Fields(a)[0], strings.Fields(b)[0])
	})
	return out
}

func compareUIDs(a, b string) int {
	if len(a) != len(b) {
		return len(a) - len(b)
	}
	return strings.Compare(a, b)
}

// The comparison's probe (both sections) sees a checkpoint: the log then
// places the line's slow runs against it (bench/ANALYSIS.md, the 100k
// +FLAGS row).
func TestCheckpointsProbe(t *testing.T) {
	ctx := context.Background()
	o, err := StartOurs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	before := checkpoints(ctx, o.Store.Pool())
	if !strings.HasPrefix(before, "checkpoints timed ") {
		t.Fatalf("probe: %s", before)
	}
	if _, err := o.Store.Pool().Exec(ctx, "CHECKPOINT"); err != nil {
		t.Fatal(err)
	}
	// The checkpointer reports its counters after the checkpoint, not
	// always before CHECKPOINT returns (seen under -race in CI): a line of
	// seconds sees it; here, wait up to 10 s.
	after := before
	for deadline := time.Now().Add(10 * time.Second); after == before && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		after = checkpoints(ctx, o.Store.Pool())
	}
	if after == before {
		t.Errorf("10 s after a CHECKPOINT the probe still says %s", after)
	}
	// Both sections' probe says the autovacuum runs too (a count, not an
	// error: pg_stat_user_tables is read on the store's connection).
	if a := activity(ctx, o.Store.Pool()); !regexp.MustCompile(`^checkpoints timed \d+, requested \d+; autovacuum runs \d+$`).MatchString(a) {
		t.Errorf("probe: %s", a)
	}
}
