package schema

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// StepForTest is the Go step of migration v, nil if it has none.
func StepForTest(v int) func(context.Context, pgx.Tx) error { return steps[v] }
