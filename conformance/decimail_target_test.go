package conformance

import (
	"context"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"decimail/server/imapd"
	"decimail/server/pgrun"
	"decimail/server/store"
)

func TestMain(m *testing.M) { os.Exit(pgrun.RunTests(m)) }

func init() { decimailTarget = func(t testing.TB) Target { return &decimail{} } }

// decimail runs each scenario on a fresh database (cloned from the migrated
// template) with a fresh server on a loopback port and one bare account
// (INBOX only, as the scenarios expect of any server). Each Reset uses a new
// user name, so that Define can find the store and user of the scenario.
type decimail struct {
	n     atomic.Int64
	users sync.Map // user name -> decimailAccount
}

type decimailAccount struct {
	st *store.Store
	id int64
}

func (*decimail) Name() string { return "decimail" }

func (d *decimail) Reset(t testing.TB) (string, string, string) {
	ctx := context.Background()
	st, err := store.Open(ctx, pgrun.TestDB(t), store.Options{PasswordCost: bcrypt.MinCost})
	if err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("u%d", d.n.Add(1))
	u, err := st.CreateBareUser(ctx, name, "pass")
	if err != nil {
		t.Fatal(err)
	}
	d.users.Store(name, decimailAccount{st, u.ID})
	srv := imapd.New(imapd.Config{AuthFailDelay: 10 * time.Millisecond}, st, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() {
		d.users.Delete(name)
		srv.Close()
		st.Close()
	})
	return ln.Addr().String(), name, "pass"
}

// Define makes a query mailbox (fixture directive define), see Definer.
func (d *decimail) Define(t testing.TB, user, name, definition string) {
	t.Helper()
	v, ok := d.users.Load(user)
	if !ok {
		t.Fatalf("define %s: unknown user %s", name, user)
	}
	a := v.(decimailAccount)
	if _, err := a.st.DefineMailbox(context.Background(), a.id, name, definition); err != nil {
		t.Fatalf("define %s %q: %v", name, definition, err)
	}
}

// Set sets a per-user setting (fixture directive set), see Setter.
func (d *decimail) Set(t testing.TB, user, key, value string) {
	t.Helper()
	v, ok := d.users.Load(user)
	if !ok {
		t.Fatalf("set %s: unknown user %s", key, user)
	}
	if err := v.(decimailAccount).st.SetUserSetting(context.Background(), user, key, value); err != nil {
		t.Fatalf("set %s %q: %v", key, value, err)
	}
}
