package conformance

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"decimail/fixtures"
	"decimail/internal/imaptest"
	"decimail/server/imapd"
	"decimail/server/pgrun"
	"decimail/server/store"
)

const transcriptDir = "../fixtures/transcripts"

// seedEnv is our server on a fresh database with a transcript's account
// (testuser/pass, built by SetupAccount: the Dovecot captures' seed
// account, or the seed with the default views for the Decimail captures).
type seedEnv struct {
	st   *store.Store
	user int64
	addr string
}

// startSeedServer starts our server on a fresh database with the seed
// account.
func startSeedServer(t testing.TB) *seedEnv {
	return startAccountServer(t, AccountSeed)
}

// startAccountServer starts our server on a fresh database with the named
// account setup (AccountSetups).
func startAccountServer(t testing.TB, setup string) *seedEnv {
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
	e.resetTo(t, setup)
	return e
}

// reset (re)creates the seed account: a fresh restore of the seed, as
// before each capture (cheaper than a new database).
func (e *seedEnv) reset(t testing.TB) { e.resetTo(t, AccountSeed) }

// resetTo (re)creates testuser with the named account setup.
func (e *seedEnv) resetTo(t testing.TB, setup string) {
	t.Helper()
	ctx := context.Background()
	if e.user != 0 {
		if err := e.st.DeleteUser(ctx, SeedUser); err != nil {
			t.Fatal(err)
		}
	}
	u, err := SetupAccount(ctx, e.st, setup)
	if err != nil {
		t.Fatal(err)
	}
	e.user = u
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
// the store in the IDLE during which the captured server sent EXISTS
// (conformance/capture delivers it the same way: scenario
// thunderbird/06-inbox-new-mail).
var idleDeliveries = map[string]string{
	"thunderbird/01-first-sync-conn2.txt":     "extra-thunderbird-idle.eml",
	"thunderbird/06-inbox-new-mail-conn1.txt": "extra-thunderbird-idle.eml",
}

// Another client's changes between two sessions of the captured client
// (conformance.OtherSessions), run before the connection that followed
// them in the capture, as conformance/capture ran them.
var otherSessionsBefore = map[string]string{
	"thunderbird/07-condstore-resync-conn2.txt": "flags",
	"thunderbird/07-condstore-resync-conn3.txt": "expunge",
}

var connFileRe = regexp.MustCompile(`^(.*)-conn(\d+)\.txt$`)

type capture struct {
	name    string // e.g. "thunderbird/01-first-sync"
	files   []string
	account string // the "# account:" header of its first connection; "" = AccountSeed
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
			c.account = loadTranscript(t, c.files[0]).Header["account"]
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
			// A capture's mod-sequences, bound across its connections and
			// the captures that continue it (ModSeqs).
			var ms *ModSeqs
			for _, capt := range byClient[client] {
				chain, chained := transcriptChains[capt.name]
				if !chained || ms == nil {
					ms = NewModSeqs()
				}
				switch {
				case !chained && env == nil:
					env = startAccountServer(t, capt.account)
				case !chained:
					env.resetTo(t, capt.account)
				case env == nil:
					t.Fatalf("%s continues %s, which did not run", capt.name, chain.after)
				case chain.deliver != "":
					env.deliver(t, chain.deliver)
				}
				for _, f := range capt.files {
					t.Run(strings.TrimSuffix(filepath.Base(f), ".txt"), func(t *testing.T) {
						if name := otherSessionsBefore[f]; name != "" {
							if err := RunOtherSession(env.addr, name); err != nil {
								t.Fatal(err)
							}
						}
						replayTranscript(t, env, f, ms)
					})
				}
				checkOutcome(t, env, capt.name)
			}
		})
	}
}

// checkOutcome compares where every seed message is after the replay of a
// capture with where it was after the capture (NAME.outcome, written by
// conformance/capture; the Dovecot captures have none). The outcome is what
// the captured session did to the mail; the transcript comparison alone
// would miss, say, a MOVE answered OK that moved nothing.
func checkOutcome(t *testing.T, env *seedEnv, name string) {
	t.Helper()
	want, err := os.ReadFile(filepath.Join(transcriptDir, name+".outcome"))
	if os.IsNotExist(err) {
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	// The server answered the client's last command; changes it committed
	// lazily are visible to every other connection by now (one database).
	got, err := Outcome(context.Background(), env.st, env.user)
	if err != nil {
		t.Fatal(err)
	}
	if d := lineDiff(string(want), got); d != "" {
		t.Errorf("%s: after the replay the messages are not where the capture left them (-capture +replay):\n%s"+
			"(if the server's behaviour changed on purpose, re-capture: make capture CLIENT=%s; TRANSCRIPTS.md \"Capturing\")",
			name, d, filepath.Dir(name))
	}
}

// lineDiff lists the lines of a and b that differ, by position (outcome
// files have one line per message, in a fixed order).
func lineDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	var d strings.Builder
	for i := 0; i < max(len(al), len(bl)); i++ {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			fmt.Fprintf(&d, "- %s\n+ %s\n", x, y)
		}
	}
	return d.String()
}

// loadTranscript reads and parses a captured transcript (transcriptDir).
func loadTranscript(t testing.TB, file string) *Transcript {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(transcriptDir, file))
	if err != nil {
		t.Fatal(err)
	}
	tr, err := ParseTranscript(file, data)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func replayTranscript(t *testing.T, env *seedEnv, file string, ms *ModSeqs) {
	tr := loadTranscript(t, file)
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
	}, Rewrite: ms.Rewrite}
	// The reference: Dovecot, or Decimail itself at capture time
	// (conformance/capture); problems name it.
	ref := "Dovecot"
	if strings.HasPrefix(tr.Header["server"], "Decimail") {
		ref = "the capture"
	}
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
		for _, p := range CompareBatch(batch, exs, ms) {
			msg := p.Msg
			if ref != "Dovecot" {
				msg = strings.ReplaceAll(msg, "Dovecot", ref)
			}
			if p.Allowed != "" {
				allowed[p.Allowed]++
				t.Logf("allowed (%s): %s: %s", p.Allowed, where, msg)
				continue
			}
			t.Errorf("%s: %s", where, msg)
		}
	}
	t.Logf("%s: %d commands in %d batches; allowed differences: %v", file, len(tr.Cmds), len(batches), allowed)
}

// TestTranscriptParse checks the transcript parser on the fixtures: every
// file parses, every command has Dovecot's tagged response (or the client
// closed during it), literals are re-framed (BODY[] equals the seed file),
// pipelining and continuations are recognised.
func TestTranscriptParse(t *testing.T) {
	for _, cs := range loadCaptures(t) {
		for _, c := range cs {
			for _, f := range c.files {
				tr := loadTranscript(t, f)
				for i, cmd := range tr.Cmds {
					if cmd.Done == nil && !(i == len(tr.Cmds)-1 && tr.ClientClosed) {
						t.Errorf("%s: %s has no tagged response", f, cmd.Line)
					}
				}
			}
		}
	}
	mb := loadTranscript(t, "mbsync/01-full-sync-conn1.txt")
	seed, err := fixtures.Seed()
	if err != nil {
		t.Fatal(err)
	}
	var body []byte
	for _, c := range mb.Cmds {
		if c.Line == "23 UID FETCH 18 (BODY.PEEK[])" {
			// Pipelined: Dovecot's data may sit with a neighbour; search the batch.
			for _, b := range mb.Batches() {
				if slices.Contains(b, c) {
					for _, x := range b {
						if v, ok := mapFetch(x.Untagged)["UID 18"]; ok {
							body = []byte(v.items["BODY[]"].S)
						}
					}
				}
			}
			if !c.Pipelined {
				t.Errorf("mbsync UID FETCH 18 not recognised as pipelined")
			}
		}
	}
	if want := seed[17].Raw; !bytes.Equal(body, want) {
		t.Errorf("mbsync BODY[] of UID 18: %d octets, seed file %d", len(body), len(want))
	}
	tb := loadTranscript(t, "thunderbird/01-first-sync-conn2.txt")
	if c := tb.Cmds[0]; c.Name != "AUTHENTICATE" || len(c.Conts) != 1 || c.Plus != 1 {
		t.Errorf("thunderbird AUTHENTICATE: %+v", c)
	}
	if c := tb.Cmds[len(tb.Cmds)-1]; c.Name != "IDLE" || c.Done != nil || len(c.Conts) != 0 {
		t.Errorf("thunderbird final IDLE: %+v", c)
	}
	mutt := loadTranscript(t, "mutt/01-session-conn1.txt")
	if n := len(mutt.Batches()); n >= len(mutt.Cmds) {
		t.Errorf("mutt: %d batches for %d commands, pipelining not recognised", n, len(mutt.Cmds))
	}
}

func mapFetch(rs []*Resp) map[string]*fetchRec {
	_, m := mergeFetch(classify(rs, nil).fetch)
	return m
}

// TestTranscriptCompare checks that CompareBatch finds differences: Dovecot's
// own answers compare clean, altered ones do not.
func TestTranscriptCompare(t *testing.T) {
	file := "thunderbird/02-restart-read-flag-delete-conn2.txt"
	tr := loadTranscript(t, file)
	same := func(b []*TCmd) []*Exchange {
		var exs []*Exchange
		for _, c := range b {
			exs = append(exs, &Exchange{Untagged: c.Untagged, Done: c.Done, Plus: c.Plus})
		}
		return exs
	}
	for _, b := range tr.Batches() {
		for _, p := range CompareBatch(b, same(b), nil) {
			if p.Allowed == "" {
				t.Errorf("%s: identical answers differ: %s", b[0].Line, p.Msg)
			}
		}
	}
	mutate := func(line, from, to string) []Problem {
		for _, b := range tr.Batches() {
			if b[0].Line != line {
				continue
			}
			exs := same(b)
			var us []*Resp
			for _, r := range exs[0].Untagged {
				if strings.Contains(r.Raw, from) {
					nr, err := imaptest.ReadResp(bufio.NewReader(strings.NewReader(strings.Replace(r.Raw, from, to, 1) + "\r\n")))
					if err != nil {
						t.Fatal(err)
					}
					r = nr
				}
				us = append(us, r)
			}
			exs[0].Untagged = us
			var bad []Problem
			for _, p := range CompareBatch(b, exs, nil) {
				if p.Allowed == "" {
					bad = append(bad, p)
				}
			}
			return bad
		}
		t.Fatalf("no command %q", line)
		return nil
	}
	for _, m := range []struct{ line, from, to string }{
		{"10 UID fetch 1:* (FLAGS)", `(UID 12 FLAGS (\Flagged \Seen))`, `(UID 12 FLAGS (\Seen))`},
		{"10 UID fetch 1:* (FLAGS)", `* 30 FETCH (UID 30 FLAGS ())`, `* 30 FETCH (UID 29 FLAGS ())`},
		{"10 UID fetch 1:* (FLAGS)", `* 31 FETCH (UID 31 FLAGS ())`, `* 31 NOTHING`},
		{"9 select \"INBOX\"", `* 31 EXISTS`, `* 30 EXISTS`},
		{"9 select \"INBOX\"", `* OK [UIDNEXT 32]`, `* OK [UIDNEXT 33]`},
		{"21 uid move 31 \"Trash\"", `* 31 EXPUNGE`, `* 30 EXPUNGE`},
		{"21 uid move 31 \"Trash\"", ` 31 3]`, ` 31 4]`},
	} {
		if len(mutate(m.line, m.from, m.to)) == 0 {
			t.Errorf("%s: %q -> %q not detected", m.line, m.from, m.to)
		}
	}
}
