package store

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
)

// QUOTA (RFC 9208): one quota root per user, its usage kept on the users
// row by triggers and its limits in per-user settings (schema 0021).

// overQuotaCode is the SQLSTATE schema 0021's trigger raises when a
// statement leaves a user over a limit; wrap turns it into ErrOverQuota.
const overQuotaCode = "DQ001"

// Quota settings, per user (Settings): STORAGE in units of 1024 octets
// (rfc9208.txt:543), MESSAGE in messages (rfc9208.txt:571).
const (
	QuotaStorageKey  = "quota_storage"
	QuotaMessagesKey = "quota_messages"
)

// Quota is a user's usage and limits. Every stored message counts once,
// however many mailboxes show it.
type Quota struct {
	Bytes, Messages int64 // usage
	// StorageKiB and MaxMessages are the limits, -1 when none is set.
	StorageKiB, MaxMessages int64
}

// Quota reads a user's usage and limits in one query.
func (s *Store) Quota(ctx context.Context, userID int64) (Quota, error) {
	var q Quota
	err := s.pool.QueryRow(ctx, `SELECT u.used_bytes, u.used_messages,
			coalesce((SELECT value::bigint FROM configuration WHERE key = $2 || ':' || u.name), -1),
			coalesce((SELECT value::bigint FROM configuration WHERE key = $3 || ':' || u.name), -1)
		FROM users u WHERE u.id = $1`, userID, QuotaStorageKey, QuotaMessagesKey).
		Scan(&q.Bytes, &q.Messages, &q.StorageKiB, &q.MaxMessages)
	if errors.Is(err, pgx.ErrNoRows) {
		return q, ErrNoUser
	}
	return q, wrap("quota", err)
}

// Room reports whether a message of size octets fits the quota now (the
// limits are checked again when it is stored, under the user's lock).
// Usage exactly at a limit is within it.
func (q Quota) Room(size int64) bool {
	return (q.StorageKiB < 0 || q.Bytes+size <= q.StorageKiB*1024) &&
		(q.MaxMessages < 0 || q.Messages+1 <= q.MaxMessages)
}

// AddDeleted fills Deleted and DeletedSize of the statuses (STATUS
// DELETED and DELETED-STORAGE, rfc9208.txt:383-403) in one query; the
// \Deleted messages of a user are found by their partial index (schema
// 0007).
func (s *Store) AddDeleted(ctx context.Context, userID int64, sts ...*MailboxStatus) error {
	ids := make([]int64, len(sts))
	for i, st := range sts {
		ids[i] = st.ID
	}
	rows, err := s.pool.Query(ctx, `SELECT mm.mailbox_id, count(*), sum(f.size) FROM message_flags f
		JOIN mailbox_messages mm ON mm.message_id = f.message_id
		WHERE f.user_id = $1 AND f.deleted AND mm.mailbox_id = ANY($2) GROUP BY 1`, userID, ids)
	if err != nil {
		return wrap("deleted counts", err)
	}
	got := map[int64][2]int64{}
	var id, n, size int64
	_, err = pgx.ForEachRow(rows, []any{&id, &n, &size}, func() error { got[id] = [2]int64{n, size}; return nil })
	for _, st := range sts {
		st.Deleted, st.DeletedSize = int(got[st.ID][0]), got[st.ID][1]
	}
	return wrap("deleted counts", err)
}
