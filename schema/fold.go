package schema

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"decimail/server/query"
)

// steps are Go code run right after a migration's SQL, in the same
// transaction, for what SQL cannot compute. Every caller of Migrate
// (store.Open, decimail migrate, the test template) runs them.
var steps = map[int]func(context.Context, pgx.Tx) error{
	8:  foldTexts,
	16: sortKeys,
	19: displayKeys,
	23: fillAllCandidates,
	26: threadKeys,
}

// foldTexts folds the searched text columns of the rows stored before
// schema 0008 (query.Fold, as deliveries now write them).
//
// Only rows with a non-ASCII character are rewritten: the Fold of ASCII
// text is its lower case, and ILIKE folds ASCII already, so an ASCII row
// matches exactly as its Fold would. The cost is one read of every text
// (to find those rows: the trigram-indexed texts are detoasted once) and a
// rewrite of the non-ASCII ones, including their trigrams, about the cost
// of delivering them again (some 4 ms of Postgres CPU a message with
// texts; a 100,000-message store with a third of its mail non-ASCII: a
// few minutes, at start-up, under the migration lock). Rows are read in
// key order in batches, so memory stays bounded (texts: 25 rows, each at
// most message.MaxBodyText).
func foldTexts(ctx context.Context, tx pgx.Tx) error {
	if err := refold(ctx, tx, "messages", "id", 500, "subject", "from_addr", "to_addr", "cc_addr", "bcc_addr"); err != nil {
		return err
	}
	return refold(ctx, tx, "message_texts", "message_id", 25, "header_text", "body_text")
}

// refold rewrites cols of table's rows that have a non-ASCII character to
// their query.Fold, batch rows at a time in the order of the bigint key.
func refold(ctx context.Context, tx pgx.Tx, table, key string, batch int, cols ...string) error {
	var nonASCII, sets, unnest []string
	for i, c := range cols {
		nonASCII = append(nonASCII, fmt.Sprintf("octet_length(%s) <> char_length(%s)", c, c))
		sets = append(sets, fmt.Sprintf("%s = u.c%d", c, i))
		unnest = append(unnest, fmt.Sprintf("$%d::text[]", i+2))
	}
	sel := fmt.Sprintf(`SELECT %s, %s FROM %s WHERE %s > $1 AND (%s) ORDER BY %s LIMIT %d`,
		key, strings.Join(cols, ", "), table, key, strings.Join(nonASCII, " OR "), key, batch)
	alias := make([]string, len(cols))
	for i := range cols {
		alias[i] = fmt.Sprintf("c%d", i)
	}
	upd := fmt.Sprintf(`UPDATE %s t SET %s FROM unnest($1::bigint[], %s) AS u(k, %s) WHERE t.%s = u.k`,
		table, strings.Join(sets, ", "), strings.Join(unnest, ", "), strings.Join(alias, ", "), key)
	last := int64(-1 << 63)
	for {
		rows, err := tx.Query(ctx, sel, last)
		if err != nil {
			return fmt.Errorf("schema: fold %s: %w", table, err)
		}
		var keys []int64
		vals := make([][]string, len(cols))
		n := 0
		for rows.Next() {
			n++
			var k int64
			v := make([]string, len(cols))
			dst := []any{&k}
			for i := range v {
				dst = append(dst, &v[i])
			}
			if err := rows.Scan(dst...); err != nil {
				rows.Close()
				return err
			}
			last = k
			changed := false
			for i := range v {
				f := query.Fold(v[i])
				changed = changed || f != v[i]
				v[i] = f
			}
			if !changed {
				continue
			}
			keys = append(keys, k)
			for i := range v {
				vals[i] = append(vals[i], v[i])
			}
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("schema: fold %s: %w", table, err)
		}
		if len(keys) > 0 {
			args := []any{keys}
			for _, v := range vals {
				args = append(args, v)
			}
			if _, err := tx.Exec(ctx, upd, args...); err != nil {
				return fmt.Errorf("schema: fold %s: %w", table, err)
			}
		}
		if n < batch {
			return nil
		}
	}
}
