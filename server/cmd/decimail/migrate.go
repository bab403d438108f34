package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/jackc/pgx/v5"

	"decimail/schema"
)

func init() {
	var status bool
	register(&command{name: "migrate", help: "apply pending schema migrations (-status: list applied and pending ones, change nothing)",
		flags: func(fs *flag.FlagSet) {
			fs.BoolVar(&status, "status", false, "list the migrations, applied (when) and pending, and apply nothing")
		},
		run: func(ctx context.Context, _ *flag.FlagSet, args []string) error {
			if err := needArgs(args, 0, "no arguments"); err != nil {
				return err
			}
			dsn, err := databaseURL()
			if err != nil {
				return err
			}
			c, err := pgx.Connect(ctx, dsn)
			if err != nil {
				return err
			}
			defer c.Close(context.Background())
			if status {
				return migrateStatus(ctx, c)
			}
			applied, err := schema.Migrate(ctx, c)
			if err != nil {
				return err
			}
			if len(applied) == 0 {
				fmt.Println("schema is up to date")
			}
			for _, a := range applied {
				fmt.Println("applied", a)
			}
			return nil
		}})
}

// migrateStatus prints one line per migration and what is pending.
func migrateStatus(ctx context.Context, c *pgx.Conn) error {
	states, err := schema.Status(ctx, c)
	if err != nil {
		return err
	}
	pending, unknown := 0, 0
	for _, st := range states {
		what := "pending"
		switch {
		case st.Unknown:
			what = "applied " + st.AppliedAt.Format("2006-01-02 15:04:05 MST") + ", unknown to this binary (a newer version migrated the database)"
			unknown++
		case st.Applied:
			what = "applied " + st.AppliedAt.Format("2006-01-02 15:04:05 MST")
		default:
			pending++
		}
		if st.GoStep {
			what += " (with a Go step)"
		}
		fmt.Printf("%-28s %s\n", st.Name, what)
	}
	switch {
	case unknown > 0:
		fmt.Printf("the database is newer than this binary (%d unknown migrations): upgrade decimail\n", unknown)
	case pending > 0:
		fmt.Printf("%d pending: run `decimail migrate` (all in one transaction)\n", pending)
	default:
		fmt.Println("schema is up to date")
	}
	return nil
}
