package schema

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"decimail/server/query"
)

// FillCandidates writes a view's candidates (schema 0023: the user's
// messages the flag-free part of its definition matches, when
// query.SplitFlags splits it), replacing those it had. The store calls it
// when a view is defined or redefined; the migration, for every view.
func FillCandidates(ctx context.Context, tx pgx.Tx, mailboxID int64, def string) error {
	if _, err := tx.Exec(ctx, `DELETE FROM view_candidates WHERE mailbox_id = $1`, mailboxID); err != nil {
		return err
	}
	n, err := query.ParseDefinition(def)
	if err != nil {
		return fmt.Errorf("mailbox %d definition %q: %w", mailboxID, def, err)
	}
	_, rest, ok := query.SplitFlags(n)
	if !ok {
		return nil
	}
	env := &query.Env{Msg: "m", Flags: "f", Texts: "mt"}
	cond, err := query.Compile(rest, env)
	if err != nil {
		return fmt.Errorf("mailbox %d definition %q: %w", mailboxID, def, err)
	}
	joins := " JOIN message_flags f ON f.message_id = m.id"
	if query.UsesText(rest) {
		joins += " JOIN message_texts mt ON mt.message_id = m.id AND mt.user_id = m.user_id"
	}
	k := len(env.Args)
	_, err = tx.Exec(ctx, fmt.Sprintf(`INSERT INTO view_candidates (message_id, mailbox_id)
		SELECT m.id, $%d FROM messages m%s
		WHERE m.user_id = (SELECT user_id FROM mailboxes WHERE id = $%d) AND coalesce((%s), false)`, k+1, joins, k+1, cond),
		append(env.Args, mailboxID)...)
	return err
}

// fillAllCandidates is the Go step of schema 0023: the candidates of the
// views that exist.
func fillAllCandidates(ctx context.Context, tx pgx.Tx) error {
	rows, err := tx.Query(ctx, `SELECT id, definition FROM mailboxes WHERE definition IS NOT NULL AND uses_flags ORDER BY id`)
	if err != nil {
		return err
	}
	type view struct {
		id  int64
		def string
	}
	views, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (view, error) {
		var v view
		return v, r.Scan(&v.id, &v.def)
	})
	if err != nil {
		return err
	}
	for _, v := range views {
		if err := FillCandidates(ctx, tx, v.id, v.def); err != nil {
			return err
		}
	}
	return nil
}
