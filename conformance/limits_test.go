package conformance

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"decimail/server/imapd"
	"decimail/server/pgrun"
	"decimail/server/store"
)

// limitsServer is a Decimail server with cfg on a fresh database, with a
// user holding a few messages and mailboxes, one of them with a name of
// the longest length allowed; it returns a logged-in connection.
func limitsServer(t *testing.T, cfg imapd.Config) *Conn {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, pgrun.TestDB(t), store.Options{PasswordCost: bcrypt.MinCost})
	if err != nil {
		t.Fatal(err)
	}
	u, err := st.CreateBareUser(ctx, "u", "pass")
	if err != nil {
		t.Fatal(err)
	}
	level := strings.Repeat("l", 249)
	for _, name := range []string{"Archive/2025", "Work", strings.Join([]string{level, level, level, level + "z"}, "/")} {
		if _, err := st.CreateMailbox(ctx, u.ID, name, "", ""); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 20 {
		raw := fmt.Sprintf("From: a@example.com\r\nSubject: message %d\r\nX: a%d\r\n\r\nbody %d\r\n", i, i, i)
		if _, err := st.Deliver(ctx, u.ID, []byte(raw), store.DeliverOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	cfg.AuthFailDelay = 10 * time.Millisecond
	srv := imapd.New(cfg, st, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	c, err := Dial("c1", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		srv.Close()
		st.Close()
	})
	if err := c.Login("u", "pass"); err != nil {
		t.Fatal(err)
	}
	return c
}

// expectStatus runs one command and checks its tagged status and response
// code (its time is logged, not asserted).
func expectStatus(t *testing.T, c *Conn, what, line, status, code string, lits ...[]byte) []*Resp {
	t.Helper()
	start := time.Now()
	untagged, done, err := c.Command("t", line, lits...)
	if done == nil {
		t.Fatalf("%s: %v", what, err)
	}
	t.Logf("%s: %s in %v", what, clip(done.Raw), time.Since(start).Round(time.Millisecond))
	if done.Status != status || !strings.HasPrefix(strings.TrimPrefix(done.Raw, "t "+status+" "), code) {
		t.Errorf("%s: %s, want %s %s", what, clip(done.Raw), status, code)
	}
	return untagged
}

func clip(s string) string {
	if len(s) > 120 {
		return s[:120] + "…"
	}
	return s
}

// Issue 13's attacks at full size, against a server with the default
// limits: each is refused with NO [LIMIT] (or answered, for copies of one
// key), never NO [SERVERBUG], and the session goes on. The old code
// spent minutes and gigabytes of Postgres memory on the searches, and
// answered a 900,000-byte CREATE with SERVERBUG.
func TestBoundedCostPerCommand(t *testing.T) {
	c := limitsServer(t, imapd.Config{})
	expectStatus(t, c, "SELECT", "SELECT INBOX", "OK", "")

	var distinct strings.Builder
	for i := range 4000 {
		fmt.Fprintf(&distinct, " HEADER X %03x", i)
	}
	for i := range 1000 {
		fmt.Fprintf(&distinct, " BODY %03x", i) // 5,000 keys within the 64 KiB line
	}
	expectStatus(t, c, "5,000 distinct HEADER and BODY keys", "UID SEARCH"+distinct.String(), "NO", "[LIMIT]")

	untagged := expectStatus(t, c, "5,000 copies of HEADER X a1", "UID SEARCH"+strings.Repeat(" HEADER X a1", 5000), "OK", "")
	// a1 is in X: a1 and a10..a19, messages 2 and 11-20.
	if len(untagged) != 1 || untagged[0].Raw != "* SEARCH 2 11 12 13 14 15 16 17 18 19 20" {
		t.Errorf("5,000 copies of HEADER X a1: %v", untagged)
	}
	expectStatus(t, c, "4,000 copies of TEXT a", "UID SEARCH"+strings.Repeat(" TEXT a", 4000), "OK", "")
	expectStatus(t, c, "60,000-character HEADER value", "UID SEARCH HEADER Subject {60000}", "NO", "[LIMIT]",
		[]byte(strings.Repeat("x", 60000)))
	expectStatus(t, c, "1 MiB LIST pattern", "LIST \"\" {1048576}", "NO", "[LIMIT]",
		[]byte(strings.Repeat("%", 1<<20)))
	expectStatus(t, c, "CREATE of 60,000 bytes", "CREATE {60000}", "NO", "[LIMIT]", []byte(strings.Repeat("n", 60000)))
	expectStatus(t, c, "CREATE of 900,000 bytes", "CREATE {900000}", "NO", "[LIMIT]", []byte(strings.Repeat("n", 900000)))
	expectStatus(t, c, "NOOP", "NOOP", "OK", "")
}

// With the pattern limit off, LIST matches 1 MiB patterns in time linear
// in the names (query.ListPattern): the answers come, and are right. The
// old matcher took pattern × name steps per name: 1 MiB × 1,000 bytes for
// the long name alone.
func TestListHugePatternsWithoutLimit(t *testing.T) {
	c := limitsServer(t, imapd.Config{MaxListPattern: -1})
	for _, tc := range []struct {
		what, pattern string
		want          int // names listed
	}{
		{"1 MiB of %", strings.Repeat("%", 1<<20), 4}, // INBOX, Archive, Work, the long name's first level
		{"1 MiB of *%", strings.Repeat("*%", 1<<19), 8},
		{"1 MiB of %/", strings.Repeat("%/", 1<<19), 0},
		{"1 MiB of a literal", strings.Repeat("l", 1<<20), 0},
		{"1 MiB of l%", strings.Repeat("l%", 1<<19), 0},
	} {
		untagged := expectStatus(t, c, tc.what, "LIST \"\" {1048576}", "OK", "", []byte(tc.pattern))
		if len(untagged) != tc.want {
			t.Errorf("%s: %d names listed, want %d", tc.what, len(untagged), tc.want)
		}
	}
}
