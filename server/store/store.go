// Package store is Decimail's data layer over PostgreSQL (pgx, no ORM). It
// knows no protocol: the IMAP and SMTP daemons meet here.
//
// Invariants (see also schema/0001_init.sql):
//
//   - Every operation that changes a user's mail runs in ONE transaction that
//     first takes the user's write lock (lockUser). Modseqs come from one global
//     sequence, so under that lock a user's changes commit in modseq order and a
//     session that has seen modseq X has seen every change of that user <= X.
//   - UIDs of a mailbox come from mailboxes.uidnext, which only grows; a message
//     entering a query mailbox (late, or again) gets a fresh, higher UID.
//   - Query mailboxes' membership is kept current in the same transaction as the
//     change that affects it (delivery, flag change, definition change).
//   - Notifications (pg_notify from triggers) are delivered by Postgres at
//     COMMIT, never before; they are hints, sessions re-read by modseq.
//   - A delivered message's spool file is written and fsynced before COMMIT.
package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/sync/semaphore"

	"decimail/internal/rawio"
	"decimail/schema"
)

// Errors callers map to protocol replies.
var (
	ErrAuthFailed    = errors.New("store: authentication failed")
	ErrNotFound      = errors.New("store: no such mailbox")
	ErrExists        = errors.New("store: mailbox already exists")
	ErrCannot        = errors.New("store: not possible on a query mailbox")
	ErrNoUser        = errors.New("store: no such user")
	ErrInvalid       = errors.New("store: invalid argument")
	ErrHasChildren   = errors.New("store: mailbox has inferiors")
	ErrSpecialFolder = errors.New("store: INBOX cannot be deleted")
	// ErrOverQuota: storing the message(s) would put the user over a
	// quota limit (quota.go).
	ErrOverQuota = errors.New("store: over quota")
)

// Options configures a Store.
type Options struct {
	// SpoolDir receives a backup copy of every delivered message, written and
	// fsynced before the transaction commits. Empty disables the spool.
	SpoolDir string
	// PasswordCost is the bcrypt cost for new passwords (0 = bcrypt.DefaultCost;
	// tests use bcrypt.MinCost).
	PasswordCost int
	// DeliveryMemory bounds the bytes of spooled messages (Incoming) that
	// deliveries hold in memory at once; a delivery waits for room. 0 =
	// 256 MiB. A message larger than this is still delivered, alone.
	DeliveryMemory int64
	// Auth is the failed-login limiter's policy; zero fields take the
	// defaults, and the configuration table's auth_* keys override it
	// (read at Open).
	Auth AuthPolicy
	Log  *slog.Logger
	// Limits: zero fields are read from the configuration table, else
	// take the defaults (limits.go).
	Limits Limits

	// Connections per class (db.go): Sessions default 20 (or the DSN's
	// pool_max_conns if larger), Delivery 8, Background 2.
	SessionConns, DeliveryConns, BackgroundConns int32
	// AcquireTimeout bounds the wait for a free connection (ErrBusy after
	// it), default 10 s.
	AcquireTimeout time.Duration
	// TextCache bounds the bytes of message texts the process keeps for
	// one-message FETCHes (textcache.go): default 64 MiB, negative none.
	TextCache int64
	// MetaCache bounds the bytes of the unchanging FETCH data (size,
	// internal date, ENVELOPE, BODYSTRUCTURE) the process keeps
	// (metacache.go): default 32 MiB, negative none.
	MetaCache int64
	// SnapshotCache bounds the messages of the mailbox snapshots the
	// process keeps for the next SELECT of each (snapcache.go), all
	// together (default 1,000,000, about 50 MB; negative: none).
	SnapshotCache int
	// StatementTimeout is Postgres's statement_timeout on the Sessions and
	// Delivery connections: no statement an IMAP or SMTP command runs takes
	// longer (ErrTooSlow), default 30 s. Background connections get 10 min.
	StatementTimeout time.Duration
}

func (o Options) withDefaults(dsnMax int32) Options {
	def := func(v *int32, d int32) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.SessionConns, max(20, dsnMax))
	def(&o.DeliveryConns, 8)
	def(&o.BackgroundConns, 2)
	if o.AcquireTimeout <= 0 {
		o.AcquireTimeout = 10 * time.Second
	}
	if o.StatementTimeout <= 0 {
		o.StatementTimeout = 30 * time.Second
	}
	if o.TextCache == 0 {
		o.TextCache = 64 << 20
	}
	if o.MetaCache == 0 {
		o.MetaCache = 32 << 20
	}
	if o.SnapshotCache == 0 {
		o.SnapshotCache = 1_000_000
	}
	return o
}

// Store is safe for concurrent use.
type Store struct {
	pool       *db
	spool      string
	cost       int
	dummyOnce  sync.Once
	dummy      []byte
	log        *slog.Logger
	notif      *Notifier
	objectIDs  *ObjectIDs
	limits     Limits
	mem        *semaphore.Weighted // Options.DeliveryMemory
	memCap     int64
	auth       AuthPolicy
	authPurged atomic.Int64  // last purge of auth_limits, Unix nanoseconds
	scramFake  scramFake     // scram.go
	scramNonce func() string // tests fix the server nonce (export_test.go); nil: random

	views        sync.Map      // user id -> *viewsCache, the views deliveries match (deliver.go)
	sinceIndex   atomic.Int64  // deliveries since the indexer's last complete pass (indexer.go)
	lastDelivery atomic.Int64  // its time, Unix nanoseconds
	delivering   atomic.Int64  // deliveries in progress (deliverPending): not a pause for the indexer
	wake         chan struct{} // wakes the indexer
	indexerDone  chan struct{}
	indexPassed  atomic.Pointer[func(indexed int)] // tests: called after each indexer pass (export_test.go)
	beforeTouch  atomic.Pointer[func()]            // tests: called in touchFeeds before it signals (export_test.go)
	stop         context.CancelFunc

	trips          *atomic.Int64   // RoundTrips
	texts          *textCache      // FetchText
	metas          *metaCache      // FetchMeta
	statuses       statusCache     // Status
	snaps          *snapCache      // Select
	claims         claimSet        // claimRecent
	sortKeys       sortCache       // SortKeysByID
	searchData     searchDataCache // SearchDataByID
	polls          sharedPolls     // ChangesSinceHeld (sharedpoll.go)
	deleted        deletedSet      // messages deleted by this process (sharedpoll.go)
	committed      commitHooks     // what a change does once committed, before its signal (gate.go)
	gates          userGates       // one change per user at a time in this process (gate.go)
	combined       atomic.Int64    // combined transactions (gate.go: changeBatch)
	joined         atomic.Int64    // combined deliveries' transactions (deliver.go: deliverJoined)
	flagViewsCache sync.Map        // user id -> *userFlagViews, the views flag changes update (flagviews.go)
	deferViews     atomic.Int64    // tests: the smallest change that leaves views pending (pending.go)
	catchUps       atomic.Int64    // views brought up to date by a reader (pending.go)
}

// Open connects to dsn, applies pending migrations and returns a Store.
func Open(ctx context.Context, dsn string, o Options) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	// No JIT: ILIKE's planner cost (schema 0001) puts text searches above
	// jit_above_cost, and compiling them took 20-25 ms of a 27 ms SEARCH.
	cfg.ConnConfig.RuntimeParams["jit"] = "off"
	// No parallel query: a worker is a process Postgres starts for the
	// query, and starting one cost 25 ms of a 35 ms UID SEARCH FROM
	// example.org (1,660 hits of 10,000), which ran in 6 ms without
	// (bench/ANALYSIS.md). A mail server's queries are many and small, and
	// its sessions already keep the cores busy.
	cfg.ConnConfig.RuntimeParams["max_parallel_workers_per_gather"] = "0"
	// Raw reads and writes on the connections' sockets (internal/rawio):
	// a query one at a time costs no wake-up of Go's monitor thread.
	dial := cfg.ConnConfig.DialFunc
	cfg.ConnConfig.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		nc, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return rawio.Wrap(nc), nil
	}
	trips := new(atomic.Int64)
	cfg.ConnConfig.Tracer = sqlTracer{print: os.Getenv("DECIMAIL_SQL_TRACE") != "", n: trips}
	c, err := pgx.ConnectConfig(ctx, cfg.ConnConfig.Copy())
	if err != nil {
		return nil, err
	}
	_, err = schema.Migrate(ctx, c)
	c.Close(ctx)
	if err != nil {
		return nil, err
	}
	o = o.withDefaults(cfg.MaxConns)
	pool := &db{acquireTimeout: o.AcquireTimeout}
	for class, n := range map[Class]int32{ClassSessions: o.SessionConns, ClassDelivery: o.DeliveryConns, ClassBackground: o.BackgroundConns} {
		pc := cfg.Copy()
		pc.MaxConns = n
		pc.MinConns = 0
		timeout := o.StatementTimeout
		if class == ClassBackground {
			timeout = 10 * time.Minute
		}
		pc.ConnConfig.RuntimeParams["statement_timeout"] = strconv.FormatInt(timeout.Milliseconds(), 10)
		pc.AfterConnect = afterRestart // modseqs after a crash (gate.go)
		p, err := pgxpool.NewWithConfig(ctx, pc)
		if err != nil {
			pool.closeOpen()
			return nil, err
		}
		pool.pools[class] = p
	}
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	limits, err := loadLimits(ctx, pool.pools[ClassSessions], o.Limits)
	if err != nil {
		pool.Close()
		return nil, err
	}
	s := &Store{pool: pool, spool: o.SpoolDir, cost: o.PasswordCost, log: log, memCap: o.DeliveryMemory, limits: limits, trips: trips,
		texts: newTextCache(o.TextCache), metas: newMetaCache(o.MetaCache), snaps: newSnapCache(o.SnapshotCache)}
	if s.memCap <= 0 {
		s.memCap = 256 << 20
	}
	s.mem = semaphore.NewWeighted(s.memCap)
	if s.auth, err = s.loadAuthPolicy(ctx, o.Auth); err != nil {
		pool.Close()
		return nil, err
	}
	s.notif = newNotifier(cfg.ConnConfig, log)
	s.gates.touch = s.touchFeeds
	if s.objectIDs, err = loadObjectIDs(ctx, s); err != nil {
		pool.Close()
		return nil, err
	}
	bg, stop := context.WithCancel(context.Background())
	s.stop, s.wake, s.indexerDone = stop, make(chan struct{}, 1), make(chan struct{})
	go s.indexer(bg)
	return s, nil
}

// Close stops the notifier and closes the pool.
func (s *Store) Close() {
	s.stop()
	<-s.indexerDone
	s.notif.close()
	s.pool.Close()
}

// Pool exposes the Sessions pool for tests and tools that need raw SQL.
func (s *Store) Pool() *pgxpool.Pool { return s.pool.pools[ClassSessions] }

// tx runs fn in a transaction, retrying serialization failures and deadlocks.
// A change of a user's mail goes through change (gate.go) instead.
func (s *Store) tx(ctx context.Context, fn func(pgx.Tx) error) error {
	return s.txOpts(ctx, pgx.TxOptions{}, fn)
}

func (s *Store) txOpts(ctx context.Context, o pgx.TxOptions, fn func(pgx.Tx) error) error {
	for attempt := 0; ; attempt++ {
		err := classify(ctx, pgx.BeginTxFunc(ctx, s.pool, o, fn))
		if isRetryable(err) && attempt < 8 {
			time.Sleep(time.Duration(attempt+1) * 5 * time.Millisecond)
			continue
		}
		return err
	}
}

// lockUser takes the per-user write lock for the rest of the transaction.
// It also names this process as the origin of the transaction's
// notifications (schema 0024: the process's listener skips them, as it
// signals its sessions itself when the change leaves the gate).
func lockUser(ctx context.Context, tx pgx.Tx, userID int64, origin string) error {
	var id int64
	err := tx.QueryRow(ctx, `SELECT id FROM users WHERE id = $1 AND set_config('decimail.origin', $2, true) IS NOT NULL
		FOR NO KEY UPDATE`, userID, origin).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return ErrNoUser
	}
	return err
}

// Config returns a configuration value, or def when the key is absent.
func (s *Store) Config(ctx context.Context, key, def string) (string, error) {
	var v string
	err := s.pool.QueryRow(ctx, `SELECT value FROM configuration WHERE key = $1`, key).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return def, nil
	}
	return v, err
}

// SetConfig sets a configuration value.
func (s *Store) SetConfig(ctx context.Context, key, value string) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO configuration (key, value) VALUES ($1, $2)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, value)
	return err
}

func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	if pe := (*pgconn.PgError)(nil); errors.As(err, &pe) && pe.Code == overQuotaCode {
		err = ErrOverQuota
	}
	return fmt.Errorf("store: %s: %w", op, err)
}

// IsUnavailable reports whether err means the database cannot be reached
// or is going away (a connection that cannot be made or was lost, the
// server shutting down or refusing connections): a temporary failure of
// the mail store, not a bug (IMAP answers NO [UNAVAILABLE], rfc5530.txt:95).
func IsUnavailable(err error) bool {
	if err == nil {
		return false
	}
	var ce *pgconn.ConnectError
	if errors.Is(err, ErrBusy) || errors.As(err, &ce) {
		return true
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		// Class 08: connection exception; 57P01-57P03: admin or crash
		// shutdown, cannot connect now; 53: insufficient resources (too
		// many connections, out of memory or disk).
		return strings.HasPrefix(pe.Code, "08") || pe.Code == "57P01" || pe.Code == "57P02" ||
			pe.Code == "57P03" || strings.HasPrefix(pe.Code, "53")
	}
	// A connection lost mid-query surfaces as an I/O error of the socket.
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)
}

func isRetryable(err error) bool {
	var pe *pgconn.PgError
	return err != nil && errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01")
}
