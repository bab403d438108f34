package store

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Views left to their readers (issue 15, schema 0029).
//
// A flag change on many messages (a client's "mark all read" is `UID STORE
// 1:* +FLAGS (\Seen)`) moved each of them into or out of every query
// mailbox its flags decide (Unread, "UNSEEN HEADER List-Id x", ...): for
// −FLAGS on the benchmark's 10,000 messages, 16,124 membership rows with
// four index entries and a modseq each, three times Dovecot's whole
// command, which only rewrites its index records (bench/ANALYSIS.md).
//
// Such a change now updates the flags and marks the views it would have
// moved messages in, unless a session of this process follows them
// (Notifier.follows: its change feed and its own view stay exact as
// before): mailboxes.flags_pending holds a mark above every earlier flag
// change of the user and below the change's own modseqs (the modseq
// sequence's last value before it). Whoever reads such a view brings it up
// to date first, under the user's lock (catchUp): a session's poll and
// snapshot, STATUS and LIST-STATUS, HIGHESTMODSEQ, QRESYNC's tombstones.
// A reader never sees a pending view: a change's feed for a pending view
// is not published (touchFeeds), so its sessions read the store and catch
// up. What a view
// shows is what it would show had the change moved the messages itself,
// with the UIDs given out when they are read rather than when the flags
// changed: ascending, and never reused. Dovecot's virtual mailboxes are
// brought up to date the same way, when they are opened or synced.
//
// A message that leaves and comes back (+FLAGS then −FLAGS) before anyone
// reads the view was never seen leaving, and keeps its UID.

// deferViewsFrom is the smallest change (in targeted UIDs) that leaves
// views pending. Smaller ones move their messages at once: the cost is a
// few rows, and readers of the views then never write.
const deferViewsFrom = 1000

// deferFrom is the smallest change that leaves views pending (tests lower
// it, export_test.go).
func (s *Store) deferFrom() int {
	if n := s.deferViews.Load(); n > 0 {
		return int(n)
	}
	return deferViewsFrom
}

// splitPending takes out of enter and leave the views no session of this
// process follows, when the change targets enough messages to defer them.
func (s *Store) splitPending(userID int64, targeted int, enter []viewRef, leave []int64) ([]viewRef, []int64, []int64) {
	if targeted < s.deferFrom() || len(enter)+len(leave) == 0 {
		return enter, leave, nil
	}
	followed := s.notif.follows(userID)
	var pending []int64
	enter = slices.DeleteFunc(slices.Clone(enter), func(v viewRef) bool {
		if followed[v.id] {
			return false
		}
		pending = append(pending, v.id)
		return true
	})
	leave = slices.DeleteFunc(slices.Clone(leave), func(id int64) bool {
		if followed[id] {
			return false
		}
		pending = append(pending, id)
		return true
	})
	return enter, leave, pending
}

// queuePending marks views pending from the mark AddRemoveFlags set
// (decimail.flags_mark), keeping an older mark, and notifies them: their
// sessions in other processes read them, and so catch them up.
func queuePending(b *pgx.Batch, ids []int64) {
	b.Queue(`WITH p AS (UPDATE mailboxes SET flags_pending = coalesce(flags_pending, current_setting('decimail.flags_mark')::bigint)
			WHERE id = ANY($1) RETURNING id)
		SELECT count(decimail_notify(id)) FROM p`, ids)
}

// caughtUp runs read until it reports no pending view, bringing the
// user's views up to date (catchUp) after each read that found one.
// Another large change may leave a view pending again between the two;
// after a few rounds it gives up rather than answer from a pending view.
func (s *Store) caughtUp(ctx context.Context, userID int64, read func() (pending bool, err error)) error {
	for try := 0; ; try++ {
		pending, err := read()
		if err != nil || !pending {
			return err
		}
		if try == 4 {
			return errStillPending
		}
		if err := s.catchUp(ctx, userID); err != nil {
			return err
		}
	}
}

// errStillPending: views were left pending again every time they were
// brought up to date (caughtUp).
var errStillPending = errors.New("store: query mailboxes kept changing while being read; try again")

// catchUp applies to every pending view of the user the flag changes not
// applied yet: each message whose flags changed after the view's mark
// enters or leaves it as its definition says now (reevalFlagViews). It
// commits durably: entering gives out UIDs.
func (s *Store) catchUp(ctx context.Context, userID int64) error {
	s.catchUps.Add(1)
	return wrap("catch up views", s.change(ctx, userID, durable, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT id, flags_pending FROM mailboxes WHERE user_id = $1 AND flags_pending IS NOT NULL`, userID)
		if err != nil {
			return err
		}
		only := map[int64]bool{}
		var ids []int64
		mark := int64(-1)
		var id, m int64
		if _, err := pgx.ForEachRow(rows, []any{&id, &m}, func() error {
			only[id] = true
			ids = append(ids, id)
			if mark < 0 || m < mark {
				mark = m
			}
			return nil
		}); err != nil || len(ids) == 0 {
			return err
		}
		rows, err = tx.Query(ctx, `SELECT message_id, seen, answered, flagged, deleted, draft, nullif(keywords, '{}')
			FROM `+flagsSinceSQL("$1::bigint", "$2::bigint", "0", "-1")+` f`, userID, mark)
		if err != nil {
			return err
		}
		newFlags := map[int64]Flags{}
		var f Flags
		if _, err := pgx.ForEachRow(rows, []any{&id, &f.Seen, &f.Answered, &f.Flagged, &f.Deleted, &f.Draft, &f.Keywords}, func() error {
			newFlags[id] = f
			f = Flags{}
			return nil
		}); err != nil {
			return err
		}
		if len(newFlags) > 0 {
			rest, err := catchUpByFlags(ctx, tx, ids, newFlags)
			if err != nil {
				return err
			}
			if len(rest) > 0 {
				if err := reevalFlagViews(ctx, tx, userID, newFlags, nil, rest); err != nil {
					return err
				}
			}
		}
		_, err = tx.Exec(ctx, `UPDATE mailboxes SET flags_pending = NULL WHERE id = ANY($1)`, ids)
		return err
	}))
}

// catchUpByFlags brings up to date the views among ids whose flags part
// decides every changed message (Unread, "UNSEEN HEADER List-Id x", ...:
// the common case), as AddRemoveFlags would have: views that take the same
// messages share one statement that adds those not members yet (their
// candidates, kept ones) and one that removes the others; no membership is
// read first. It returns the views it left to reevalFlagViews.
func catchUpByFlags(ctx context.Context, tx pgx.Tx, ids []int64, newFlags map[int64]Flags) (map[int64]bool, error) {
	rows, err := tx.Query(ctx, `SELECT id, definition FROM mailboxes WHERE id = ANY($1) AND uses_flags ORDER BY id`, ids)
	if err != nil {
		return nil, err
	}
	views, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (flagView, error) {
		var v flagView
		return v, r.Scan(&v.id, &v.def)
	})
	if err != nil {
		return nil, err
	}
	msgs := slices.Sorted(maps.Keys(newFlags))
	type group struct {
		views        []viewRef
		enter, leave []int64
	}
	groups := map[string]*group{}
	var order []string
	rest := map[int64]bool{}
	for _, v := range views {
		n, err := parseDefinition(v.def)
		if err != nil {
			return nil, fmt.Errorf("mailbox %d definition %q: %w", v.id, v.def, err)
		}
		d, cand := decider(n)
		var enter, leave []int64
		var key strings.Builder
		known := true
		for _, id := range msgs {
			match, k := evalFlags(d, newFlags[id])
			if !k {
				known = false
				break
			}
			if match {
				enter = append(enter, id)
				key.WriteByte('1')
			} else {
				leave = append(leave, id)
				key.WriteByte('0')
			}
		}
		if !known {
			rest[v.id] = true
			continue
		}
		g := groups[key.String()]
		if g == nil {
			g = &group{enter: enter, leave: leave}
			groups[key.String()] = g
			order = append(order, key.String())
		}
		g.views = append(g.views, viewRef{v.id, cand})
	}
	b := &pgx.Batch{}
	added := false
	for _, k := range order {
		g := groups[k]
		if len(g.enter) > 0 {
			queueEnterViews(b, g.views, `SELECT unnest($3::bigint[])`, []any{g.enter})
			added = true
		}
		if len(g.leave) > 0 {
			vids := make([]int64, len(g.views))
			for i, v := range g.views {
				vids[i] = v.id
			}
			// "mailbox_id + 0": probe by message, never views × messages.
			b.Queue(`DELETE FROM mailbox_messages WHERE message_id = ANY($1) AND mailbox_id + 0 = ANY($2)`, g.leave, vids)
		}
	}
	if added {
		b.Queue(durableNow) // UIDs given out are on disk at COMMIT (gate.go)
	}
	if b.Len() == 0 {
		return rest, nil
	}
	return rest, tx.SendBatch(ctx, b).Close()
}
