package store

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
)

// A message's header and body never change (a stored message is immutable;
// flags and memberships live elsewhere), so the process keeps the texts it
// read last, up to a size, and a one-message FETCH of a text it holds is
// answered without a round trip to Postgres (issue 15: BODY.PEEK[] one
// message per command, what mutt does on opening a message and Thunderbird
// when it fetches a message's parts one command after another, cost a
// query each, 4-9× Dovecot's read of a cached file).
//
// Entries are keyed by message id and carry the user: FetchText serves an
// entry to its user's Box only. A message deleted since is still served from
// here to a session whose view shows it (RFC 2180 §4.1.1 allows serving a
// message expunged by another session until its EXPUNGE is sent; a session
// only asks for ids its view holds).
type textCache = userLRU[*cachedText]

type cachedText struct {
	header, body []byte
}

// TextCacheMax is the largest message the cache keeps: a bigger one would
// push out many small ones for a single read.
const TextCacheMax = 1 << 20

func newTextCache(max int64) *textCache {
	return newUserLRU(max, TextCacheMax, func(t *cachedText) int64 { return int64(len(t.header) + len(t.body)) })
}

// FetchText reads the header and body of one message of b's user by its id
// (the id a session's view holds for the UID: messages are immutable, so no
// membership is read), from the process's text cache when it is there, else
// with one indexed read, after which it is cached. It returns ErrNotFound
// when no such message of the user exists (deleted since): the caller falls
// back to reading by UID. The slices are shared with the cache: read only.
func (s *Store) FetchText(ctx context.Context, b Box, id int64) (header, body []byte, err error) {
	if err := b.check(); err != nil {
		return nil, nil, err
	}
	if h, body, ok := s.CachedText(b, id); ok {
		return h, body, nil
	}
	err = s.pool.QueryRow(ctx, `SELECT header, body FROM messages WHERE id = $1 AND user_id = $2`, id, b.userID).Scan(&header, &body)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil, ErrNotFound
	} else if err != nil {
		return nil, nil, wrap("fetch text", err)
	}
	s.texts.put(b.userID, id, &cachedText{header: header, body: body})
	return header, body, nil
}

// CachedText is FetchText's answer when the process's text cache holds the
// message (ok), without reading Postgres: a FETCH of several messages'
// texts serves those from here and reads the others together.
func (s *Store) CachedText(b Box, id int64) (header, body []byte, ok bool) {
	if b.check() != nil {
		return nil, nil, false
	}
	t, ok := s.texts.get(b.userID, id)
	if !ok {
		return nil, nil, false
	}
	return t.header, t.body, true
}
