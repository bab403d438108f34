package store_test

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"decimail/server/store"
)

// TestNoParallelQuery: the store's connections never plan parallel workers.
// A worker is a process Postgres starts for the query; starting one took 25
// ms of a 35 ms UID SEARCH FROM example.org on 10,000 messages (issue 15,
// bench/ANALYSIS.md). The planner is made to like parallel plans as much as
// it can (no setup or tuple cost, any table size), so that only the store's
// max_parallel_workers_per_gather = 0 keeps the Gather out of the plan of
// the search a SEARCH FROM runs.
func TestNoParallelQuery(t *testing.T) {
	s, u := newStore(t)
	ctx := context.Background()
	for i := range 20 {
		deliver(t, s, u, msg("report "+string(rune('a'+i)), "body"), store.DeliverOptions{})
	}
	err := pgx.BeginFunc(ctx, s.Pool(), func(tx pgx.Tx) error {
		for _, set := range []string{"parallel_setup_cost = 0", "parallel_tuple_cost = 0",
			"min_parallel_table_scan_size = 0", "min_parallel_index_scan_size = 0", "enable_indexscan = off", "enable_bitmapscan = off"} {
			if _, err := tx.Exec(ctx, "SET LOCAL "+set); err != nil {
				return err
			}
		}
		rows, err := tx.Query(ctx, `EXPLAIN SELECT m.id FROM messages m WHERE m.user_id = $1 AND m.from_addr LIKE $2`, u.ID, "%example%")
		if err != nil {
			return err
		}
		plan, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		if p := strings.Join(plan, "\n"); strings.Contains(p, "Gather") || strings.Contains(p, "Parallel") {
			t.Errorf("a parallel plan on the store's connection:\n%s", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
