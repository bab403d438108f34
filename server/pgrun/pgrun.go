// Package pgrun finds or starts the PostgreSQL that tests, benchmarks and the
// dev mode run against. One order everywhere (DESIGN "Postgres everywhere"):
//
//  1. a DSN from the environment (DECIMAIL_DATABASE_URL for the server,
//     DECIMAIL_TEST_DATABASE_URL for tests);
//  2. testcontainers-go (postgres module) when a Docker engine answers;
//  3. a private cluster started from the PostgreSQL server binaries installed
//     on the machine (initdb + postgres), run as the `postgres` system user
//     when we are root, because postgres refuses to run as root.
//
// A started cluster is stopped (and, unless it lives in a kept directory,
// removed) by Instance.Stop.
package pgrun

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Options says where an instance may come from.
type Options struct {
	// EnvVar names the environment variable holding a DSN ("" = none).
	EnvVar string
	// Dir, when set, keeps the private cluster's data there between runs
	// (make run uses ./var/pg). Empty means a temporary directory that Stop removes.
	Dir string
	// NoContainers skips the testcontainers attempt.
	NoContainers bool
	// Durable keeps fsync on (dev/serve); tests turn it off for speed.
	Durable bool
	// Settings are extra server settings for a private cluster, "name=value"
	// each (postgres -c), e.g. "shared_preload_libraries=pg_stat_statements"
	// for a benchmark's diagnostics. Ignored for an external instance.
	Settings []string
	Log      *slog.Logger
}

// Instance is a reachable Postgres.
type Instance struct {
	DSN    string // connection string of the "postgres" maintenance database
	Source string // "env", "testcontainers" or "local"
	stop   func() error
}

// Stop stops a Postgres we started; it is a no-op for an external one.
func (i *Instance) Stop() error {
	if i == nil || i.stop == nil {
		return nil
	}
	f := i.stop
	i.stop = nil
	return f()
}

// Start returns a running Postgres following the order in the package doc.
func Start(ctx context.Context, o Options) (*Instance, error) {
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if o.EnvVar != "" {
		if dsn := os.Getenv(o.EnvVar); dsn != "" {
			return &Instance{DSN: dsn, Source: "env"}, nil
		}
	}
	if !o.NoContainers && o.Dir == "" {
		inst, err := startContainer(ctx)
		if err == nil {
			return inst, nil
		}
		log.Debug("testcontainers unavailable, using local binaries", "err", err)
	}
	return startLocal(ctx, o, log)
}

// BinDir finds the directory holding initdb and postgres.
func BinDir() (string, error) {
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			return filepath.Dir(r), nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", errors.New("pgrun: no PostgreSQL server binaries found (install postgresql, or set a DSN)")
}

func versionOf(dir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return n
}

// credential returns the process credential for postgres when we are root.
func credential() (*syscall.Credential, int, int, error) {
	if os.Geteuid() != 0 {
		return nil, os.Getuid(), os.Getgid(), nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, 0, 0, fmt.Errorf("pgrun: running as root needs a 'postgres' system user: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, uid, gid, nil
}

func startLocal(ctx context.Context, o Options, log *slog.Logger) (*Instance, error) {
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	cred, uid, gid, err := credential()
	if err != nil {
		return nil, err
	}
	dir, temp := o.Dir, o.Dir == ""
	if temp {
		if dir, err = os.MkdirTemp("", "decimail-pg-"); err != nil {
			return nil, err
		}
	} else if dir, err = filepath.Abs(dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	cleanup := func() {
		if temp {
			os.RemoveAll(dir)
		}
	}
	// The socket directory and data directory must belong to the postgres user.
	if err := os.Chown(dir, uid, gid); err != nil {
		cleanup()
		return nil, err
	}
	if temp {
		// A temp dir under /tmp is reachable; a kept dir under a root-only
		// checkout may not be: make every parent traversable for postgres.
	} else if err := makeTraversable(dir); err != nil {
		cleanup()
		return nil, err
	}
	data := filepath.Join(dir, "data")
	if _, err := os.Stat(filepath.Join(data, "PG_VERSION")); err != nil {
		args := []string{"-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-locale"}
		if !o.Durable {
			args = append(args, "--no-sync")
		}
		cmd := exec.CommandContext(ctx, filepath.Join(bin, "initdb"), args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			cleanup()
			return nil, fmt.Errorf("pgrun: initdb: %v\n%s", err, out)
		}
	}
	os.Remove(filepath.Join(data, "postmaster.pid")) // left by a killed run
	port, err := freePort()
	if err != nil {
		cleanup()
		return nil, err
	}
	args := []string{"-D", data, "-k", dir, "-p", strconv.Itoa(port), "-c", "listen_addresses=",
		"-c", "max_connections=300", "-c", "shared_buffers=256MB"}
	if !o.Durable {
		args = append(args, "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
	}
	for _, kv := range o.Settings {
		args = append(args, "-c", kv)
	}
	logf, err := os.OpenFile(filepath.Join(dir, "postgres.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		cleanup()
		return nil, err
	}
	os.Chown(logf.Name(), uid, gid)
	cmd := exec.Command(filepath.Join(bin, "postgres"), args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Setpgid: true, Pdeathsig: syscall.SIGQUIT}
	cmd.Stdout, cmd.Stderr, cmd.Dir = logf, logf, dir
	if err := cmd.Start(); err != nil {
		logf.Close()
		cleanup()
		return nil, fmt.Errorf("pgrun: start postgres: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); logf.Close() }()
	stop := func() error {
		cmd.Process.Signal(syscall.SIGINT) // fast shutdown
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		cleanup()
		return nil
	}
	dsn := fmt.Sprintf("host=%s port=%d user=postgres dbname=postgres sslmode=disable", dir, port)
	deadline := time.Now().Add(60 * time.Second)
	for {
		c, err := pgx.Connect(ctx, dsn)
		if err == nil {
			c.Close(ctx)
			break
		}
		select {
		case err := <-exited:
			exited <- err
			out, _ := os.ReadFile(filepath.Join(dir, "postgres.log"))
			cleanup()
			return nil, fmt.Errorf("pgrun: postgres exited: %v\n%s", err, tail(out, 2000))
		default:
		}
		if time.Now().After(deadline) {
			stop()
			return nil, fmt.Errorf("pgrun: postgres did not accept connections: %w", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	log.Info("started private postgres", "dir", dir, "port", port)
	return &Instance{DSN: dsn, Source: "local", stop: stop}, nil
}

// makeTraversable adds o+x to every parent of dir so the postgres user can reach it.
func makeTraversable(dir string) error {
	for d := filepath.Dir(dir); d != "/" && d != "."; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil {
			return err
		}
		if st.Mode().Perm()&0o001 == 0 {
			if err := os.Chmod(d, st.Mode().Perm()|0o001); err != nil {
				return err
			}
		}
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return strings.TrimSpace(string(b))
}

// WithDatabase returns dsn pointing at database name instead.
func WithDatabase(dsn, name string) (string, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return "", err
	}
	if strings.Contains(dsn, "://") {
		// URL form: replace the path.
		i := strings.Index(dsn, "://")
		rest := dsn[i+3:]
		q := ""
		if j := strings.IndexByte(rest, '?'); j >= 0 {
			rest, q = rest[:j], rest[j:]
		}
		if j := strings.IndexByte(rest, '/'); j >= 0 {
			rest = rest[:j]
		}
		return dsn[:i+3] + rest + "/" + name + q, nil
	}
	_ = cfg
	return dsn + " dbname=" + name, nil // the last dbname wins in key=value form
}
