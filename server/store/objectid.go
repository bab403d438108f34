package store

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"encoding/hex"
	"fmt"
)

// Object identifiers (RFC 8474 OBJECTID: MAILBOXID, EMAILID, THREADID) are
// a keyed hash of the row id, not the id itself: ids come from sequences
// shared by all users, and an id a user can see would tell them how fast
// everybody else's mail and mailboxes are created. The key is one per
// database (configuration key objectid_key, made on first use), so every
// server process on it, and every restart, gives the same id ("The server
// MUST return the same MAILBOXID for a mailbox with the same name and
// UIDVALIDITY", rfc8474.txt:154-155; likewise EMAILID and THREADID).
type ObjectIDs struct{ key []byte }

const objectIDKey = "objectid_key"

func loadObjectIDs(ctx context.Context, s *Store) (*ObjectIDs, error) {
	fresh := make([]byte, 32)
	if _, err := rand.Read(fresh); err != nil {
		return nil, err
	}
	var v string
	err := s.pool.QueryRow(ctx, `WITH ins AS (
			INSERT INTO configuration (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING RETURNING value)
		SELECT value FROM ins UNION ALL SELECT value FROM configuration WHERE key = $1 LIMIT 1`,
		objectIDKey, hex.EncodeToString(fresh)).Scan(&v)
	if err != nil {
		return nil, wrap("object id key", err)
	}
	key, err := hex.DecodeString(v)
	if err != nil || len(key) < 16 {
		return nil, fmt.Errorf("store: configuration %s is not a hex key of 16 octets or more", objectIDKey)
	}
	return &ObjectIDs{key: key}, nil
}

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// id is prefix + 20 base32 characters of HMAC-SHA256(key, prefix, n):
// `objectid = 1*255(ALPHA / DIGIT / "_" / "-")` (rfc8474.txt:523).
func (o *ObjectIDs) id(prefix byte, n int64) string {
	m := hmac.New(sha256.New, o.key)
	var b [9]byte
	b[0] = prefix
	binary.BigEndian.PutUint64(b[1:], uint64(n))
	m.Write(b[:])
	return string(prefix) + b32.EncodeToString(m.Sum(nil)[:12])
}

// Mailbox is a mailbox's MAILBOXID; it survives RENAME (the id does).
func (o *ObjectIDs) Mailbox(id int64) string { return o.id('M', id) }

// Email is a message's EMAILID, the same in every mailbox that shows it.
func (o *ObjectIDs) Email(id int64) string { return o.id('E', id) }

// Thread is a thread's THREADID.
func (o *ObjectIDs) Thread(id int64) string { return o.id('T', id) }

// ObjectIDs renders object identifiers.
func (s *Store) ObjectIDs() *ObjectIDs { return s.objectIDs }
