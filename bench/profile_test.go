package bench

import (
	"context"
	"net"
	"os"
	"runtime/pprof"
	"testing"
	"time"

	"decimail/server/imapd"
	"decimail/server/store"
)

// TestProfileHeaderListing writes a CPU profile of the server side of the
// header listing: an imapd in this process on an already loaded database
// (DECIMAIL_BENCH_PROFILE_DSN, account u/pw, e.g. the database of a running
// comparison), 10 listings, profile in DECIMAIL_BENCH_PROFILE_OUT
// (default /tmp/decimail-headers.prof). Inspect with
// `go tool pprof -top bench.test /tmp/decimail-headers.prof`.
func TestProfileHeaderListing(t *testing.T) {
	dsn := os.Getenv("DECIMAIL_BENCH_PROFILE_DSN")
	if dsn == "" {
		t.Skip("set DECIMAIL_BENCH_PROFILE_DSN to a loaded database")
	}
	out := os.Getenv("DECIMAIL_BENCH_PROFILE_OUT")
	if out == "" {
		out = "/tmp/decimail-headers.prof"
	}
	ctx := context.Background()
	st, err := store.Open(ctx, dsn, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := imapd.New(imapd.Config{}, st, nil)
	go srv.Serve(ln)
	defer srv.Close()
	c, err := Login(ln.Addr().String(), "u", "pw")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Cmd("SELECT INBOX", nil); err != nil {
		t.Fatal(err)
	}
	const cmd = "UID FETCH 1:* (UID RFC822.SIZE FLAGS INTERNALDATE ENVELOPE BODYSTRUCTURE)"
	if _, err := c.Count(cmd, "FETCH"); err != nil { // warm-up
		t.Fatal(err)
	}
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pprof.StartCPUProfile(f)
	for range 10 {
		t0 := time.Now()
		n, err := c.Count(cmd, "FETCH")
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%d messages in %v", n, time.Since(t0))
	}
	for range 10 {
		t0 := time.Now()
		n, err := c.Count("FETCH 1:* (UID FLAGS)", "FETCH")
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("FETCH (UID FLAGS): %d messages in %v", n, time.Since(t0))
	}
	pprof.StopCPUProfile()
	t.Logf("CPU profile in %s", out)
}
