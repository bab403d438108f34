package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"decimail/server/pgrun"
	"decimail/server/store"
)

// Durable is Decimail set up as production runs it, for the lines that must
// be measured that way: a private Postgres cluster of its own with fsync and
// synchronous_commit on (pgrun Options.Durable), one database migrated by
// store.Open, account u/pw with a bcrypt hash of the default cost (what
// `decimail user add` stores), and `decimail serve` as a separate process
// (Serve). The cluster lives until Close.
//
//	d, err := StartDurable(ctx, DurableOptions{})
//	defer d.Close()
//	d.LoadFolder(ctx, "Stress", Corpus(1000, 1))
//	p, err := d.Serve(ctx) // p.Target is what the lines talk to
type Durable struct {
	Inst   *pgrun.Instance
	DSN    string       // the decimail database
	Store  *store.Store // in-process, for loading; Serve closes it
	UserID int64
	procs  []*Process
}

// DurableOptions are the few things a durable line may add.
type DurableOptions struct {
	// Settings are extra Postgres settings, "name=value" each (e.g. the
	// diagnostics' shared_preload_libraries=pg_stat_statements).
	Settings []string
	// Config are configuration table entries set before the server starts.
	Config map[string]string
}

// StartDurable starts the cluster, creates and migrates the database and the
// account.
func StartDurable(ctx context.Context, o DurableOptions) (*Durable, error) {
	inst, err := pgrun.Start(ctx, pgrun.Options{NoContainers: true, Durable: true, Settings: o.Settings})
	if err != nil {
		return nil, err
	}
	d := &Durable{Inst: inst}
	admin, err := pgx.Connect(ctx, inst.DSN)
	if err != nil {
		d.Close()
		return nil, err
	}
	_, err = admin.Exec(ctx, "CREATE DATABASE decimail")
	admin.Close(ctx)
	if err != nil {
		d.Close()
		return nil, err
	}
	if d.DSN, err = pgrun.WithDatabase(inst.DSN, "decimail"); err != nil {
		d.Close()
		return nil, err
	}
	// PasswordCost 0: bcrypt.DefaultCost, as in production.
	if d.Store, err = store.Open(ctx, d.DSN, store.Options{}); err != nil {
		d.Close()
		return nil, err
	}
	u, err := d.Store.CreateUser(ctx, "u", "pw")
	if err == nil {
		err = d.Store.AddAddress(ctx, "u@bench.test", "u")
	}
	for k, v := range o.Config {
		if err == nil {
			err = d.Store.SetConfig(ctx, k, v)
		}
	}
	if err != nil {
		d.Close()
		return nil, err
	}
	d.UserID = u.ID
	return d, nil
}

// LoadFolder creates folder (unless it exists) and delivers msgs into it
// through the in-process store, with their flags and dates.
func (d *Durable) LoadFolder(ctx context.Context, folder string, msgs []Message) error {
	if d.Store == nil {
		return fmt.Errorf("durable: the loading store is closed (Serve ran)")
	}
	if _, err := d.Store.Mailbox(ctx, d.UserID, folder); err != nil {
		if _, err := d.Store.CreateMailbox(ctx, d.UserID, folder, "", ""); err != nil {
			return err
		}
	}
	if err := LoadStore(ctx, d.Store, d.UserID, folder, msgs); err != nil {
		return err
	}
	// Statistics, as autovacuum would have them on a server in use (it
	// analyses a table after 10% of it changed, within a minute), and the
	// vacuum autovacuum starts after a bulk insert: otherwise it ran during
	// the lines measured a minute or two after loading (the durable SUBJECT
	// and FROM searches took 3-4 times as long in full runs as alone).
	_, err := d.Store.Pool().Exec(ctx, "VACUUM (ANALYZE)")
	return err
}

// Serve closes the loading store (the served process is then the only
// client of the database, as in production) and starts `decimail serve`;
// args are more flags (-pprof). Close stops it.
func (d *Durable) Serve(ctx context.Context, args ...string) (*Process, error) {
	if d.Store != nil {
		d.Store.Close()
		d.Store = nil
	}
	p, err := StartServe(ctx, d.DSN, args...)
	if err != nil {
		return nil, err
	}
	d.procs = append(d.procs, p)
	return p, nil
}

// PostmasterPID is the cluster's postmaster (the parent of every backend),
// for CPU accounting (ProcessTreeCPU).
func (d *Durable) PostmasterPID(ctx context.Context) (int, error) {
	c, err := pgx.Connect(ctx, d.Inst.DSN)
	if err != nil {
		return 0, err
	}
	defer c.Close(ctx)
	var dir string
	if err := c.QueryRow(ctx, "SHOW data_directory").Scan(&dir); err != nil {
		return 0, err
	}
	b, err := os.ReadFile(filepath.Join(dir, "postmaster.pid"))
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
}

// Close stops the served processes and the cluster, and removes its files.
func (d *Durable) Close() {
	for _, p := range d.procs {
		p.Close()
	}
	d.procs = nil
	if d.Store != nil {
		d.Store.Close()
		d.Store = nil
	}
	if d.Inst != nil {
		d.Inst.Stop()
		d.Inst = nil
	}
}

// ProcessTreeCPU is the user+system CPU seconds of pid and every live process
// below it, plus what pid has collected from the children it reaped (a
// Dovecot master its imap processes, a postmaster its backends).
func ProcessTreeCPU(pid int) float64 {
	var ticks float64
	for i, p := range descendants(pid) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		n := 2 // utime, stime
		if i == 0 {
			n = 4 // and cutime, cstime of the root
		}
		for _, x := range f[11 : 11+n] {
			v, _ := strconv.ParseFloat(x, 64)
			ticks += v
		}
	}
	return ticks / 100 // USER_HZ
}
