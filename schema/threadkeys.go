package schema

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"decimail/server/message"
)

// threadKeys is the Go step of schema 0026: the thread_keys rows of the
// messages stored before it, from their stored message_id, in_reply_to
// and refs (message.ThreadKeys, as a delivery now computes them): per
// user and key, the least thread_id of the messages with the key. Rows
// are read in id order in batches of 1,000; no header is parsed, so a
// 100,000-message store costs one read of three short columns and an
// insert per msg-id.
func threadKeys(ctx context.Context, tx pgx.Tx) error {
	const batch = 1000
	last := int64(-1 << 63)
	for {
		rows, err := tx.Query(ctx, `SELECT id, user_id, thread_id, message_id, in_reply_to, refs FROM messages
			WHERE id > $1 ORDER BY id LIMIT $2`, last, batch)
		if err != nil {
			return fmt.Errorf("schema: thread keys: %w", err)
		}
		n := 0
		var users, threads []int64
		var keys []string // one row a key
		var id, user, thread int64
		var msgID, inReply string
		var refs []string
		_, err = pgx.ForEachRow(rows, []any{&id, &user, &thread, &msgID, &inReply, &refs}, func() error {
			n, last = n+1, id
			for _, k := range message.ThreadKeys(msgID, inReply, refs) {
				users, threads, keys = append(users, user), append(threads, thread), append(keys, k)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("schema: thread keys: %w", err)
		}
		if len(keys) > 0 {
			if _, err := tx.Exec(ctx, `INSERT INTO thread_keys (user_id, key, thread_id)
				SELECT u, k, min(t) FROM unnest($1::bigint[], $2::text[], $3::bigint[]) AS x(u, k, t) GROUP BY u, k
				ON CONFLICT (user_id, key) DO UPDATE SET thread_id = EXCLUDED.thread_id WHERE EXCLUDED.thread_id < thread_keys.thread_id`,
				users, keys, threads); err != nil {
				return fmt.Errorf("schema: thread keys: %w", err)
			}
		}
		if n < batch {
			return nil
		}
	}
}
