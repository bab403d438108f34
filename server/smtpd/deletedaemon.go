package smtpd

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"time"

	"decimail/server/store"
)

// DeleteConfig configures the delete daemon.
type DeleteConfig struct {
	// Retention is how long a deleted message's spool file is kept
	// (delete_retention, a Go duration; "0s" removes at once). Default 720h.
	Retention time.Duration
	Sweep     time.Duration // periodic sweep, default 1m (delete_sweep); LISTEN wakes earlier
	// ExpungeHorizon is how long tombstones of removed messages are kept
	// for QRESYNC (expunge_horizon); default 2160h (90 days), negative:
	// for ever.
	ExpungeHorizon time.Duration
	Batch          int // rows per transaction, default 500
	Now            func() time.Time
}

// LoadDeleteConfig overlays delete_retention and delete_sweep on base.
func LoadDeleteConfig(ctx context.Context, st *store.Store, base DeleteConfig) (DeleteConfig, error) {
	c := base
	var errs []error
	for key, dst := range map[string]*time.Duration{"delete_retention": &c.Retention, "delete_sweep": &c.Sweep,
		"expunge_horizon": &c.ExpungeHorizon} {
		v, err := st.Config(ctx, key, "")
		if err == nil && strings.TrimSpace(v) != "" {
			*dst, err = time.ParseDuration(strings.TrimSpace(v))
			if *dst == 0 && key == "delete_retention" {
				*dst = -1 // explicit zero: at once
			}
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	return c, errors.Join(errs...)
}

// DeleteDaemon removes the spool files of deleted messages (delete_log, written
// by the messages_delete trigger) once they are older than the retention, and
// marks the rows done. It is idempotent (a missing file is fine) and safe to
// run in several processes (store.ClaimDeleted: FOR UPDATE SKIP LOCKED).
type DeleteDaemon struct {
	st     *store.Store
	cfg    DeleteConfig
	log    *slog.Logger
	pruned time.Time // the last pruning of tombstones and the flag log
}

// NewDeleteDaemon returns a daemon. A negative Retention means zero (at once);
// zero takes the default.
func NewDeleteDaemon(st *store.Store, cfg DeleteConfig, log *slog.Logger) *DeleteDaemon {
	if cfg.Retention == 0 {
		cfg.Retention = 720 * time.Hour
	} else if cfg.Retention < 0 {
		cfg.Retention = 0
	}
	if cfg.ExpungeHorizon == 0 {
		cfg.ExpungeHorizon = 2160 * time.Hour
	}
	if cfg.Sweep <= 0 {
		cfg.Sweep = time.Minute
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 500
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &DeleteDaemon{st: st, cfg: cfg, log: log.With("component", "delete-daemon")}
}

// Run works until ctx ends, waking on store.DeleteChannel and every Sweep.
func (d *DeleteDaemon) Run(ctx context.Context) error {
	ctx = store.WithClass(ctx, store.ClassBackground)
	wake := make(chan struct{}, 1)
	go listen(ctx, d.st, store.DeleteChannel, wake, wake, d.log)
	for {
		if _, err := d.RunOnce(ctx); err != nil && ctx.Err() == nil {
			d.log.Error("delete daemon", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
		case <-time.After(d.cfg.Sweep):
		}
	}
}

// RunOnce removes every file due now and returns how many rows it marked
// done; it also prunes the tombstones and the log of flag changes older
// than ExpungeHorizon, at most once per Sweep: the daemon wakes at every
// removal (an EXPUNGE), and pruning at each of them cost 1.1 s of the
// database's time in 30 s of the many-sessions line (bench/ANALYSIS.md)
// for rows that are due once in days.
func (d *DeleteDaemon) RunOnce(ctx context.Context) (int, error) {
	ctx = store.WithClass(ctx, store.ClassBackground)
	if now := d.cfg.Now(); d.pruned.IsZero() || now.Sub(d.pruned) >= d.cfg.Sweep {
		if err := d.pruneExpunges(ctx); err != nil {
			return 0, err
		}
		d.pruned = now
	}
	total := 0
	for {
		n, err := d.st.ClaimDeleted(ctx, d.cfg.Now().Add(-d.cfg.Retention), d.cfg.Batch, d.remove)
		total += n
		if err != nil || n < d.cfg.Batch {
			return total, err
		}
	}
}

// pruneExpunges deletes the tombstones (store.PruneExpunges) written more
// than ExpungeHorizon ago: QRESYNC answers clients last seen before that
// from the mailbox's membership (store.Vanished).
func (d *DeleteDaemon) pruneExpunges(ctx context.Context) error {
	if d.cfg.ExpungeHorizon < 0 {
		return nil
	}
	for {
		n, err := d.st.PruneExpunges(ctx, d.cfg.Now().Add(-d.cfg.ExpungeHorizon), d.cfg.Batch)
		if err != nil || n < d.cfg.Batch {
			return err
		}
	}
}

func (d *DeleteDaemon) remove(m store.DeletedMessage) error {
	if m.SpoolPath == "" {
		return nil
	}
	err := os.Remove(m.SpoolPath)
	if err == nil || errors.Is(err, fs.ErrNotExist) {
		d.log.Debug("delete daemon: removed", "message", m.MessageID, "path", m.SpoolPath)
		return nil
	}
	d.log.Error("delete daemon: remove", "message", m.MessageID, "path", m.SpoolPath, "err", err)
	return err
}
