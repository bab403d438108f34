package store

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"decimail/server/query"
)

// Views and the folders that hold a message (issue 14).
//
// A view's definition may read folders (FOLDER, ONLYFOLDER:
// query/folder.go; mailboxes.uses_folders), and a view without folder
// terms follows the default rule query.Kept: it leaves out the messages
// only Trash and Junk hold (keptSQL). So a change of the folders holding a
// message (COPY, MOVE, EXPUNGE, DELETE and RENAME of a folder) brings the
// views up to date in the same transaction (refreshFolderViews): a
// message MOVEd to Trash leaves All Mail at once, and one moved back out
// of Trash enters it again with a new UID.

// refreshFolderViews brings the user's views up to date for messages whose
// folders changed. changed are the messages whose folders changed;
// entering those of them that may have become kept (no folder but Trash
// and Junk held them before, and now another may): only those can enter a
// view without folder terms. Views with folder terms re-evaluate changed
// whole (their SQL predicate, restricted to those messages); views
// without lose the changed messages that are no longer kept, in one
// statement, and take the entering ones that match. All in one batch.
func refreshFolderViews(ctx context.Context, tx pgx.Tx, userID int64, changed, entering []int64) error {
	if len(changed) == 0 && len(entering) == 0 {
		return nil
	}
	views, err := userViews(ctx, tx, userID, false)
	if err != nil || len(views) == 0 {
		return err
	}
	b := viewBatch()
	added := false
	var plain []int64
	for _, v := range views {
		if !v.usesFolders {
			plain = append(plain, v.id)
			if len(entering) > 0 {
				q, args := addMatchingSQL(v, userID, entering) // with keptSQL
				b.Queue(q, args...)
				added = true
			}
			continue
		}
		if len(changed) == 0 {
			continue
		}
		k := len(v.args)
		b.Queue(fmt.Sprintf(`DELETE FROM mailbox_messages mm USING messages m%s
			WHERE mm.mailbox_id = $%d AND mm.message_id = m.id AND m.id = ANY($%d) AND NOT coalesce((%s), false)`,
			msgJoins(v.usesText), k+1, k+2, v.sql), append(append([]any{}, v.args...), v.id, changed)...)
		q, args := addMatchingSQL(v, userID, changed)
		b.Queue(q, args...)
		added = true
	}
	if len(plain) > 0 && len(changed) > 0 {
		b.Queue(`DELETE FROM mailbox_messages mm USING unnest($2::bigint[]) AS k(id)
			WHERE mm.mailbox_id = ANY($1) AND mm.message_id = k.id AND NOT `+keptSQL("k.id"), plain, changed)
	}
	if added {
		b.Queue(durableNow) // UIDs given out are on disk at COMMIT (gate.go)
	}
	return tx.SendBatch(ctx, b).Close()
}

// notKept returns those of ids that no folder but Trash and Junk holds
// (query.Kept is false), ascending.
func notKept(ctx context.Context, tx pgx.Tx, ids []int64) ([]int64, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	rows, err := tx.Query(ctx, `SELECT x.id FROM unnest($1::bigint[]) AS x(id) WHERE NOT `+keptSQL("x.id")+` ORDER BY x.id`, ids)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[int64])
}

// isTrashFolder reports whether a folder name is one of query.TrashFolders:
// a message put there does not become kept.
func isTrashFolder(name string) bool { return slices.Contains(query.TrashFolders, name) }

// ViewExpungeKey is the per-user configuration key (ViewExpungeKey + ":" +
// user name) that says what EXPUNGE does in a query mailbox: ViewExpungeTrash
// (the default: the messages move to Trash) or ViewExpungeDelete (they are
// deleted at once, wherever they are).
const (
	ViewExpungeKey    = "view_expunge"
	ViewExpungeTrash  = "trash"
	ViewExpungeDelete = "delete"
)

// expungeToTrash is EXPUNGE in a view (Expunge): the \Deleted members (in
// uids, when not nil) leave the view and every folder, and Trash holds
// them, \Deleted cleared (an expunge of Trash, which some clients do on
// their own, must not destroy them at once: they were only put there);
// members that no folder but Trash and Junk held are deleted for real.
// Without a Trash folder (special use \Trash, else the folder named
// Trash) they are all deleted, as before. Sessions in Trash see EXISTS,
// those in the views and folders the messages left see EXPUNGE.
func (s *Store) expungeToTrash(ctx context.Context, userID, viewID int64, uids []uint32) ([]uint32, error) {
	var out []uint32
	err := s.change(ctx, userID, durable, func(tx pgx.Tx) error {
		out = out[:0]
		rows, err := tx.Query(ctx, `SELECT d.uid, d.message_id FROM mailbox_messages d JOIN message_flags f ON f.message_id = d.message_id
			WHERE d.mailbox_id = $1 AND f.deleted AND ($2::bigint[] IS NULL OR d.uid = ANY($2)) ORDER BY d.uid`, viewID, nilOrInt64s(uids))
		if err != nil {
			return err
		}
		var ids []int64
		var uid, id int64
		if _, err := pgx.ForEachRow(rows, []any{&uid, &id}, func() error {
			out, ids = append(out, uint32(uid)), append(ids, id)
			return nil
		}); err != nil || len(ids) == 0 {
			return err
		}
		var trash int64
		var trashName string
		err = tx.QueryRow(ctx, `SELECT coalesce(max(id), 0), coalesce(max(name), '') FROM (SELECT id, name FROM mailboxes
			WHERE user_id = $1 AND definition IS NULL AND (special_use = '\Trash' OR name = 'Trash')
			ORDER BY special_use = '\Trash' DESC NULLS LAST, id LIMIT 1 FOR UPDATE) t`, userID).Scan(&trash, &trashName)
		if err != nil {
			return err
		}
		if trash == 0 {
			return deleteMessages(ctx, tx, ids)
		}
		gone, err := notKept(ctx, tx, ids)
		if err != nil {
			return err
		}
		if err := deleteMessages(ctx, tx, gone); err != nil {
			return err
		}
		moved := slices.DeleteFunc(ids, func(id int64) bool { _, found := slices.BinarySearch(gone, id); return found })
		if len(moved) == 0 {
			return nil
		}
		b := &pgx.Batch{}
		// Out of the view and every folder but Trash, in one statement
		// (one tombstone per mailbox).
		b.Queue(`DELETE FROM mailbox_messages mm USING mailboxes b
			WHERE b.id = mm.mailbox_id AND mm.message_id = ANY($2) AND (b.id = $1 OR (b.definition IS NULL AND b.id <> $3))`,
			viewID, moved, trash)
		b.Queue(`UPDATE message_flags SET deleted = false, modseq = nextval('modseq_seq') WHERE message_id = ANY($1) AND deleted`, moved)
		// Into Trash with fresh UIDs, in id order (those it did not hold).
		b.Queue(`WITH new AS (SELECT t.id, row_number() OVER (ORDER BY t.id) AS i FROM unnest($2::bigint[]) AS t(id)
				WHERE NOT EXISTS (SELECT 1 FROM mailbox_messages x WHERE x.mailbox_id = $1 AND x.message_id = t.id)),
			ins AS (INSERT INTO mailbox_messages (mailbox_id, uid, message_id, modseq)
				SELECT $1, b.uidnext + new.i - 1, new.id, nextval('modseq_seq')
				FROM new, mailboxes b WHERE b.id = $1 ORDER BY new.i RETURNING 1)
			UPDATE mailboxes SET uidnext = uidnext + (SELECT count(*) FROM ins) WHERE id = $1`, trash, moved)
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return err
		}
		// The other views: the messages are only in Trash now. (A \Trash
		// folder renamed to another name than Trash is not left out by
		// the views' rule: they enter them again, this one too.)
		var entering []int64
		if !isTrashFolder(trashName) {
			entering = moved
		}
		return refreshFolderViews(ctx, tx, userID, moved, entering)
	})
	return out, wrap("expunge", err)
}

// SetUserSetting sets a per-user setting, stored in the configuration
// table as key:<user name> (Settings: the keys ending in ":<user>", e.g.
// view_expunge, ViewExpungeTrash or ViewExpungeDelete). An empty value
// removes the setting (the default applies).
func (s *Store) SetUserSetting(ctx context.Context, user, key, value string) error {
	if set, _, err := LookupSetting(key + ":" + user); err != nil || !set.PerUser() || set.Key != key+":<user>" {
		var known []string
		for _, x := range Settings {
			if x.PerUser() {
				known = append(known, strings.TrimSuffix(x.Key, ":<user>"))
			}
		}
		return fmt.Errorf("%w: unknown user setting %q (known: %s)", ErrInvalid, key, strings.Join(known, ", "))
	}
	if _, err := s.UserByName(ctx, user); err != nil {
		return err
	}
	if value == "" {
		_, err := s.pool.Exec(ctx, `DELETE FROM configuration WHERE key = $1`, key+":"+user)
		return wrap("user setting", err)
	}
	_, err := s.SetSetting(ctx, key+":"+user, value)
	return err
}
