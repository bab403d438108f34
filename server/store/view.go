package store

import (
	"context"
	"slices"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"
)

// Snapshot is what SELECT needs: the mailbox's UIDs in order, which of them are
// \Recent for this session, and the modseq cursor the session continues from.
type Snapshot struct {
	Mailbox  Mailbox
	UIDs     []uint32
	IDs      []int64  // IDs[i] is the message UIDs[i] names (its global id)
	Flags    []Flags  // Flags[i] are the flags of UIDs[i]
	Unseen   []uint32 // UIDs without \Seen
	Recent   []uint32 // \Recent for this session (claimed unless read-only)
	Keywords []string // keywords in use in the mailbox
	ModSeq   int64
	// HighestModSeq is the mailbox's HIGHESTMODSEQ (RFC 7162): the highest
	// modseq of its memberships, their flags and its tombstones, as of the
	// snapshot.
	HighestModSeq int64
}

// Select snapshots a mailbox for a session. Unless readOnly, the session
// claims the mailbox's \Recent messages (RFC 3501 §2.3.2: only one session
// sees a message as recent).
//
// The snapshot's slices are shared with the process's snapshot cache
// (snapcache.go): the caller must not modify them.
func (s *Store) Select(ctx context.Context, userID int64, name string, readOnly bool) (*Snapshot, error) {
	key := statusKey{userID, NormName(name)}
	var snap *Snapshot
	var recent []int64 // not yet claimed by any session
	if base := s.snaps.get(key); base != nil {
		var ok bool
		var err error
		if snap, recent, ok, err = s.selectSince(ctx, base); err != nil {
			return nil, err
		} else if !ok {
			snap = nil
		}
	}
	if snap == nil {
		// A view with flag changes to apply is brought up to date first
		// (pending.go).
		if err := s.caughtUp(ctx, userID, func() (pending bool, err error) {
			snap, recent, pending, err = s.selectAll(ctx, userID, name)
			return pending, err
		}); err != nil {
			return nil, err
		}
	}
	snap.derive()
	s.snaps.put(&cachedSnap{key: key, mailboxID: snap.Mailbox.ID, uidValidity: snap.Mailbox.UIDValidity, modseq: snap.ModSeq,
		at: time.Now(), uids: snap.UIDs, ids: snap.IDs, flags: snap.Flags})
	// Claimed after the snapshot, in a transaction of their own: as part of
	// it, a claim waited for other sessions' claims and changes of the same
	// rows, and made the snapshot start over (REPEATABLE READ).
	if readOnly {
		for _, u := range recent {
			snap.Recent = append(snap.Recent, uint32(u))
		}
	} else if len(recent) > 0 {
		claimed, err := s.claimRecent(ctx, snap.Mailbox.ID, snap.Mailbox.UIDValidity, recent)
		if err != nil {
			return nil, err
		}
		for _, u := range recent {
			if claimed[uint32(u)] {
				snap.Recent = append(snap.Recent, uint32(u))
			}
		}
	}
	return snap, nil
}

// selectAll reads the whole snapshot of a mailbox: its members, their
// flags and its unclaimed \Recent members; pending: it is a view with
// flag changes to apply (pending.go), and the snapshot is not to be used.
func (s *Store) selectAll(ctx context.Context, userID int64, name string) (snap *Snapshot, recent []int64, pending bool, err error) {
	snap = &Snapshot{}
	// One round trip: BEGIN, the three reads, COMMIT (a read-only
	// REPEATABLE READ transaction: one snapshot, which nothing can make
	// fail). The reads after the first find the mailbox by name as well.
	const mb = `(SELECT id FROM mailboxes WHERE user_id = $1 AND name = $2)`
	args := []any{userID, NormName(name)}
	found := false
	b := &pgx.Batch{}
	b.Queue(`BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY`)
	b.Queue(`SELECT `+mailboxCols+` FROM mailboxes WHERE user_id = $1 AND name = $2`, args...).Query(func(rows pgx.Rows) error {
		if !rows.Next() {
			return rows.Err()
		}
		var err error
		snap.Mailbox, err = scanMailbox(rows)
		found = err == nil
		rows.Close()
		return err
	})
	b.Queue(`SELECT highest_modseq, flags_pending IS NOT NULL FROM mailboxes WHERE user_id = $1 AND name = $2`, args...).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			if err := rows.Scan(&snap.HighestModSeq, &pending); err != nil {
				return err
			}
		}
		return rows.Err()
	})
	// Every member with its flags (the session keeps them: FETCH FLAGS
	// is answered from memory); keywords are NULL when empty, which
	// decodes without allocating.
	var flagsMS int64 // the members' highest flags modseq, for the cursor
	b.Queue(`SELECT mm.uid, mm.message_id, mm.recent, f.seen, f.answered, f.flagged, f.deleted, f.draft, nullif(f.keywords, '{}'), f.modseq
		FROM mailbox_messages mm JOIN message_flags f ON f.message_id = mm.message_id
		WHERE mm.mailbox_id = `+mb+` ORDER BY mm.uid`, args...).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var uid, id, ms int64
			var isRecent bool
			var f Flags
			if err := rows.Scan(&uid, &id, &isRecent, &f.Seen, &f.Answered, &f.Flagged, &f.Deleted, &f.Draft, &f.Keywords, &ms); err != nil {
				return err
			}
			flagsMS = max(flagsMS, ms)
			snap.UIDs = append(snap.UIDs, uint32(uid))
			snap.IDs = append(snap.IDs, id)
			snap.Flags = append(snap.Flags, f)
			if isRecent {
				recent = append(recent, uid)
			}
		}
		return rows.Err()
	})
	// The cursor: every change of this mailbox so far, flag changes included
	// (the members' flags, above, and the log of flag changes: schema 0030),
	// and pruned tombstones.
	b.Queue(`SELECT greatest(
			(SELECT coalesce(max(modseq), 0) FROM mailbox_messages WHERE mailbox_id = `+mb+`),
			(SELECT coalesce(max(modseq), 0) FROM mailbox_expunges WHERE mailbox_id = `+mb+`),
			(SELECT expunges_pruned FROM mailboxes WHERE id = `+mb+`),
			(SELECT coalesce(max(modseq), 0) FROM flag_changes WHERE user_id = $1),
			(SELECT flag_changes_pruned FROM users WHERE id = $1))`, args...).QueryRow(func(r pgx.Row) error {
		return r.Scan(&snap.ModSeq)
	})
	b.Queue(`COMMIT`)
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return nil, nil, false, err
	}
	if !found {
		return nil, nil, false, ErrNotFound
	}
	snap.ModSeq = max(snap.ModSeq, flagsMS)
	return snap, recent, pending, nil
}

// Change is a message added or changed since a cursor.
type Change struct {
	UID       uint32
	MessageID int64 // the message the UID names
	Flags     Flags
	ModSeq    int64
	Recent    bool // claimed as \Recent by this session
}

// Held are messages a session still shows at UIDs of a mailbox they have
// left (a view the session's own STORE took them out of, or an expunge not
// yet announced): UIDs[i] named message IDs[i]. Reads and changes by UID
// reach them through their message id, as their membership row is gone.
type Held struct {
	UIDs []uint32
	IDs  []int64
}

// Len is the number of held messages.
func (h Held) Len() int { return len(h.UIDs) }

func (h Held) args() []any { return []any{toInt64s(h.UIDs), h.IDs} }

// Changes is what happened in a mailbox after a modseq cursor.
type Changes struct {
	UIDValidity uint32
	Changed     []Change // new or changed memberships, by UID
	Expunged    []uint32 // removed UIDs, ascending
	ExpungedAt  []int64  // ExpungedAt[i]: the modseq of Expunged[i]'s tombstone
	ModSeq      int64    // the new cursor
	// Pruned: tombstones after the cursor were pruned (expunge_horizon,
	// PruneExpunges), so Expunged may lack removals: the session cannot
	// follow the mailbox any more and must select it again.
	Pruned bool
	// pending: the mailbox is a view with flag changes not applied yet
	// (pending.go); the read is not to be used.
	pending bool
}

// sortExpunged sorts ch's expunged UIDs with their modseqs.
func sortExpunged(ch *Changes) { sort.Sort(byUID{ch.Expunged, ch.ExpungedAt}) }

// byUID sorts expunged UIDs with their modseqs.
type byUID struct {
	uids []uint32
	ms   []int64
}

func (b byUID) Len() int           { return len(b.uids) }
func (b byUID) Less(i, j int) bool { return b.uids[i] < b.uids[j] }
func (b byUID) Swap(i, j int) {
	b.uids[i], b.uids[j] = b.uids[j], b.uids[i]
	b.ms[i], b.ms[j] = b.ms[j], b.ms[i]
}

// ChangesSince reads everything that changed in a mailbox after modseq since,
// in ONE statement (one snapshot, one round trip: it runs at every poll).
// claimRecent claims new \Recent messages for this (read-write) session.
// A deleted mailbox gives ErrNotFound.
func (s *Store) ChangesSince(ctx context.Context, b Box, since int64, claimRecent bool) (*Changes, error) {
	return s.ChangesSinceExcept(ctx, b, since, claimRecent, 0, -1)
}

// ChangesSinceExcept is ChangesSince leaving out the flag changes with
// modseqs in [lo, hi]: a session's own STORE, whose results it already has
// (AddRemoveFlags). Under the user's lock nobody else took a modseq of
// this user in that range, so the new cursor is at least hi.
func (s *Store) ChangesSinceExcept(ctx context.Context, b Box, since int64, claimRecent bool, lo, hi int64) (*Changes, error) {
	return s.ChangesSinceHeld(ctx, b, since, claimRecent, lo, hi, Held{})
}

// ChangesSinceHeld is ChangesSinceExcept that also reports the flag changes
// (after since, outside lo..hi) of the messages a session holds (Held), at
// their held UIDs: their membership rows are gone, so the mailbox's own
// rows never show them; the session keeps their flags current with these.
func (s *Store) ChangesSinceHeld(ctx context.Context, box Box, since int64, claimRecent bool, lo, hi int64, held Held) (*Changes, error) {
	return s.changesSince(ctx, box, since, claimRecent, lo, hi, held, true)
}

// ChangesSinceFresh is ChangesSince read from the store itself, never from
// the process's record of the mailbox (sharedpoll.go): for a command that
// puts the answer beside a read of its own, as QRESYNC's resync beside
// SELECT's snapshot. The record is current with every change signalled to
// the process, but another process's change reaches it only with its
// NOTIFY, a moment after that change's COMMIT, which a read already sees:
// the snapshot's HIGHESTMODSEQ could then cover a change the record's
// answer lacks, and the client would never hear of it.
func (s *Store) ChangesSinceFresh(ctx context.Context, box Box, since int64) (*Changes, error) {
	return s.changesSince(ctx, box, since, false, 0, -1, Held{}, false)
}

func (s *Store) changesSince(ctx context.Context, box Box, since int64, claimRecent bool, lo, hi int64, held Held, shared bool) (*Changes, error) {
	if err := box.check(); err != nil {
		return nil, err
	}
	mailboxID := box.id
	// A read only: with 50 sessions of one account, each polling after
	// every command, the claim as part of this statement (an UPDATE and
	// its trigger every time, waiting for the row locks of whichever change
	// was committing) was the most frequent write of all. It runs apart,
	// and only when there are \Recent messages to claim.
	//
	// One generic plan for every call (plan_cache_mode, local to the
	// batch's implicit transaction): Postgres planned each call afresh,
	// 0.83 ms of planning for 0.26 ms of execution, as the cost of a generic
	// plan for "modseq > $2" looked high; the LATERAL probes keep that plan
	// to index ranges and probes however many rows it expects.
	if shared && (held.Len() == 0 || s.deleted.all(held.IDs)) { // sharedpoll.go
		if ch, fresh := s.sharedChanges(box, since, lo, hi); ch != nil {
			s.polls.hits.Add(1)
			return s.claimChanged(ctx, mailboxID, ch, claimRecent, fresh)
		}
	}
	var r *sharedPoll
	var found bool
	// A view with flag changes to apply is brought up to date first
	// (pending.go).
	if err := s.caughtUp(ctx, box.userID, func() (bool, error) {
		s.polls.reads.Add(1)
		gen := s.notif.Gen() // before the read (Notifier.Fresh)
		b := &pgx.Batch{}
		b.Queue(`SELECT set_config('plan_cache_mode', 'force_generic_plan', true)`)
		r = &sharedPoll{since: since, gen: gen, ch: Changes{ModSeq: max(since, hi)}}
		queueChanges(b, mailboxID, since, lo, hi, held, &r.ch, &r.mm, &found, &r.fresh)
		if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
			return false, wrap("changes", err)
		}
		return r.ch.pending, nil
	}); err != nil {
		return nil, err
	}
	if !found {
		return nil, ErrNotFound
	}
	r.finish()
	ch := r.ch
	if held.Len() == 0 && lo > hi && !ch.Pruned {
		s.polls.put(mailboxID, r) // not changed below: Changed is copied
		ch.Changed = slices.Clone(ch.Changed)
	}
	return s.claimChanged(ctx, mailboxID, &ch, claimRecent, r.fresh)
}

// claimChanged claims the unclaimed \Recent members among ch's changes,
// fresh, for a read-write session, and marks those it claimed.
func (s *Store) claimChanged(ctx context.Context, mailboxID int64, ch *Changes, claimRecent bool, fresh []int64) (*Changes, error) {
	if claimRecent && len(fresh) > 0 {
		claimed, err := s.claimRecent(ctx, mailboxID, ch.UIDValidity, fresh)
		if err != nil {
			return nil, wrap("changes", err)
		}
		for i := range ch.Changed {
			ch.Changed[i].Recent = claimed[ch.Changed[i].UID]
		}
	}
	return ch, nil
}

// claimRecent claims those of uids still \Recent for this session (RFC 3501
// §2.3.2: one session sees a message as recent) and returns them. Rows
// another session is claiming are skipped, not waited for (SKIP LOCKED:
// 50 sessions polling after one APPEND otherwise queued up behind the
// first, and claims of overlapping sets in different orders deadlocked);
// a claim that fails as a deadlock or serialization failure claims nothing.
// A claim commits lazily (gate.go): losing one in a crash only shows a
// message as recent again. The batch is one implicit transaction (one
// Sync), so the setting covers its COMMIT, in the same round trip.
//
// A UID some session of this process is claiming or has claimed is not
// tried again (claimSet.reserve): with 50 sessions of one account each new
// message was claimed 1.7 times on average, in vain but each claim an
// UPDATE and its trigger's, by sessions whose polls had seen it before the
// first claim committed (a third of Postgres's time in the many-sessions
// line).
func (s *Store) claimRecent(ctx context.Context, mailboxID int64, uidValidity uint32, uids []int64) (map[uint32]bool, error) {
	claimed := map[uint32]bool{}
	if uids = s.claims.reserve(mailboxID, uidValidity, uids); len(uids) == 0 {
		return claimed, nil
	}
	b := &pgx.Batch{}
	// The claim's NOTIFY names this process (schema 0024): its sessions
	// need no signal (a claim changes nothing they show; mark, below, tells
	// the STATUS cache), other processes' do.
	b.Queue(`SELECT set_config('synchronous_commit', 'off', true), set_config('plan_cache_mode', 'force_generic_plan', true),
		set_config('decimail.origin', $1, true)`, s.notif.origin)
	b.Queue(`UPDATE mailbox_messages m SET recent = false
		FROM (SELECT uid FROM mailbox_messages WHERE mailbox_id = $1 AND uid = ANY($2) AND recent
			ORDER BY uid FOR UPDATE SKIP LOCKED) c
		WHERE m.mailbox_id = $1 AND m.uid = c.uid RETURNING m.uid`,
		mailboxID, uids).Query(func(rows pgx.Rows) error {
		var u int64
		_, err := pgx.ForEachRow(rows, []any{&u}, func() error { claimed[uint32(u)] = true; return nil })
		return err
	})
	err := s.pool.SendBatch(ctx, b).Close()
	if err != nil {
		s.claims.release(mailboxID, uidValidity, uids)
	}
	if isRetryable(err) {
		return map[uint32]bool{}, nil
	}
	if len(claimed) > 0 {
		s.notif.mark(mailboxID) // RECENT changed (statuscache.go)
	}
	return claimed, err
}

// flagsSinceSQL selects the flags rows of user u (an SQL expression) with
// a modseq above since (one): through the log of flag changes (schema 0030)
// when it reaches back that far, else by scanning the user's rows. The
// branch not taken is cut by its one-time condition. The logged messages
// are probed one by one (OFFSET 0): a generic plan hashed them against a
// scan of every flags row (1 ms per poll on 10,000 messages, more with
// every other account's rows). A logged statement whose modseqs all lie in
// lo..hi (a session's own change, which it leaves out anyway: "0" and "-1"
// for none) is passed over without probing its messages: the poll after a
// STORE of 3,057 messages read them all only to drop them.
func flagsSinceSQL(u, since, lo, hi string) string {
	pruned := `(SELECT flag_changes_pruned FROM users WHERE id = ` + u + `)`
	return `(SELECT f.* FROM (SELECT DISTINCT unnest(c.message_ids) AS id FROM flag_changes c
				WHERE c.user_id = ` + u + ` AND c.modseq > ` + since + ` AND ` + since + ` >= ` + pruned + `
					AND NOT (c.lo >= ` + lo + ` AND c.modseq <= ` + hi + `)) c,
			LATERAL (SELECT * FROM message_flags f WHERE f.message_id = c.id OFFSET 0) f
			WHERE f.modseq > ` + since + `
		UNION ALL
		SELECT f.* FROM message_flags f WHERE f.user_id = ` + u + ` AND f.modseq > ` + since + ` AND ` + since + ` < ` + pruned + `)`
}

// queueChanges queues the one statement of ChangesSinceHeld on b: it fills
// ch (Changed and Expunged unsorted; ModSeq raised to what it read), sets
// found when the mailbox exists and lists in fresh the unclaimed \Recent
// members among the changes; mm, if not nil, gets each changed row's
// membership modseq (sharedpoll.go).
func queueChanges(b *pgx.Batch, mailboxID, since, lo, hi int64, held Held, ch *Changes, mm *[]int64, found *bool, fresh *[]int64) {
	// Memberships newer than since, then flag changes (not the session's
	// own) of older memberships: no row twice, so no UNION's dedup, and no
	// ORDER BY (sorted here): a third less work per call.
	heldSQL, args := "", []any{mailboxID, since, lo, hi}
	if held.Len() > 0 {
		heldSQL = `
		UNION ALL
		SELECT 1, h.uid, f.modseq, f.seen, f.answered, f.flagged, f.deleted, f.draft, nullif(f.keywords, '{}'), false, f.message_id, 0
			FROM unnest($5::bigint[], $6::bigint[]) AS h(uid, id), LATERAL (SELECT * FROM message_flags f
				WHERE f.message_id = h.id OFFSET 0) f
			WHERE f.modseq > $2 AND NOT f.modseq BETWEEN $3 AND $4`
		args = append(args, held.args()...)
	}
	b.Queue(`SELECT 0 AS kind, uidvalidity AS uid, expunges_pruned, flags_pending IS NOT NULL, false, false, false, false, '{}'::text[], false, 0::bigint,
				0::bigint
			FROM mailboxes WHERE id = $1
		UNION ALL
		SELECT 1, mm.uid, greatest(mm.modseq, f.modseq), f.seen, f.answered, f.flagged, f.deleted, f.draft,
				nullif(f.keywords, '{}'), mm.recent, mm.message_id, mm.modseq
			FROM mailbox_messages mm, LATERAL (SELECT * FROM message_flags f WHERE f.message_id = mm.message_id OFFSET 0) f
			WHERE mm.mailbox_id = $1 AND mm.modseq > $2
		UNION ALL
		SELECT 1, mm.uid, greatest(mm.modseq, f.modseq), f.seen, f.answered, f.flagged, f.deleted, f.draft,
				nullif(f.keywords, '{}'), false, mm.message_id, mm.modseq
			FROM `+flagsSinceSQL("(SELECT user_id FROM mailboxes WHERE id = $1)", "$2", "$3", "$4")+` f, LATERAL (SELECT * FROM mailbox_messages mm
				WHERE mm.message_id = f.message_id AND mm.mailbox_id = $1 AND mm.modseq <= $2 OFFSET 0) mm
			WHERE NOT f.modseq BETWEEN $3 AND $4
		UNION ALL
		SELECT 2, u.uid, e.modseq, false, false, false, false, false, '{}'::text[], false, 0::bigint, 0::bigint
			FROM mailbox_expunges e, unnest(e.uids) AS u(uid) WHERE e.mailbox_id = $1 AND e.modseq > $2`+heldSQL,
		args...).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var kind int32
			var uid, ms, memberMS int64
			var c Change
			var isFresh bool
			if err := rows.Scan(&kind, &uid, &ms, &c.Flags.Seen, &c.Flags.Answered, &c.Flags.Flagged, &c.Flags.Deleted,
				&c.Flags.Draft, &c.Flags.Keywords, &isFresh, &c.MessageID, &memberMS); err != nil {
				return err
			}
			switch kind {
			case 0:
				*found, ch.UIDValidity, ch.Pruned, ch.pending = true, uint32(uid), ms > since, c.Flags.Seen
				continue
			case 1:
				c.UID, c.ModSeq = uint32(uid), ms
				ch.Changed = append(ch.Changed, c)
				if mm != nil {
					*mm = append(*mm, memberMS)
				}
				if isFresh {
					*fresh = append(*fresh, uid)
				}
			case 2:
				ch.Expunged = append(ch.Expunged, uint32(uid))
				ch.ExpungedAt = append(ch.ExpungedAt, ms)
			}
			ch.ModSeq = max(ch.ModSeq, ms)
		}
		return rows.Err()
	})
}
