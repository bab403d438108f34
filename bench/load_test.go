package bench

import (
	"context"
	"os"
	"testing"
	"time"

	"decimail/server/pgrun"
)

func TestMain(m *testing.M) { os.Exit(pgrun.RunTests(m)) }

// TestLoaders is the smoke test of both loaders: some messages through the
// store and some over APPEND (into ours, and into Dovecot when installed), then
// a header listing that sees all of them (20 + 20 messages).
func TestLoaders(t *testing.T) {
	ctx := context.Background()
	msgs := Corpus(40, 3)
	o, err := StartOurs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if err := LoadStore(ctx, o.Store, o.UserID, "INBOX", msgs[:20]); err != nil {
		t.Fatal(err)
	}
	if err := LoadIMAP(o.Addr, o.User, o.Pass, "INBOX", msgs[20:]); err != nil {
		t.Fatal(err)
	}
	checkListing(t, &o.Target, len(msgs))
	if _, err := os.Stat(DovecotBinary); err != nil {
		t.Log("dovecot not installed: skipping its loader check")
		return
	}
	d, err := StartDovecot(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	t0 := time.Now()
	if err := LoadIMAP(d.Addr, d.User, d.Pass, "INBOX", msgs); err != nil {
		t.Fatal(err)
	}
	t.Logf("dovecot: appended %d in %v (MULTIAPPEND %v)", len(msgs), time.Since(t0), d.Caps())
	checkListing(t, &d.Target, len(msgs))
}

func checkListing(t *testing.T, tg *Target, want int) {
	t.Helper()
	c, err := Login(tg.Addr, tg.User, tg.Pass)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Logout()
	if err := c.Stream("SELECT INBOX", nil); err != nil {
		t.Fatal(err)
	}
	n, err := count(c, "UID FETCH 1:* (UID RFC822.SIZE FLAGS INTERNALDATE ENVELOPE BODYSTRUCTURE)", "FETCH")
	if err != nil {
		t.Fatal(err)
	}
	if n != want {
		t.Fatalf("%s: header listing returned %d messages, want %d", tg.Name, n, want)
	}
	seen, err := searchCount(c, "UID SEARCH SEEN")
	if err != nil {
		t.Fatal(err)
	}
	if seen == 0 || seen == want {
		t.Fatalf("%s: %d of %d seen: flags were not loaded", tg.Name, seen, want)
	}
}
