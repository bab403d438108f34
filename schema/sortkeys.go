package schema

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"decimail/server/message"
	"decimail/server/query"
)

// sortKeys fills the SORT and THREAD keys of schema 0016 (base_subject,
// subject_reply, from_mbox, to_mbox, cc_mbox) for the rows stored before
// it, from their stored header section, as a delivery now computes them
// (message.Parse; the text columns folded by query.Fold). Rows are read in
// id order in batches of 500 headers, so memory stays bounded; the cost is
// one header parse per message (a 100,000-message store: seconds).
func sortKeys(ctx context.Context, tx pgx.Tx) error {
	const batch = 500
	last := int64(-1 << 63)
	for {
		rows, err := tx.Query(ctx, `SELECT id, header FROM messages WHERE id > $1 ORDER BY id LIMIT $2`, last, batch)
		if err != nil {
			return fmt.Errorf("schema: sort keys: %w", err)
		}
		var ids []int64
		var subj, from, to, cc []string
		var reply []bool
		read := 0
		for rows.Next() {
			read++
			var id int64
			var header []byte
			if err := rows.Scan(&id, &header); err != nil {
				rows.Close()
				return fmt.Errorf("schema: sort keys: %w", err)
			}
			last = id
			p := message.Parse(header)
			if p.BaseSubject == "" && !p.SubjectReply && p.FromMailbox == "" && p.ToMailbox == "" && p.CcMailbox == "" {
				continue // the columns' defaults
			}
			ids = append(ids, id)
			subj = append(subj, query.Fold(p.BaseSubject))
			reply = append(reply, p.SubjectReply)
			from = append(from, query.Fold(p.FromMailbox))
			to = append(to, query.Fold(p.ToMailbox))
			cc = append(cc, query.Fold(p.CcMailbox))
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("schema: sort keys: %w", err)
		}
		if len(ids) > 0 {
			if _, err := tx.Exec(ctx, `UPDATE messages m SET base_subject = u.s, subject_reply = u.r,
					from_mbox = u.f, to_mbox = u.t, cc_mbox = u.c
				FROM unnest($1::bigint[], $2::text[], $3::bool[], $4::text[], $5::text[], $6::text[]) AS u(id, s, r, f, t, c)
				WHERE m.id = u.id`, ids, subj, reply, from, to, cc); err != nil {
				return fmt.Errorf("schema: sort keys: %w", err)
			}
		}
		if read < batch {
			return nil
		}
	}
}
