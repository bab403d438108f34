package pgrun

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"decimail/schema"
)

// TestEnvVar names the DSN variable tests honour.
const TestEnvVar = "DECIMAIL_TEST_DATABASE_URL"

var shared struct {
	once     sync.Once
	inst     *Instance
	template string
	err      error
	n        atomic.Int64
}

// RunTests wraps testing.M.Run for packages that use TestDB: it stops the
// private cluster afterwards. Use as `func TestMain(m *testing.M) { os.Exit(pgrun.RunTests(m)) }`.
func RunTests(m *testing.M) int {
	code := m.Run()
	if shared.inst != nil {
		shared.inst.Stop()
	}
	return code
}

// Shared returns the process-wide test instance and the name of its migrated
// template database, starting and migrating them on first use.
func Shared(ctx context.Context) (*Instance, string, error) {
	shared.once.Do(func() {
		shared.inst, shared.err = Start(ctx, Options{EnvVar: TestEnvVar})
		if shared.err != nil {
			return
		}
		shared.template, shared.err = ensureTemplate(ctx, shared.inst.DSN)
	})
	return shared.inst, shared.template, shared.err
}

// TestDB returns the DSN of a fresh, migrated database for this test, cloned
// from the template (milliseconds), dropped when the test ends.
func TestDB(t testing.TB) string {
	t.Helper()
	ctx := context.Background()
	inst, tpl, err := Shared(ctx)
	if err != nil {
		t.Fatalf("postgres: %v", err)
	}
	name := fmt.Sprintf("t_%d_%d", os.Getpid(), shared.n.Add(1))
	dsn, err := CloneDB(ctx, inst.DSN, tpl, name)
	if err != nil {
		t.Fatalf("postgres: %v", err)
	}
	t.Cleanup(func() { DropDB(context.Background(), inst.DSN, name) })
	return dsn
}

// CloneDB creates database name from template tpl and returns its DSN.
func CloneDB(ctx context.Context, adminDSN, tpl, name string) (string, error) {
	c, err := pgx.Connect(ctx, adminDSN)
	if err != nil {
		return "", err
	}
	defer c.Close(ctx)
	for try := 0; ; try++ {
		_, err = c.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+" TEMPLATE "+pgx.Identifier{tpl}.Sanitize())
		if err == nil || try > 50 {
			break
		}
		time.Sleep(50 * time.Millisecond) // template briefly in use by a concurrent clone
	}
	if err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	return WithDatabase(adminDSN, name)
}

// DropDB drops a database, disconnecting its users.
func DropDB(ctx context.Context, adminDSN, name string) error {
	c, err := pgx.Connect(ctx, adminDSN)
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	_, err = c.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	return err
}

// ensureTemplate creates (once per schema version) a migrated template database.
func ensureTemplate(ctx context.Context, adminDSN string) (string, error) {
	ms, err := schema.All()
	if err != nil {
		return "", err
	}
	h := sha256.New()
	for _, m := range ms {
		h.Write([]byte(m.Name + m.SQL))
	}
	name := "decimail_tpl_" + hex.EncodeToString(h.Sum(nil))[:12]
	c, err := pgx.Connect(ctx, adminDSN)
	if err != nil {
		return "", err
	}
	defer c.Close(ctx)
	// Several test processes may share an external server: serialise.
	if _, err := c.Exec(ctx, `SELECT pg_advisory_lock(7406154)`); err != nil {
		return "", err
	}
	defer c.Exec(ctx, `SELECT pg_advisory_unlock(7406154)`)
	var exists bool
	if err := c.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		return "", err
	}
	if exists {
		return name, nil
	}
	tmp := name + "_build"
	c.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{tmp}.Sanitize())
	if _, err := c.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{tmp}.Sanitize()); err != nil {
		return "", err
	}
	dsn, err := WithDatabase(adminDSN, tmp)
	if err != nil {
		return "", err
	}
	mc, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return "", err
	}
	_, err = schema.Migrate(ctx, mc)
	mc.Close(ctx)
	if err != nil {
		return "", err
	}
	if _, err := c.Exec(ctx, "ALTER DATABASE "+pgx.Identifier{tmp}.Sanitize()+" RENAME TO "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", err
	}
	return name, nil
}
