package conformance

import (
	"context"
	"net"
	"os"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"decimail/server/imapd"
	"decimail/server/pgrun"
	"decimail/server/store"
)

func TestMain(m *testing.M) { os.Exit(pgrun.RunTests(m)) }

func init() { decimailTarget = func(t testing.TB) Target { return decimail{} } }

// decimail runs each scenario on a fresh database (cloned from the migrated
// template) with a fresh server on a loopback port and one bare account
// (INBOX only, as the scenarios expect of any server).
type decimail struct{}

func (decimail) Name() string { return "decimail" }

func (decimail) Reset(t testing.TB) (string, string, string) {
	ctx := context.Background()
	st, err := store.Open(ctx, pgrun.TestDB(t), store.Options{PasswordCost: bcrypt.MinCost})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateBareUser(ctx, "u1", "pass"); err != nil {
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
	return ln.Addr().String(), "u1", "pass"
}
