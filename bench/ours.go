package bench

import (
	"context"
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/bcrypt"

	"decimail/server/imapd"
	"decimail/server/pgrun"
	"decimail/server/store"
)

// Target is an IMAP server under measurement with one account.
type Target struct {
	Name       string
	Addr       string // IMAP address
	NotifyAddr string // a second server process on the same mail (cross-process IDLE); may equal Addr
	User, Pass string
	Stop       func()
	// Virtual maps a view's name to the same view as a mailbox of Dovecot's
	// virtual plugin (VirtualViews), for the line that compares views with
	// their like-for-like peer; nil on ours, whose views are the views.
	Virtual map[string]string
}

// Ours is Decimail on a fresh database: one imapd per store, two stores (two
// "processes" on one database) so that notifications cross processes.
type Ours struct {
	Target
	DSN      string
	Store    *store.Store // behind Addr
	Store2   *store.Store // behind NotifyAddr
	UserID   int64
	adminDSN string
	dbName   string
	servers  []*imapd.Server
}

var dbSeq atomic.Int64

// StartOurs clones a fresh database from the shared test cluster (pgrun) and
// serves it on two loopback listeners.
func StartOurs(ctx context.Context) (*Ours, error) {
	inst, tpl, err := pgrun.Shared(ctx)
	if err != nil {
		return nil, err
	}
	o := &Ours{adminDSN: inst.DSN, dbName: fmt.Sprintf("bench_%d_%d", os.Getpid(), dbSeq.Add(1))}
	if o.DSN, err = pgrun.CloneDB(ctx, inst.DSN, tpl, o.dbName); err != nil {
		return nil, err
	}
	if err := o.serve(ctx); err != nil {
		o.Close()
		return nil, err
	}
	u, err := o.Store.CreateUser(ctx, "u", "pw")
	if err != nil {
		o.Close()
		return nil, err
	}
	if err := o.Store.AddAddress(ctx, "u@bench.test", "u"); err != nil {
		o.Close()
		return nil, err
	}
	for _, k := range []string{"auth_addr_free", "auth_user_free"} {
		if err := o.Store.SetConfig(ctx, k, fmt.Sprint(AuthAllowance)); err != nil {
			o.Close()
			return nil, err
		}
	}
	o.UserID = u.ID
	return o, nil
}

// AuthAllowance is the failed-login allowance (auth_addr_free,
// auth_user_free) of the benchmarks' account, in the store's options and
// in the configuration table (for `decimail serve` on the database, the
// memory line's 2,000 connections): the limiter counts a login from
// 127.0.0.1 as failed until it succeeds, and the lines log in many at once.
// The limiter has its own tests (store/authlimit_test.go).
const AuthAllowance = 5000

// OpenOurs serves an existing database (one StartOurs made and kept) with
// account u/pw; Close leaves the database in place.
func OpenOurs(ctx context.Context, dsn string) (*Ours, error) {
	o := &Ours{DSN: dsn}
	if err := o.serve(ctx); err != nil {
		o.Close()
		return nil, err
	}
	u, err := o.Store.UserByName(ctx, "u")
	if err != nil {
		o.Close()
		return nil, err
	}
	o.UserID = u.ID
	return o, nil
}

// Keep makes Close leave the database in place.
func (o *Ours) Keep() { o.dbName = "" }

// serve opens the two stores on o.DSN and starts an imapd on each.
func (o *Ours) serve(ctx context.Context) error {
	var err error
	// The failed-login limiter counts a login as failed until it succeeds:
	// 50 clients logging in at once from 127.0.0.1 (the concurrent line)
	// exceed its defaults, as in the many-sessions line (AuthAllowance).
	opt := store.Options{PasswordCost: bcrypt.MinCost, Auth: store.AuthPolicy{AddrFree: AuthAllowance, UserFree: AuthAllowance}}
	if o.Store, err = store.Open(ctx, o.DSN, opt); err != nil {
		return err
	}
	if o.Store2, err = store.Open(ctx, o.DSN, opt); err != nil {
		return err
	}
	addr := func(st *store.Store) (string, error) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		srv := imapd.New(imapd.Config{}, st, nil)
		o.servers = append(o.servers, srv)
		go srv.Serve(ln)
		return ln.Addr().String(), nil
	}
	if o.Addr, err = addr(o.Store); err != nil {
		return err
	}
	if o.NotifyAddr, err = addr(o.Store2); err != nil {
		return err
	}
	o.Name, o.User, o.Pass = "decimail", "u", "pw"
	o.Target.Stop = o.Close
	return nil
}

// Close stops the servers and stores and drops the database.
func (o *Ours) Close() {
	for _, s := range o.servers {
		s.Close()
	}
	o.servers = nil
	if o.Store != nil {
		o.Store.Close()
		o.Store = nil
	}
	if o.Store2 != nil {
		o.Store2.Close()
		o.Store2 = nil
	}
	if o.dbName != "" {
		pgrun.DropDB(context.Background(), o.adminDSN, o.dbName)
		o.dbName = ""
	}
}

// LoadStore delivers msgs into a folder through the store (the fast path:
// one Deliver per message with its flags and internal date, in order).
func LoadStore(ctx context.Context, st *store.Store, userID int64, folder string, msgs []Message) error {
	for i := range msgs {
		m := &msgs[i]
		_, err := st.Deliver(ctx, userID, m.Raw, store.DeliverOptions{Mailbox: folder, InternalDate: m.Date,
			Flags: store.Flags{Seen: m.Seen, Flagged: m.Flagged, Answered: m.Answered}})
		if err != nil {
			return fmt.Errorf("message %d: %w", i, err)
		}
	}
	// Loaded means searchable through the trigram indexes too: the
	// indexer's work (store/indexer.go) is part of loading.
	_, err := st.IndexTexts(ctx)
	return err
}

// LoadIMAP appends msgs to mailbox over IMAP (pipelined with LITERAL+).
func LoadIMAP(addr, user, pass, mailbox string, msgs []Message) error {
	c, err := Login(addr, user, pass)
	if err != nil {
		return err
	}
	defer c.Logout()
	c.Conn().SetDeadline(time.Now().Add(30 * time.Minute))
	return appendMsgs(c, mailbox, msgs, 64)
}
