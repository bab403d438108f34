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
	return eachHeader(ctx, tx, "sort keys", func(ids []int64, headers [][]byte) error {
		var keep []int64
		var subj, from, to, cc []string
		var reply []bool
		for i, h := range headers {
			p := message.Parse(h)
			if p.BaseSubject == "" && !p.SubjectReply && p.FromMailbox == "" && p.ToMailbox == "" && p.CcMailbox == "" {
				continue // the columns' defaults
			}
			keep = append(keep, ids[i])
			subj = append(subj, query.Fold(p.BaseSubject))
			reply = append(reply, p.SubjectReply)
			from = append(from, query.Fold(p.FromMailbox))
			to = append(to, query.Fold(p.ToMailbox))
			cc = append(cc, query.Fold(p.CcMailbox))
		}
		if len(keep) == 0 {
			return nil
		}
		_, err := tx.Exec(ctx, `UPDATE messages m SET base_subject = u.s, subject_reply = u.r,
				from_mbox = u.f, to_mbox = u.t, cc_mbox = u.c
			FROM unnest($1::bigint[], $2::text[], $3::bool[], $4::text[], $5::text[], $6::text[]) AS u(id, s, r, f, t, c)
			WHERE m.id = u.id`, keep, subj, reply, from, to, cc)
		return err
	})
}

// displayKeys fills schema 0019's SORT=DISPLAY keys (from_display,
// to_display) for the rows stored before it, as sortKeys does schema
// 0016's.
func displayKeys(ctx context.Context, tx pgx.Tx) error {
	return eachHeader(ctx, tx, "display keys", func(ids []int64, headers [][]byte) error {
		var keep []int64
		var from, to []string
		for i, h := range headers {
			if p := message.Parse(h); p.FromDisplay != "" || p.ToDisplay != "" {
				keep = append(keep, ids[i])
				from = append(from, query.Fold(p.FromDisplay))
				to = append(to, query.Fold(p.ToDisplay))
			}
		}
		if len(keep) == 0 {
			return nil
		}
		_, err := tx.Exec(ctx, `UPDATE messages m SET from_display = u.f, to_display = u.t
			FROM unnest($1::bigint[], $2::text[], $3::text[]) AS u(id, f, t) WHERE m.id = u.id`, keep, from, to)
		return err
	})
}

// eachHeader calls fn with the stored headers of every message, in id
// order, in batches of 500: memory stays bounded, and a 100,000-message
// store costs one header parse per message (seconds).
func eachHeader(ctx context.Context, tx pgx.Tx, what string, fn func(ids []int64, headers [][]byte) error) error {
	const batch = 500
	last := int64(-1 << 63)
	for {
		rows, err := tx.Query(ctx, `SELECT id, header FROM messages WHERE id > $1 ORDER BY id LIMIT $2`, last, batch)
		if err != nil {
			return fmt.Errorf("schema: %s: %w", what, err)
		}
		var ids []int64
		var headers [][]byte
		for rows.Next() {
			var id int64
			var header []byte
			if err := rows.Scan(&id, &header); err != nil {
				rows.Close()
				return fmt.Errorf("schema: %s: %w", what, err)
			}
			ids, headers, last = append(ids, id), append(headers, header), id
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("schema: %s: %w", what, err)
		}
		if err := fn(ids, headers); err != nil {
			return fmt.Errorf("schema: %s: %w", what, err)
		}
		if len(ids) < batch {
			return nil
		}
	}
}
