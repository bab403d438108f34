package bench

import (
	"context"
	"fmt"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"decimail/server/pgrun"
)

// TestDevLines is the inner loop of performance work: our column of the
// comparison, on a loaded database kept between runs, for the lines named in
// DECIMAIL_DEV_LINES (Line.Key values, comma-separated; "all" = every line).
//
//	DECIMAIL_TEST_DATABASE_URL=postgres://…/postgres \
//	DECIMAIL_DEV_LINES=StoreSeen,StartupStatus go test ./bench -run TestDevLines -v
//
// The first run loads the corpus (DECIMAIL_BENCH_SIZES, default 10000) into
// database benchdev_<n>_<template> and prepares the mailboxes; later runs on
// the same schema reuse it. DECIMAIL_DEV_PROFILE=file writes a CPU profile
// of the measured lines (server and client share this process), e.g.
// DECIMAIL_DEV_LINES=HeaderListing,FetchUIDFlags for the prefetch;
// DECIMAIL_DEV_SAMPLES=1 logs every measured value, not only the median;
// DECIMAIL_DEV_RUNS=n measures each line n times (a profile's worth);
// DECIMAIL_DEV_SERVE=1 measures a separate `decimail serve` process;
// DECIMAIL_DEV_OTHERS=k first gives the database k more accounts o1…ok,
// each with its own corpus of n messages and the same folders and views
// (those already there are kept), so that the lines of account u run in a
// database of many accounts, as production's is (with DECIMAIL_DEV_DB, a
// copy of the one-account database: CREATE DATABASE … TEMPLATE …).
func TestDevLines(t *testing.T) {
	want := os.Getenv("DECIMAIL_DEV_LINES")
	if want == "" {
		t.Skip("set DECIMAIL_DEV_LINES (and a kept DECIMAIL_TEST_DATABASE_URL) to measure lines on a kept database")
	}
	ctx := context.Background()
	n := benchSizes(10000)[0]
	msgs := Corpus(n, 1)
	inst, tpl, err := pgrun.Shared(ctx)
	if err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("benchdev_%d_%s", n, strings.TrimPrefix(tpl, "decimail_tpl_"))
	if v := os.Getenv("DECIMAIL_DEV_DB"); v != "" {
		name = v // a kept database migrated by hand
	}
	admin, err := pgx.Connect(ctx, inst.DSN)
	if err != nil {
		t.Fatal(err)
	}
	var exists bool
	admin.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists)
	admin.Close(ctx)
	var o *Ours
	var e *Env
	if exists {
		dsn, err := pgrun.WithDatabase(inst.DSN, name)
		if err != nil {
			t.Fatal(err)
		}
		if o, err = OpenOurs(ctx, dsn); err != nil {
			t.Fatal(err)
		}
		defer o.Close()
		if e, err = Reopen(&o.Target, msgs); err != nil {
			t.Fatal(err)
		}
	} else {
		if o, err = StartOurs(ctx); err != nil {
			t.Fatal(err)
		}
		defer o.Close()
		t0 := time.Now()
		if err := LoadStore(ctx, o.Store, o.UserID, "INBOX", msgs); err != nil {
			t.Fatal(err)
		}
		t.Logf("loaded %d in %v", n, time.Since(t0))
		if e, err = Prepare(&o.Target, msgs, func(name, def string) error {
			_, err := o.Store.DefineMailbox(ctx, o.UserID, name, def)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		// Keep it: rename the clone to the kept name.
		tmp := o.dbName
		o.Keep()
		o.Close()
		a, err := pgx.Connect(ctx, inst.DSN)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.Exec(ctx, "ALTER DATABASE "+pgx.Identifier{tmp}.Sanitize()+" RENAME TO "+pgx.Identifier{name}.Sanitize()); err != nil {
			t.Fatal(err)
		}
		a.Close(ctx)
		dsn, _ := pgrun.WithDatabase(inst.DSN, name)
		if o, err = OpenOurs(ctx, dsn); err != nil {
			t.Fatal(err)
		}
		defer o.Close()
		if e, err = Reopen(&o.Target, msgs); err != nil {
			t.Fatal(err)
		}
	}
	if k, _ := strconv.Atoi(os.Getenv("DECIMAIL_DEV_OTHERS")); k > 0 {
		if err := loadOthers(ctx, t, o, n, k); err != nil {
			t.Fatal(err)
		}
	}
	keys := strings.Split(want, ",")
	if os.Getenv("DECIMAIL_DEV_SERVE") != "" {
		// The lines against a separate `decimail serve` process on the same
		// database, as the comparison's durable section measures.
		p, err := StartServe(ctx, o.DSN)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		tg := p.Target
		tg.User, tg.Pass = e.User, e.Pass
		sep := *e
		sep.Target = &tg
		e = &sep
	}
	if !slices.Contains(keys, "SMTP") {
		msgs = nil // as Compare: the lines are measured without the corpus held
		letGo()
	}
	if f := os.Getenv("DECIMAIL_DEV_PROFILE"); f != "" {
		pf, err := os.Create(f)
		if err != nil {
			t.Fatal(err)
		}
		pprof.StartCPUProfile(pf)
		defer func() { pprof.StopCPUProfile(); pf.Close() }()
	}
	for _, l := range IMAPLines() {
		if want != "all" && !slices.Contains(keys, l.Key) {
			continue
		}
		if n, _ := strconv.Atoi(os.Getenv("DECIMAIL_DEV_RUNS")); n > 0 {
			l.Runs = n
		}
		r := Measure(e, l)
		t.Logf("%-24s %v %v", l.Key, r.Values, r.Err)
		if os.Getenv("DECIMAIL_DEV_SAMPLES") != "" {
			t.Logf("%-24s samples (sorted) %.2f; in order %.2f", l.Key, r.Samples, r.InOrder)
		}
	}
	if slices.Contains(keys, "SMTP") {
		// The messages (400, or DECIMAIL_DEV_SMTP) are deleted afterwards: the kept database stays as loaded.
		// Start from every text indexed (a killed earlier run may have left some).
		if _, err := o.Store.IndexTexts(ctx); err != nil {
			t.Fatal(err)
		}
		var last int64
		o.Store.Pool().QueryRow(ctx, "SELECT max(id) FROM messages").Scan(&last)
		pg0, self0 := CPUOf("postgres"), SelfCPU()
		total := 400
		if v, err := strconv.Atoi(os.Getenv("DECIMAIL_DEV_SMTP")); err == nil {
			total = v // e.g. 3000: past the indexer's backlog (store/indexer.go), the sustained rate
		}
		rate, err := SMTPThroughput(o.Store, msgs, 8, total)
		t.Logf("SMTP: %d messages, %.0f msg/s %v; CPU per message: postgres %.2f ms, this process %.2f ms", total, rate, err,
			(CPUOf("postgres")-pg0)/float64(total)*1000, (SelfCPU()-self0)/float64(total)*1000)
		n, took, cpu, err := indexLeft(ctx, o.Store)
		t.Logf("then the indexer's remaining work: %d texts left unindexed by the burst, all indexed %v later, %.2f ms of Postgres CPU per text (%v)",
			n, took.Round(time.Millisecond), cpu/float64(max(n, 1))*1000, err)
		if _, err := o.Store.Pool().Exec(ctx, "DELETE FROM messages WHERE id > $1", last); err != nil {
			t.Fatal(err)
		}
		// Now, not in the next run: autovacuum of the deleted rows (and their
		// GIN entries) would compete with it.
		if _, err := o.Store.Pool().Exec(ctx, "VACUUM messages, message_flags, mailbox_messages"); err != nil {
			t.Fatal(err)
		}
	}
}

// loadOthers gives o's database accounts o1…ok that it lacks, each with a
// corpus of n messages (seeds 2…k+1) and the folders and views Prepare
// makes, through the store and IMAP as account u's were.
func loadOthers(ctx context.Context, t *testing.T, o *Ours, n, k int) error {
	for i := 1; i <= k; i++ {
		name := fmt.Sprintf("o%d", i)
		if _, err := o.Store.UserByName(ctx, name); err == nil {
			continue
		}
		t0 := time.Now()
		u, err := o.Store.CreateUser(ctx, name, "pw")
		if err != nil {
			return err
		}
		msgs := Corpus(n, uint64(i+1))
		if err := LoadStore(ctx, o.Store, u.ID, "INBOX", msgs); err != nil {
			return err
		}
		tg := o.Target
		tg.User, tg.Pass = name, "pw"
		if _, err := Prepare(&tg, msgs, func(mb, def string) error {
			_, err := o.Store.DefineMailbox(ctx, u.ID, mb, def)
			return err
		}); err != nil {
			return err
		}
		t.Logf("account %s: %d messages in %v", name, n, time.Since(t0).Round(time.Second))
	}
	_, err := o.Store.Pool().Exec(ctx, "VACUUM ANALYZE")
	return err
}
