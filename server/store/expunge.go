package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/jackc/pgx/v5"
)

// Expunge removes the messages flagged \Deleted (restricted to uids when not
// nil: UID EXPUNGE) from a mailbox and returns their UIDs ascending. In a
// folder this removes membership and deletes messages no folder holds any
// more (a message another folder holds stays there); in a query mailbox it
// moves them to Trash (expungeToTrash), or, when the user's view_expunge
// setting is "delete" (ViewExpungeKey), deletes the messages themselves.
// Deleted messages are logged in delete_log for the delete daemon.
//
// It is one lazy change in one round trip (changeBatch), unless the user
// has views with folder terms (then refreshFolderViews re-evaluates them,
// in a transaction of a few round trips) or it moves messages to Trash.
// The first statement finds the \Deleted members once and sets them aside,
// with the messages to delete, in settings local to the transaction
// (decimail.d, decimail.gone) that the next statements read: under the
// user's lock nothing else changes the user's flags or memberships
// meanwhile.
func (s *Store) Expunge(ctx context.Context, b Box, uids []uint32) ([]uint32, error) {
	if err := b.check(); err != nil {
		return nil, err
	}
	userID, mailboxID := b.userID, b.id
	// A mailbox's kind never changes (DefineMailbox refuses a folder), so
	// it is read before the lock, with the setting and whether any view
	// reads folders (checked again under the lock).
	var isQuery, folderViews bool
	var mode string
	err := s.pool.QueryRow(ctx, `SELECT b.definition IS NOT NULL,
			EXISTS (SELECT 1 FROM mailboxes v WHERE v.user_id = $2 AND v.uses_folders),
			coalesce((SELECT c.value FROM configuration c, users u WHERE u.id = $2 AND c.key = $3 || ':' || u.name), '')
		FROM mailboxes b WHERE b.id = $1 AND b.user_id = $2`, mailboxID, userID, ViewExpungeKey).Scan(&isQuery, &folderViews, &mode)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, wrap("expunge", ErrNotFound)
	} else if err != nil {
		return nil, wrap("expunge", err)
	}
	if isQuery && mode != ViewExpungeDelete {
		return s.expungeToTrash(ctx, userID, mailboxID, uids)
	}
	var out []uint32
	var gone []int64 // the messages deleted (deletedSet, once committed)
	withViews := func() ([]uint32, error) {
		err := s.change(ctx, userID, lazy, func(tx pgx.Tx) error {
			b := &pgx.Batch{}
			var survivors []int64
			queueExpunge(b, userID, mailboxID, uids, false, &out, &survivors, &gone)
			if err := tx.SendBatch(ctx, b).Close(); err != nil {
				return err
			}
			return refreshFolderViews(ctx, tx, userID, survivors, nil)
		})
		if err == nil {
			s.deleted.add(gone)
		}
		return out, wrap("expunge", err)
	}
	if !isQuery && folderViews {
		return withViews()
	}
	err = s.changeBatch(ctx, userID, func(b *pgx.Batch, attempt int) (commitMode, error) {
		if !isQuery {
			if attempt > 0 {
				return lazy, errSlowPath // maybe a view that reads folders appeared
			}
			b.Queue(`SELECT decimail_check(NOT EXISTS (SELECT 1 FROM mailboxes WHERE user_id = $1 AND uses_folders),
				'a view reads folders now')`, userID)
		}
		queueExpunge(b, userID, mailboxID, uids, isQuery, &out, nil, &gone)
		// Known deleted before any session hears of the expunge: a session
		// then finds them in deletedSet instead of reading them (imapd:
		// othersFlags, fromMeta).
		s.committed.onCommit(userID, func() { s.deleted.add(gone) })
		if !isQuery {
			// No view reads folders: a message that only Trash and Junk
			// hold now leaves every view (query.Kept).
			b.Queue(`DELETE FROM mailbox_messages mm USING mailboxes v
				WHERE v.id = mm.mailbox_id AND v.user_id = $1 AND v.definition IS NOT NULL
				AND mm.message_id = ANY(`+expungeMembers+`) AND NOT `+keptSQL("mm.message_id"), userID)
		}
		return lazy, nil // gives out no UID (gate.go)
	})
	if errors.Is(err, errSlowPath) {
		return withViews()
	}
	return out, wrap("expunge", err)
}

const (
	expungeMembers = `coalesce(nullif(current_setting('decimail.d', true), ''), '{}')::bigint[]`
	expungeGone    = `coalesce(nullif(current_setting('decimail.gone', true), ''), '{}')::bigint[]`
)

// queueExpunge queues Expunge's statements: find the \Deleted members (into
// *out, their UIDs ascending; *survivors, when not nil, gets the messages
// that only leave the mailbox), then remove them and delete the messages
// to delete.
func queueExpunge(b *pgx.Batch, userID, mailboxID int64, uids []uint32, isQuery bool, out *[]uint32, survivors, deleted *[]int64) {
	*out = (*out)[:0]
	// The \Deleted members (in the UID set), found from the user's
	// \Deleted messages (schema 0007), one probe each (LATERAL ...
	// OFFSET 0: without statistics, as after a bulk load, the planner
	// hashed every member of the mailbox instead, 1.5 ms for 3,000);
	// the messages to delete are,
	// from a query mailbox, all of them, from a folder those no other
	// folder holds.
	b.Queue(`SELECT set_config('decimail.d', x.ids::text, true), set_config('decimail.gone', x.gone::text, true), x.uids,
			x.ids, x.gone
		FROM (SELECT coalesce(array_agg(d.message_id), '{}') AS ids, coalesce(array_agg(d.uid ORDER BY d.uid), '{}') AS uids,
				coalesce(array_agg(d.message_id) FILTER (WHERE $3 OR NOT EXISTS (
					SELECT 1 FROM mailbox_messages o JOIN mailboxes b ON b.id = o.mailbox_id
					WHERE o.message_id = d.message_id AND b.definition IS NULL AND o.mailbox_id <> $1)), '{}') AS gone
			FROM message_flags f, LATERAL (SELECT d.uid, d.message_id FROM mailbox_messages d
				WHERE d.mailbox_id = $1 AND d.message_id = f.message_id OFFSET 0) d
			WHERE f.user_id = $4 AND f.deleted AND ($2::bigint[] IS NULL OR d.uid = ANY($2))) x`,
		mailboxID, nilOrInt64s(uids), isQuery, userID).QueryRow(func(r pgx.Row) error {
		var a, b string
		var us, ids, gone []int64
		if err := r.Scan(&a, &b, &us, &ids, &gone); err != nil {
			return err
		}
		for _, u := range us {
			*out = append(*out, uint32(u))
		}
		*deleted = gone
		if survivors != nil {
			g := map[int64]bool{}
			for _, id := range gone {
				g[id] = true
			}
			*survivors = slices.DeleteFunc(ids, func(id int64) bool { return g[id] })
		}
		return nil
	})
	// Memberships first (the counter trigger reads their flags), in one
	// statement (one tombstone per mailbox): the members' in this
	// mailbox, and every one of the messages to delete.
	b.Queue(`DELETE FROM mailbox_messages mm WHERE (mm.mailbox_id, mm.message_id) IN (
		SELECT $1::bigint, unnest(`+expungeMembers+`)
		UNION ALL SELECT x.mailbox_id, x.message_id FROM mailbox_messages x WHERE x.message_id = ANY(`+expungeGone+`))`, mailboxID)
	b.Queue(`DELETE FROM messages WHERE id = ANY(` + expungeGone + `)`)
}

func nilOrInt64s(u []uint32) []int64 {
	if u == nil {
		return nil
	}
	return toInt64s(u)
}

// Copied maps source UIDs to destination UIDs (UIDPLUS COPYUID).
type Copied struct {
	UIDValidity uint32
	Src, Dst    []uint32

	ids []int64 // the messages of Src
}

// Copy adds the messages to a folder (membership, no byte copy; flags are the
// message's and so shared). A message already in the destination keeps its
// UID there. A query mailbox destination gives ErrCannot.
func (s *Store) Copy(ctx context.Context, b Box, uids []uint32, dst string) (Copied, error) {
	return s.CopyHeld(ctx, b, uids, Held{}, dst)
}

// CopyHeld is Copy that also copies messages the session holds (Held, by
// message id; uids includes their UIDs).
func (s *Store) CopyHeld(ctx context.Context, b Box, uids []uint32, held Held, dst string) (Copied, error) {
	if err := b.check(); err != nil {
		return Copied{}, err
	}
	userID, srcID := b.userID, b.id
	var c Copied
	err := s.change(ctx, userID, durable, func(tx pgx.Tx) error {
		var err error
		var f folderChange
		if c, f, err = copyTx(ctx, tx, userID, srcID, uids, held, dst, false); err != nil {
			return err
		}
		if len(f.entering) == 0 {
			// The messages only gained a folder and none became kept:
			// only views with folder terms can change.
			var any bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM mailboxes WHERE user_id = $1 AND uses_folders)`,
				userID).Scan(&any); err != nil || !any {
				return err
			}
		}
		return refreshFolderViews(ctx, tx, userID, f.ids, f.entering)
	})
	return c, wrap("copy", err)
}

// Move is Copy, then removal from the source (RFC 6851). Moving out of a query
// mailbox takes the message out of the view and out of every other folder, so
// it ends up only in the destination (what "delete to Trash" from a view means).
// The views follow the folders (refreshFolderViews): a message moved to
// Trash leaves the views without folder terms, All Mail included.
func (s *Store) Move(ctx context.Context, b Box, uids []uint32, dst string) (Copied, error) {
	return s.MoveHeld(ctx, b, uids, Held{}, dst)
}

// MoveHeld is Move that also moves messages the session holds (Held, by
// message id; uids includes their UIDs): out of every folder into dst, as
// from a view.
func (s *Store) MoveHeld(ctx context.Context, b Box, uids []uint32, held Held, dst string) (Copied, error) {
	if err := b.check(); err != nil {
		return Copied{}, err
	}
	userID, srcID := b.userID, b.id
	var c Copied
	err := s.change(ctx, userID, durable, func(tx pgx.Tx) error {
		var err error
		var f folderChange
		if c, f, err = copyTx(ctx, tx, userID, srcID, uids, held, dst, true); err != nil || len(c.Src) == 0 {
			return err
		}
		var srcQuery bool
		var dstID int64
		if err := tx.QueryRow(ctx, `SELECT (SELECT definition IS NOT NULL FROM mailboxes WHERE id = $1),
			(SELECT id FROM mailboxes WHERE user_id = $2 AND name = $3)`, srcID, userID, NormName(dst)).Scan(&srcQuery, &dstID); err != nil {
			return err
		}
		if dstID == srcID {
			return nil // handled by copyTx: the messages got new UIDs in place
		}
		if srcQuery || held.Len() > 0 {
			ids := c.ids
			_, err := tx.Exec(ctx, `DELETE FROM mailbox_messages mm USING mailboxes b
				WHERE b.id = mm.mailbox_id AND mm.message_id = ANY($2)
				AND (b.id = $1 OR (b.definition IS NULL AND b.id <> $3))`, srcID, ids, dstID)
			if err != nil {
				return err
			}
			if err := refreshFolderViews(ctx, tx, userID, ids, f.entering); err != nil {
				return err
			}
			// The source view lost the messages (RFC 6851 expunges them there);
			// where they still match it (All Mail, for a move to Archive) they
			// come back with new UIDs, so membership always equals the definition.
			return addMatching(ctx, tx, srcID, userID, ids)
		}
		_, err = tx.Exec(ctx, `DELETE FROM mailbox_messages WHERE mailbox_id = $1 AND uid = ANY($2)`, srcID, toInt64s(c.Src))
		if err != nil {
			return err
		}
		return refreshFolderViews(ctx, tx, userID, f.ids, f.entering)
	})
	return c, wrap("move", err)
}

// folderChange is what copyTx changed for refreshFolderViews: the messages
// the destination holds now (ids) and those of them that may have become
// kept (no folder but Trash and Junk held them, and the destination is
// another).
type folderChange struct {
	ids, entering []int64
}

// copyTx adds the messages to the folder dst (Copy, Move); the caller
// brings the views up to date (refreshFolderViews) once the folders are
// final.
func copyTx(ctx context.Context, tx pgx.Tx, userID, srcID int64, uids []uint32, held Held, dst string, move bool) (Copied, folderChange, error) {
	var c Copied
	var f folderChange
	d, err := scanMailbox(tx.QueryRow(ctx, `SELECT `+mailboxCols+` FROM mailboxes WHERE user_id = $1 AND name = $2 FOR UPDATE`, userID, NormName(dst)))
	if errors.Is(err, pgx.ErrNoRows) {
		return c, f, ErrNotFound
	} else if err != nil {
		return c, f, err
	}
	if d.IsQuery() {
		return c, f, ErrCannot
	}
	c.UIDValidity = d.UIDValidity
	if move && d.ID == srcID {
		// MOVE into the same mailbox: the messages get new UIDs (expunge + append).
		rows, err := tx.Query(ctx, `WITH old AS (DELETE FROM mailbox_messages WHERE mailbox_id = $1 AND uid = ANY($2) RETURNING uid, message_id),
			ins AS (INSERT INTO mailbox_messages (mailbox_id, uid, message_id, modseq)
				SELECT $1, $3 + row_number() OVER (ORDER BY uid) - 1, message_id, nextval('modseq_seq') FROM old ORDER BY uid
				RETURNING uid, message_id)
			SELECT old.uid, ins.uid FROM old JOIN ins ON ins.message_id = old.message_id ORDER BY old.uid`,
			srcID, toInt64s(uids), int64(d.UIDNext))
		if err != nil {
			return c, f, err
		}
		if err := scanPairs(rows, &c); err != nil {
			return c, f, err
		}
		return c, f, bumpUIDNext(ctx, tx, d.ID)
	}
	rows, err := tx.Query(ctx, `SELECT uid, message_id FROM mailbox_messages WHERE mailbox_id = $1 AND uid = ANY($2)
		UNION ALL SELECT h.uid, h.id FROM unnest($3::bigint[], $4::bigint[]) AS h(uid, id)
			WHERE EXISTS (SELECT 1 FROM messages m WHERE m.id = h.id AND m.user_id = $5) ORDER BY 1`,
		srcID, toInt64s(uids), toInt64s(held.UIDs), held.IDs, userID)
	if err != nil {
		return c, f, err
	}
	var src []uint32
	var ids []int64
	for rows.Next() {
		var uid, id int64
		if err := rows.Scan(&uid, &id); err != nil {
			return c, f, err
		}
		src, ids = append(src, uint32(uid)), append(ids, id)
	}
	if err := rows.Err(); err != nil || len(ids) == 0 {
		return c, f, err
	}
	c.ids = slices.Clone(ids)
	// A message the destination already holds is really copied (RFC 3501
	// §6.4.7: COPY appends copies), since a folder holds a message once. A
	// MOVE of such a message just leaves it where it already is.
	existing := map[int64]int64{}
	if move {
		rows, err := tx.Query(ctx, `SELECT message_id, uid FROM mailbox_messages WHERE mailbox_id = $1 AND message_id = ANY($2)`, d.ID, ids)
		if err := scanIDMap(rows, err, existing); err != nil {
			return c, f, err
		}
	}
	dup := map[int64]int64{}
	if !move {
		if dup, err = duplicateMessages(ctx, tx, d.ID, ids); err != nil {
			return c, f, err
		}
	}
	var insert []int64
	for i, id := range ids {
		if n, ok := dup[id]; ok {
			ids[i] = n
		}
		if _, ok := existing[id]; !ok {
			insert = append(insert, ids[i])
		}
	}
	f.ids = ids
	if !isTrashFolder(d.Name) {
		if f.entering, err = notKept(ctx, tx, insert); err != nil {
			return c, f, err
		}
	}
	rows, err = tx.Query(ctx, `INSERT INTO mailbox_messages (mailbox_id, uid, message_id, modseq)
		SELECT $1, $2 + t.ord - 1, t.id, nextval('modseq_seq') FROM unnest($3::bigint[]) WITH ORDINALITY AS t(id, ord)
		ORDER BY t.ord RETURNING message_id, uid`, d.ID, int64(d.UIDNext), insert)
	if err := scanIDMap(rows, err, existing); err != nil {
		return c, f, err
	}
	c.Src = src
	for _, id := range ids {
		c.Dst = append(c.Dst, uint32(existing[id]))
	}
	// The copies made (fresh) are new messages that only dst holds: they
	// are among f.ids, and among f.entering unless dst is Trash or Junk.
	return c, f, bumpUIDNext(ctx, tx, d.ID)
}

// duplicateMessages makes a new message (row, flags, hard-linked spool file)
// for each of ids that mailbox already holds; it returns old id -> new id.
func duplicateMessages(ctx context.Context, tx pgx.Tx, mailboxID int64, ids []int64) (map[int64]int64, error) {
	rows, err := tx.Query(ctx, `WITH d AS (
			SELECT message_id AS old, nextval('messages_id_seq') AS new FROM mailbox_messages
			WHERE mailbox_id = $1 AND message_id = ANY($2)),
		ins AS (INSERT INTO messages (id, user_id, internal_date, internal_tz, internal_day, size, header, body,
				envelope, bodystructure, body_simple, sent_date, sent_day, subject, from_addr, to_addr, cc_addr, bcc_addr,
				reply_to, from_key, message_id, in_reply_to, refs, thread_id, broken, delivered_to, spool_path,
				base_subject, subject_reply, from_mbox, to_mbox, cc_mbox, preview, from_display, to_display)
			SELECT d.new, m.user_id, m.internal_date, m.internal_tz, m.internal_day, m.size, m.header, m.body,
				m.envelope, m.bodystructure, m.body_simple, m.sent_date, m.sent_day, m.subject, m.from_addr, m.to_addr, m.cc_addr, m.bcc_addr,
				m.reply_to, m.from_key, m.message_id, m.in_reply_to, m.refs, m.thread_id, m.broken, m.delivered_to, '',
				m.base_subject, m.subject_reply, m.from_mbox, m.to_mbox, m.cc_mbox, m.preview, m.from_display, m.to_display
			FROM d JOIN messages m ON m.id = d.old RETURNING id),
		txt AS (INSERT INTO message_texts (message_id, header_text, body_text)
			SELECT d.new, t.header_text, t.body_text FROM d JOIN message_texts t ON t.message_id = d.old),
		fl AS (INSERT INTO message_flags (message_id, user_id, size, internal_day, seen, answered, flagged, deleted, draft, keywords, modseq)
			SELECT d.new, f.user_id, f.size, f.internal_day, f.seen, f.answered, f.flagged, f.deleted, f.draft, f.keywords, nextval('modseq_seq')
			FROM d JOIN message_flags f ON f.message_id = d.old),
		vc AS (INSERT INTO view_candidates (message_id, mailbox_id) -- the same contents: the same candidacy
			SELECT d.new, c.mailbox_id FROM d JOIN view_candidates c ON c.message_id = d.old)
		SELECT d.old, d.new, m.spool_path, (SELECT count(*) FROM ins) FROM d JOIN messages m ON m.id = d.old`, mailboxID, ids)
	if err != nil {
		return nil, err
	}
	out := map[int64]int64{}
	type link struct {
		id   int64
		path string
	}
	var links []link
	for rows.Next() {
		var old, nw, n int64
		var path string
		if err := rows.Scan(&old, &nw, &path, &n); err != nil {
			return nil, err
		}
		out[old] = nw
		if path != "" {
			links = append(links, link{nw, path})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for _, l := range links {
		np := filepath.Join(filepath.Dir(l.path), strconv.FormatInt(l.id, 10)+".eml")
		if err := os.Link(l.path, np); err != nil && !os.IsExist(err) {
			return nil, fmt.Errorf("spool copy: %w", err)
		}
		if _, err := tx.Exec(ctx, `UPDATE messages SET spool_path = $2 WHERE id = $1`, l.id, np); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// scanIDMap reads (message id, uid) rows into m.
func scanIDMap(rows pgx.Rows, err error, m map[int64]int64) error {
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id, uid int64
		if err := rows.Scan(&id, &uid); err != nil {
			return err
		}
		m[id] = uid
	}
	return rows.Err()
}

func scanPairs(rows pgx.Rows, c *Copied) error {
	for rows.Next() {
		var su, du int64
		if err := rows.Scan(&su, &du); err != nil {
			return err
		}
		c.Src, c.Dst = append(c.Src, uint32(su)), append(c.Dst, uint32(du))
	}
	return rows.Err()
}

// bumpUIDNext moves uidnext past the highest UID in use (it never decreases).
func bumpUIDNext(ctx context.Context, tx pgx.Tx, id int64) error {
	_, err := tx.Exec(ctx, `UPDATE mailboxes SET uidnext = greatest(uidnext,
		1 + coalesce((SELECT max(uid) FROM mailbox_messages WHERE mailbox_id = $1), 0)) WHERE id = $1`, id)
	return err
}
