package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"decimail/internal/imaptest"
	"decimail/server/pgrun"
	"decimail/server/store"
)

// jsonDaemon is `decimail serve -log-format json` with every listener on a
// port the kernel picks, the admin listener included.
type jsonDaemon struct {
	addrs map[string]string // daemon -> address, from the "listening" lines
	mu    sync.Mutex
	lines []map[string]any // every log line, decoded
}

func (d *jsonDaemon) logLines() []map[string]any {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]map[string]any(nil), d.lines...)
}

func startJSONDaemon(t *testing.T, dsn string, extra ...string) *jsonDaemon {
	t.Helper()
	args := append([]string{"serve", "-log-format", "json", "-imap", "127.0.0.1:0", "-smtp", "127.0.0.1:0",
		"-submission", "127.0.0.1:0", "-admin", "127.0.0.1:0", "-hostname", "mx.test"}, extra...)
	cmd := exec.Command(binary(t), args...)
	cmd.Env = dbEnv(t, dsn)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	d := &jsonDaemon{addrs: map[string]string{}}
	listening := make(chan [2]string, 8)
	go func() {
		defer close(listening)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			fmt.Fprintln(os.Stderr, sc.Text())
			var l map[string]any
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				l = map[string]any{"notjson": sc.Text()}
			}
			d.mu.Lock()
			d.lines = append(d.lines, l)
			d.mu.Unlock()
			if l["msg"] == "listening" {
				listening <- [2]string{fmt.Sprint(l["daemon"]), fmt.Sprint(l["addr"])}
			}
		}
	}()
	timeout := time.After(30 * time.Second)
	for len(d.addrs) < 4 {
		select {
		case l, ok := <-listening:
			if !ok {
				t.Fatal("decimail serve exited before listening (log above)")
			}
			d.addrs[l[0]] = l[1]
		case <-timeout:
			t.Fatalf("decimail serve did not log its listeners within 30 s: %v", d.addrs)
		}
	}
	return d
}

// scrape reads /metrics into a map from series ("name{labels}") to value.
func scrape(t *testing.T, admin string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics: %s", resp.Status)
	}
	m := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("/metrics line %q: %v", line, err)
		}
		m[line[:i]] = v
	}
	return m
}

func healthz(admin string) (int, string, error) {
	resp, err := http.Get("http://" + admin + "/healthz")
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// Issue 18: a running server's /metrics counts the IMAP commands of a
// session by name and status, its connections, its deliveries, and shows
// the pools, the notifier, the queue and the indexer backlog; /healthz is
// 200 while the database answers and 503 once it is gone; with
// -log-format json every line of a session carries its session id.
func TestMetricsAndHealth(t *testing.T) {
	dsn := pgrun.TestDB(t)
	run := cli(t, dbEnv(t, dsn))
	for _, args := range [][]string{{"user", "add", "alice", "-password", "pw"}, {"address", "add", "alice@example.test", "alice"}} {
		if out, err := run(args...); err != nil {
			t.Fatalf("%q: %v\n%s", args, err, out)
		}
	}
	d := startJSONDaemon(t, dsn)
	if err := sendMail(d.addrs["smtp"], "counted"); err != nil {
		t.Fatal(err)
	}
	ic, err := imaptest.Dial(d.addrs["imap"])
	if err != nil {
		t.Fatal(err)
	}
	defer ic.Close()
	if err := ic.Login("alice", "pw"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"SELECT INBOX", "NOOP", "NOOP", "NOOP", "UID FETCH 1:* FLAGS"} {
		if _, _, err := ic.Command(c); err != nil {
			t.Fatalf("%s: %v", c, err)
		}
	}
	ic.Command("XYZZY")          // unknown: BAD, counted as UNKNOWN
	ic.Command("SELECT Nowhere") // NO
	ic.Command("LOGIN alice pw") // BAD in the authenticated state
	ic.Command("SELECT INBOX")   // back to selected
	ic.Command("NOOP")           // the 4th NOOP

	m := scrape(t, d.addrs["admin"])
	want := map[string]float64{
		`decimail_connections{daemon="imap"}`:                                           1,
		`decimail_connections{daemon="smtp"}`:                                           0,
		`decimail_connections{daemon="submission"}`:                                     0,
		`decimail_imap_command_duration_seconds_count{command="LOGIN",status="OK"}`:     1,
		`decimail_imap_command_duration_seconds_count{command="LOGIN",status="BAD"}`:    1,
		`decimail_imap_command_duration_seconds_count{command="NOOP",status="OK"}`:      4,
		`decimail_imap_command_duration_seconds_count{command="SELECT",status="OK"}`:    2,
		`decimail_imap_command_duration_seconds_count{command="SELECT",status="NO"}`:    1,
		`decimail_imap_command_duration_seconds_count{command="UID FETCH",status="OK"}`: 1,
		`decimail_imap_command_duration_seconds_count{command="UNKNOWN",status="BAD"}`:  1,
		`decimail_smtp_deliveries_total{listener="mx",result="ok"}`:                     1,
		`decimail_outbound_queue_messages`:                                              0,
		`decimail_outbound_queue_oldest_seconds`:                                        0,
		`decimail_backlog_scrape_ok`:                                                    1,
		`decimail_db_pool_max_connections{class="delivery"}`:                            m[`decimail_db_pool_max_connections{class="delivery"}`],
	}
	for k, v := range want {
		if got, ok := m[k]; !ok || got != v {
			t.Errorf("%s = %v (present %v), want %v", k, got, ok, v)
		}
	}
	// Every NOOP took less than 10 s: all four are in the le="10" bucket.
	if got := m[`decimail_imap_command_duration_seconds_bucket{command="NOOP",status="OK",le="10"}`]; got != 4 {
		t.Errorf("NOOP le=10 bucket = %v, want 4", got)
	}
	for _, class := range []string{"sessions", "delivery", "background"} {
		if m[`decimail_db_pool_max_connections{class="`+class+`"}`] < 1 {
			t.Errorf("pool %s: no max_connections in %v", class, m)
		}
		if _, ok := m[`decimail_db_pool_connections{class="`+class+`",state="idle"}`]; !ok {
			t.Errorf("pool %s: no idle connections gauge", class)
		}
	}
	if v, ok := m[`decimail_indexer_backlog_messages`]; !ok || v < 0 {
		t.Errorf("indexer backlog %v, %v", v, ok)
	}
	// The listener starts with the daemons (config subscription); IDLE
	// sessions need it.
	if m[`decimail_notifier_listening`] != 1 {
		t.Errorf("decimail_notifier_listening = %v, want 1", m[`decimail_notifier_listening`])
	}
	// The reads of changes, by answer, and the records writers continued:
	// counters, present from the start.
	for _, k := range []string{`decimail_change_reads_total{answer="shared"}`, `decimail_change_reads_total{answer="store"}`,
		`decimail_change_records_continued_total`} {
		if v, ok := m[k]; !ok || v < 0 {
			t.Errorf("%s = %v (present %v)", k, v, ok)
		}
	}
	// Measured by a NOTIFY to itself at scrape time: some time, and less
	// than the scrape's timeout.
	if lag, ok := m[`decimail_notifier_lag_seconds`]; !ok || lag <= 0 || lag >= 5 {
		t.Errorf("decimail_notifier_lag_seconds = %v (present %v), want in (0, 5)", lag, ok)
	}

	// A queued message: its age shows.
	st := openTestStore(t, dsn)
	if _, err := st.Pool().Exec(context.Background(), `INSERT INTO outbound_queue (mail_from, rcpt_to, data, created_at, next_attempt)
		VALUES ('alice@example.test', '{bob@remote.example}', 'x', now() - interval '1 hour', now() + interval '1 day')`); err != nil {
		t.Fatal(err)
	}
	m = scrape(t, d.addrs["admin"])
	if m[`decimail_outbound_queue_messages`] != 1 || m[`decimail_outbound_queue_oldest_seconds`] < 3600 {
		t.Errorf("queue: %v messages, oldest %v s; want 1, >= 3600", m[`decimail_outbound_queue_messages`], m[`decimail_outbound_queue_oldest_seconds`])
	}

	// Session ids: every line of the IMAP and SMTP sessions has one.
	perDaemon := map[string]int{}
	for _, l := range d.logLines() {
		daemon, _ := l["daemon"].(string)
		if daemon != "imap" && daemon != "smtp" || l["msg"] == "listening" || l["msg"] == "configuration reloaded" {
			continue
		}
		if _, ok := l["session"]; !ok {
			t.Errorf("log line of %s without a session: %v", daemon, l)
		}
		perDaemon[daemon]++
	}
	if perDaemon["imap"] == 0 || perDaemon["smtp"] == 0 {
		t.Errorf("session log lines per daemon: %v; want some of imap and smtp", perDaemon)
	}

	if code, body, err := healthz(d.addrs["admin"]); err != nil || code != 200 || body != "ok\n" {
		t.Fatalf("/healthz with the database: %d %q %v", code, body, err)
	}
	// The database goes away.
	st.Close()
	inst, _, err := pgrun.Shared(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	if err := pgrun.DropDB(context.Background(), inst.DSN, cfg.Database); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		code, body, err := healthz(d.addrs["admin"])
		if err == nil && code == 503 {
			if strings.Contains(body, cfg.Database) {
				t.Errorf("/healthz tells the database name: %q", body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/healthz without the database: %d %q %v, want 503", code, body, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if m := scrape(t, d.addrs["admin"]); m[`decimail_backlog_scrape_ok`] != 0 {
		t.Errorf("decimail_backlog_scrape_ok without the database = %v, want 0", m[`decimail_backlog_scrape_ok`])
	}
}

func openTestStore(t *testing.T, dsn string) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), dsn, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	return st
}
