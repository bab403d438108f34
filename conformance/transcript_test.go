package conformance

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"decimail/fixtures"
	"decimail/server/imapd"
	"decimail/server/pgrun"
	"decimail/server/store"
)

const transcriptDir = "../fixtures/transcripts"

// seedEnv is our server on a fresh database with the transcripts' seed
// account (testuser/pass), built like the Dovecot account the captures ran
// on: INBOX unsubscribed; Sent, Drafts, Trash with their special-use
// attributes; every other seed folder subscribed.
type seedEnv struct {
	st   *store.Store
	user int64
	addr string
}

// startSeedServer starts our server on a fresh database with the seed
// account.
func startSeedServer(t testing.TB) *seedEnv {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, pgrun.TestDB(t), store.Options{PasswordCost: bcrypt.MinCost})
	if err != nil {
		t.Fatal(err)
	}
	srv := imapd.New(imapd.Config{AuthFailDelay: 10 * time.Millisecond}, st, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() {
		srv.Close()
		st.Close()
	})
	e := &seedEnv{st: st, addr: ln.Addr().String()}
	e.reset(t)
	return e
}

// reset (re)creates the seed account: a fresh restore of the seed, as
// before each capture (cheaper than a new database).
func (e *seedEnv) reset(t testing.TB) {
	t.Helper()
	ctx := context.Background()
	if e.user != 0 {
		if err := e.st.DeleteUser(ctx, "testuser"); err != nil {
			t.Fatal(err)
		}
	}
	u, err := e.st.CreateBareUser(ctx, "testuser", "pass")
	if err != nil {
		t.Fatal(err)
	}
	e.user = u.ID
	for _, m := range []struct{ name, use string }{{"Sent", `\Sent`}, {"Drafts", `\Drafts`}, {"Trash", `\Trash`}} {
		if _, err := e.st.CreateMailbox(ctx, u.ID, m.name, "", m.use); err != nil {
			t.Fatal(err)
		}
	}
	if err := fixtures.LoadSeed(ctx, e.st, u.ID); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"Sent", "Drafts", "Trash", "Archive", "Archive/2025", "Lists/golang"} {
		if err := e.st.Subscribe(ctx, u.ID, name); err != nil {
			t.Fatal(err)
		}
	}
}

func readExtra(t testing.TB, file string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(transcriptDir, "seed", file))
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// deliver stores one of the extra seed messages into INBOX, as the capture
// scripts APPENDed it directly to Dovecot.
func (e *seedEnv) deliver(t testing.TB, file string) {
	t.Helper()
	if _, err := e.st.Deliver(context.Background(), e.user, readExtra(t, file), store.DeliverOptions{Mailbox: "INBOX"}); err != nil {
		t.Fatal(err)
	}
}

// The state each capture started from (fixtures/transcripts/README.md): a
// fresh seed, except for these, which continue the previous capture's state
// (plus a message delivered in between).
var transcriptChains = map[string]struct{ after, deliver string }{
	"mbsync/02-incremental-sync":              {"mbsync/01-full-sync", "extra-mbsync-incremental.eml"},
	"thunderbird/02-restart-read-flag-delete": {"thunderbird/01-first-sync", ""},
}

// A message that arrived during an IDLE in the capture: delivered through
// the store in the IDLE during which Dovecot sent EXISTS.
var idleDeliveries = map[string]string{
	"thunderbird/01-first-sync-conn2.txt": "extra-thunderbird-idle.eml",
}

var connFileRe = regexp.MustCompile(`^(.*)-conn(\d+)\.txt$`)

type capture struct {
	name  string // e.g. "thunderbird/01-first-sync"
	files []string
}

// loadCaptures finds the IMAP transcripts, grouped by client and capture.
func loadCaptures(t *testing.T) map[string][]*capture {
	paths, err := filepath.Glob(filepath.Join(transcriptDir, "*", "*-conn*.txt"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no transcripts under %s (%v)", transcriptDir, err)
	}
	sort.Strings(paths)
	byClient := map[string][]*capture{}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		first, _, _ := bytes.Cut(data, []byte("\n"))
		if !bytes.Contains(first, []byte("(IMAP)")) {
			continue // swaks: SMTP, not replayed here (TRANSCRIPTS.md)
		}
		rel, _ := filepath.Rel(transcriptDir, p)
		rel = filepath.ToSlash(rel)
		m := connFileRe.FindStringSubmatch(rel)
		if m == nil {
			t.Fatalf("%s: unexpected file name", rel)
		}
		client := filepath.Dir(rel)
		cs := byClient[client]
		if len(cs) == 0 || cs[len(cs)-1].name != m[1] {
			cs = append(cs, &capture{name: m[1]})
		}
		cs[len(cs)-1].files = append(cs[len(cs)-1].files, rel)
		byClient[client] = cs
	}
	for _, cs := range byClient {
		for _, c := range cs {
			sort.Slice(c.files, func(i, j int) bool { return connNum(c.files[i]) < connNum(c.files[j]) })
		}
	}
	return byClient
}

func connNum(f string) int {
	var n int
	fmt.Sscan(connFileRe.FindStringSubmatch(f)[2], &n)
	return n
}

// TestTranscripts replays the client side of every IMAP transcript against
// our server and compares the responses with Dovecot's (TRANSCRIPTS.md).
// The connections of one capture run one after the other on one server, in
// connection order; chained captures continue on the same server.
func TestTranscripts(t *testing.T) {
	byClient := loadCaptures(t)
	clients := make([]string, 0, len(byClient))
	for c := range byClient {
		clients = append(clients, c)
	}
	sort.Strings(clients)
	for _, client := range clients {
		t.Run(client, func(t *testing.T) {
			t.Parallel()
			var env *seedEnv
			for _, capt := range byClient[client] {
				chain, chained := transcriptChains[capt.name]
				switch {
				case !chained && env == nil:
					env = startSeedServer(t)
				case !chained:
					env.reset(t)
				case env == nil:
					t.Fatalf("%s continues %s, which did not run", capt.name, chain.after)
				case chain.deliver != "":
					env.deliver(t, chain.deliver)
				}
				for _, f := range capt.files {
					t.Run(strings.TrimSuffix(filepath.Base(f), ".txt"), func(t *testing.T) {
						replayTranscript(t, env, f)
					})
				}
			}
		})
	}
}

func replayTranscript(t *testing.T, env *seedEnv, file string) {
	data, err := os.ReadFile(filepath.Join(transcriptDir, file))
	if err != nil {
		t.Fatal(err)
	}
	tr, err := ParseTranscript(file, data)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Dial(file, env.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const timeout = 20 * time.Second
	g := c.Next(timeout)
	if g == nil || g.EOF || g.Status != tr.Greeting.Status {
		t.Fatalf("greeting %v, Dovecot %q", g, tr.Greeting.Raw)
	}
	hooks := ReplayHooks{InIdle: func(cmd *TCmd) error {
		if f := idleDeliveries[file]; f != "" && lastNumber(cmd.Untagged, "EXISTS") >= 0 {
			env.deliver(t, f)
		}
		return nil
	}}
	allowed := map[Allowed]int{}
	batches := tr.Batches()
	for _, batch := range batches {
		where := abbrev(batch[0].Line, 100)
		if len(batch) > 1 {
			where += fmt.Sprintf(" (+%d pipelined, to %s)", len(batch)-1, batch[len(batch)-1].Tag)
		}
		exs, err := ReplayBatch(c, batch, hooks, timeout)
		if err != nil {
			t.Fatalf("%s: %v", where, err)
		}
		for _, p := range CompareBatch(batch, exs) {
			if p.Allowed != "" {
				allowed[p.Allowed]++
				t.Logf("allowed (%s): %s: %s", p.Allowed, where, p.Msg)
				continue
			}
			t.Errorf("%s: %s", where, p.Msg)
		}
	}
	t.Logf("%s: %d commands in %d batches; allowed differences: %v", file, len(tr.Cmds), len(batches), allowed)
}
