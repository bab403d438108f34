package pgrun

import (
	"context"
	"fmt"
	"time"

	"github.com/testcontainers/testcontainers-go"
	tcpostgres "github.com/testcontainers/testcontainers-go/modules/postgres"
)

// startContainer runs Postgres in Docker when an engine answers. On machines
// without one (these project machines) GetProvider fails in well under a
// millisecond and we fall back to the local binaries; a recover guards
// against the library panicking on odd Docker setups.
func startContainer(ctx context.Context) (inst *Instance, err error) {
	defer func() {
		if r := recover(); r != nil {
			inst, err = nil, fmt.Errorf("testcontainers panicked: %v", r)
		}
	}()
	p, err := testcontainers.ProviderDefault.GetProvider()
	if err != nil {
		return nil, err
	}
	hctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := p.Health(hctx); err != nil {
		return nil, err
	}
	ctr, err := tcpostgres.Run(ctx, "postgres:16-alpine",
		tcpostgres.WithDatabase("decimail"),
		tcpostgres.WithUsername("postgres"),
		tcpostgres.WithPassword("postgres"),
		tcpostgres.BasicWaitStrategies())
	if err != nil {
		if ctr != nil {
			testcontainers.TerminateContainer(ctr)
		}
		return nil, err
	}
	dsn, err := ctr.ConnectionString(ctx, "sslmode=disable")
	if err != nil {
		testcontainers.TerminateContainer(ctr)
		return nil, err
	}
	dsn, _ = WithDatabase(dsn, "postgres")
	return &Instance{DSN: dsn, Source: "testcontainers", stop: func() error {
		return testcontainers.TerminateContainer(ctr)
	}}, nil
}
