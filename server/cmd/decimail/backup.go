package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"decimail/server/pgrun"
)

// A backup directory holds
//
//	database.dump   pg_dump -Fc of the whole database
//	spool/          a copy of the spool (<user>/<id>.eml)
//	backup.json     written last: when, from which spool directory
//
// The dump is taken first, the spool copied after it: a delivery writes
// and fsyncs its spool file before it commits, so every message in the
// dump has its file in the copy (files of messages committed after the
// dump are copied too and are harmless; the delete daemon removes files
// only delete_retention after the message went).

const (
	backupDump     = "database.dump"
	backupSpool    = "spool"
	backupManifest = "backup.json"
)

type manifest struct {
	Format   int       `json:"format"`
	Created  time.Time `json:"created"`
	Database string    `json:"database"`
	Spool    string    `json:"spool"` // the spool directory backed up: messages.spool_path starts with it
	Files    int       `json:"spool_files"`
}

func init() {
	register(&command{name: "backup", args: "DIR",
		help: "back up the database (pg_dump -Fc) and the spool into the new or empty directory DIR",
		run: func(ctx context.Context, _ *flag.FlagSet, args []string) error {
			if err := needArgs(args, 1, "DIR"); err != nil {
				return err
			}
			return backup(ctx, args[0])
		}})
	register(&command{name: "restore", args: "DIR",
		help: "restore a backup made by `decimail backup` into an EMPTY database and spool directory",
		run: func(ctx context.Context, _ *flag.FlagSet, args []string) error {
			if err := needArgs(args, 1, "DIR"); err != nil {
				return err
			}
			return restore(ctx, args[0])
		}})
}

func backup(ctx context.Context, dir string) error {
	dsn, err := databaseURL()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if ents, err := os.ReadDir(dir); err != nil {
		return err
	} else if len(ents) > 0 {
		return fmt.Errorf("%s is not empty: back up into a new directory", dir)
	}
	env, db, err := pgEnv(dsn)
	if err != nil {
		return err
	}
	start := time.Now()
	dump := filepath.Join(dir, backupDump)
	if err := runPG(ctx, env, "pg_dump", "-Fc", "-f", dump, db); err != nil {
		return err
	}
	spool := spoolDir()
	n, err := copyTree(spool, filepath.Join(dir, backupSpool))
	if err != nil {
		return fmt.Errorf("copy the spool %s: %w", spool, err)
	}
	m := manifest{Format: 1, Created: start.UTC(), Database: db, Spool: spool, Files: n}
	b, _ := json.MarshalIndent(m, "", "  ")
	if err := writeSynced(filepath.Join(dir, backupManifest), append(b, '\n')); err != nil {
		return err
	}
	fi, _ := os.Stat(dump)
	fmt.Printf("backed up database %s (%d bytes) and %d spool files from %s into %s in %s\n",
		printable(db), fi.Size(), n, printable(spool), printable(dir), time.Since(start).Round(time.Millisecond))
	return nil
}

func restore(ctx context.Context, dir string) error {
	b, err := os.ReadFile(filepath.Join(dir, backupManifest))
	if err != nil {
		return fmt.Errorf("%s is not a complete backup (no %s): %w", dir, backupManifest, err)
	}
	var m manifest
	if err := json.Unmarshal(b, &m); err != nil || m.Format != 1 {
		return fmt.Errorf("%s: not a backup this version can restore (%v)", filepath.Join(dir, backupManifest), err)
	}
	dsn, err := databaseURL()
	if err != nil {
		return err
	}
	env, db, err := pgEnv(dsn)
	if err != nil {
		return err
	}
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	var rels int
	if err := c.QueryRow(ctx, `SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_toast%'
		AND n.nspname NOT LIKE 'pg\_temp%'`).Scan(&rels); err != nil {
		return err
	}
	if rels > 0 {
		return fmt.Errorf("database %s is not empty (%d tables, indexes or sequences): restore needs an empty database, e.g. createdb -O decimail %s_restored",
			printable(db), rels, printable(db))
	}
	spool := spoolDir()
	if ents, err := os.ReadDir(spool); err == nil && len(ents) > 0 {
		return fmt.Errorf("the spool directory %s is not empty: restore needs an empty one ($DECIMAIL_SPOOL)", printable(spool))
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	start := time.Now()
	// One transaction: a failure leaves the database empty.
	if err := runPG(ctx, env, "pg_restore", "--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction",
		"-d", db, filepath.Join(dir, backupDump)); err != nil {
		return err
	}
	n, err := copyTree(filepath.Join(dir, backupSpool), spool)
	if err != nil {
		return fmt.Errorf("the database is restored, but copying the spool into %s failed: %w", spool, err)
	}
	// The spool files' paths, recorded in the rows, move to this spool.
	if m.Spool != spool {
		const move = ` SET spool_path = $2 || substr(spool_path, length($1) + 1) WHERE left(spool_path, length($1) + 1) = $1 || '/'`
		for _, q := range []string{`UPDATE messages` + move, `UPDATE delete_log` + move} {
			if _, err := c.Exec(ctx, q, m.Spool, spool); err != nil {
				return fmt.Errorf("the database is restored, but moving its spool paths to %s failed: %w", spool, err)
			}
		}
	}
	fmt.Printf("restored the backup of %s taken %s into database %s and %d spool files into %s in %s\n",
		printable(m.Database), m.Created.Format(time.RFC3339), printable(db), n, printable(spool), time.Since(start).Round(time.Millisecond))
	return nil
}

// pgEnv is the environment for pg_dump and pg_restore to reach dsn's
// database (libpq variables: the password never appears in a command
// line), and the database's name.
func pgEnv(dsn string) ([]string, string, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, "", err
	}
	env := append(os.Environ(), "PGHOST="+cfg.Host, "PGPORT="+strconv.Itoa(int(cfg.Port)), "PGUSER="+cfg.User,
		"PGDATABASE="+cfg.Database)
	if cfg.Password != "" {
		env = append(env, "PGPASSWORD="+cfg.Password)
	}
	if cfg.TLSConfig == nil {
		env = append(env, "PGSSLMODE=disable")
	}
	return env, cfg.Database, nil
}

// runPG runs a Postgres client program from the directory where pgrun
// finds the server binaries (/usr/lib/postgresql/15/bin), else from PATH.
func runPG(ctx context.Context, env []string, name string, args ...string) error {
	bin := name
	if dir, err := pgrun.BinDir(); err == nil {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			bin = filepath.Join(dir, name)
		}
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w\n%s", name, err, out)
	}
	return nil
}

// copyTree copies the regular files under src into dst (created, 0700),
// fsynced, and returns how many; a missing src copies nothing.
func copyTree(src, dst string) (int, error) {
	n := 0
	if err := os.MkdirAll(dst, 0o700); err != nil {
		return 0, err
	}
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) && path == src {
			return filepath.SkipDir
		} else if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(to, 0o700)
		case d.Type().IsRegular():
			n++
			return copyFile(path, to)
		}
		return nil
	})
	return n, err
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

func writeSynced(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
