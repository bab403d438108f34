package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
)

// FlagOp is how STORE combines flags (RFC 3501 §6.4.6).
type FlagOp int

const (
	FlagsSet FlagOp = iota
	FlagsAdd
	FlagsDel
)

// ParseFlags splits IMAP flag names into system flags and keywords. \Recent
// cannot be stored and is ignored (RFC 3501 §2.3.2). Unknown backslash flags
// are reported as ok=false.
func ParseFlags(names []string) (f Flags, ok bool) {
	ok = true
	seen := map[string]bool{}
	for _, n := range names {
		switch strings.ToLower(n) {
		case `\seen`:
			f.Seen = true
		case `\answered`:
			f.Answered = true
		case `\flagged`:
			f.Flagged = true
		case `\deleted`:
			f.Deleted = true
		case `\draft`:
			f.Draft = true
		case `\recent`:
		default:
			if strings.HasPrefix(n, `\`) {
				ok = false
				continue
			}
			if !seen[strings.ToLower(n)] {
				seen[strings.ToLower(n)] = true
				f.Keywords = append(f.Keywords, n)
			}
		}
	}
	return f, ok
}

// Names renders flags as IMAP flag names, system flags first.
func (f Flags) Names() []string {
	var out []string
	f.EachName(func(name string) { out = append(out, name) })
	return out
}

// EachName calls yield with each of Names in order, without building the
// list (imapd writes one flag list per message of a FETCH or STORE).
func (f Flags) EachName(yield func(string)) {
	for _, x := range [...]struct {
		on   bool
		name string
	}{{f.Answered, `\Answered`}, {f.Flagged, `\Flagged`}, {f.Deleted, `\Deleted`}, {f.Seen, `\Seen`}, {f.Draft, `\Draft`}} {
		if x.on {
			yield(x.name)
		}
	}
	for _, k := range f.Keywords {
		yield(k)
	}
}

func (f Flags) apply(op FlagOp, g Flags) Flags {
	switch op {
	case FlagsSet:
		return Flags{g.Seen, g.Answered, g.Flagged, g.Deleted, g.Draft, append([]string{}, g.Keywords...)}
	case FlagsAdd:
		r := Flags{f.Seen || g.Seen, f.Answered || g.Answered, f.Flagged || g.Flagged, f.Deleted || g.Deleted, f.Draft || g.Draft, append([]string{}, f.Keywords...)}
		for _, k := range g.Keywords {
			if !hasKeyword(r.Keywords, k) {
				r.Keywords = append(r.Keywords, k)
			}
		}
		return r
	default:
		r := Flags{f.Seen && !g.Seen, f.Answered && !g.Answered, f.Flagged && !g.Flagged, f.Deleted && !g.Deleted, f.Draft && !g.Draft, nil}
		for _, k := range f.Keywords {
			if !hasKeyword(g.Keywords, k) {
				r.Keywords = append(r.Keywords, k)
			}
		}
		return r
	}
}

func hasKeyword(ks []string, k string) bool {
	for _, x := range ks {
		if strings.EqualFold(x, k) {
			return true
		}
	}
	return false
}

func (f Flags) equal(g Flags) bool {
	if f.Seen != g.Seen || f.Answered != g.Answered || f.Flagged != g.Flagged || f.Deleted != g.Deleted || f.Draft != g.Draft || len(f.Keywords) != len(g.Keywords) {
		return false
	}
	for _, k := range f.Keywords {
		if !hasKeyword(g.Keywords, k) {
			return false
		}
	}
	return true
}

// FlagChange is a message whose flags a STORE changed (or matched).
type FlagChange struct {
	UID    uint32
	Flags  Flags
	ModSeq int64
}

// StoreFlags changes the flags of the messages with the given UIDs in a
// mailbox and returns every targeted message still present with its flags
// (changed or not, for the FETCH responses of a non-silent STORE). Query
// mailboxes that depend on flags are re-evaluated in the same transaction:
// a message that stops matching leaves, one that starts matching enters with
// a new UID.
func (s *Store) StoreFlags(ctx context.Context, b Box, uids []uint32, op FlagOp, f Flags) ([]FlagChange, error) {
	return s.StoreFlagsHeld(ctx, b, uids, Held{}, op, f)
}

// StoreFlagsHeld is StoreFlags that also changes the messages a session
// holds (Held: they left the mailbox, the session still shows them), found
// by message id and reported at their held UIDs; uids includes those UIDs.
func (s *Store) StoreFlagsHeld(ctx context.Context, b Box, uids []uint32, held Held, op FlagOp, f Flags) ([]FlagChange, error) {
	out, _, err := s.storeFlags(ctx, b, uids, held, op, f, -1)
	return out, err
}

// storeFlags is StoreFlagsHeld that, with unchangedSince >= 0, leaves out
// the messages whose modseq in the mailbox is above it and returns their
// UIDs as modified (CONDSTORE's UNCHANGEDSINCE, condstore.go).
func (s *Store) storeFlags(ctx context.Context, b Box, uids []uint32, held Held, op FlagOp, f Flags,
	unchangedSince int64) (out []FlagChange, modified []uint32, err error) {
	if err := b.check(); err != nil {
		return nil, nil, err
	}
	userID, mailboxID := b.userID, b.id
	err = s.change(ctx, userID, lazy, func(tx pgx.Tx) error {
		out, modified = out[:0], modified[:0]
		cond, args, want := uidCond(uids, 2)
		args = append([]any{mailboxID}, args...)
		heldSQL := ""
		if held.Len() > 0 {
			n := len(args)
			heldSQL = fmt.Sprintf(`
			UNION ALL
			SELECT h.uid, f.message_id, f.seen, f.answered, f.flagged, f.deleted, f.draft, nullif(f.keywords, '{}'), f.modseq
			FROM unnest($%d::bigint[], $%d::bigint[]) AS h(uid, id) JOIN message_flags f ON f.message_id = h.id
			WHERE f.user_id = $%d`, n+1, n+2, n+3)
			args = append(append(args, held.args()...), userID)
		}
		rows, err := tx.Query(ctx, `SELECT mm.uid, f.message_id, f.seen, f.answered, f.flagged, f.deleted, f.draft, nullif(f.keywords, '{}'),
				greatest(mm.modseq, f.modseq)
			FROM mailbox_messages mm JOIN message_flags f ON f.message_id = mm.message_id
			WHERE mm.mailbox_id = $1 AND `+cond+heldSQL+` ORDER BY 1`, args...)
		if err != nil {
			return err
		}
		var changed []int64
		newFlags := map[int64]Flags{}
		which := map[string]bool{}
		var seen, ans, flg, del, dra []bool
		var kws [][]string
		for rows.Next() {
			var c FlagChange
			var id int64
			var uid int64
			var cur Flags
			if err := rows.Scan(&uid, &id, &cur.Seen, &cur.Answered, &cur.Flagged, &cur.Deleted, &cur.Draft, &cur.Keywords, &c.ModSeq); err != nil {
				return err
			}
			c.UID = uint32(uid)
			if want != nil && !want[c.UID] {
				continue
			}
			if unchangedSince >= 0 && c.ModSeq > unchangedSince {
				modified = append(modified, c.UID)
				continue
			}
			c.Flags = cur.apply(op, f)
			if !c.Flags.equal(cur) {
				changed = append(changed, id)
				newFlags[id] = c.Flags
				changedFlags(cur, c.Flags, which)
				seen, ans, flg, del, dra = append(seen, c.Flags.Seen), append(ans, c.Flags.Answered), append(flg, c.Flags.Flagged),
					append(del, c.Flags.Deleted), append(dra, c.Flags.Draft)
				kw := c.Flags.Keywords
				if kw == nil {
					kw = []string{}
				}
				kws = append(kws, kw)
				c.ModSeq = -int64(len(changed)) // patched below
			}
			out = append(out, c)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if len(changed) == 0 {
			return nil
		}
		kwChanged := false
		for k := range which {
			kwChanged = kwChanged || strings.HasPrefix(k, "kw:")
		}
		if kwChanged {
			// A text[][] cannot be unnested row by row, so each message's
			// keywords travel as one JSON array.
			rows, err = tx.Query(ctx, `WITH v AS (
				SELECT * FROM unnest($1::bigint[], $2::bool[], $3::bool[], $4::bool[], $5::bool[], $6::bool[], $7::text[])
					AS v(id, seen, answered, flagged, deleted, draft, kw))
			UPDATE message_flags f SET seen = v.seen, answered = v.answered, flagged = v.flagged, deleted = v.deleted,
				draft = v.draft, keywords = ARRAY(SELECT jsonb_array_elements_text(v.kw::jsonb)), modseq = nextval('modseq_seq')
			FROM v WHERE f.message_id = v.id RETURNING f.message_id, f.modseq`,
				changed, seen, ans, flg, del, dra, jsonArrays(kws))
		} else {
			rows, err = tx.Query(ctx, `WITH v AS (
				SELECT * FROM unnest($1::bigint[], $2::bool[], $3::bool[], $4::bool[], $5::bool[], $6::bool[])
					AS v(id, seen, answered, flagged, deleted, draft))
			UPDATE message_flags f SET seen = v.seen, answered = v.answered, flagged = v.flagged, deleted = v.deleted,
				draft = v.draft, modseq = nextval('modseq_seq')
			FROM v WHERE f.message_id = v.id RETURNING f.message_id, f.modseq`,
				changed, seen, ans, flg, del, dra)
		}
		if err != nil {
			return err
		}
		mods := map[int64]int64{}
		for rows.Next() {
			var id, ms int64
			if err := rows.Scan(&id, &ms); err != nil {
				return err
			}
			mods[id] = ms
		}
		if err := rows.Err(); err != nil {
			return err
		}
		for i := range out {
			if out[i].ModSeq < 0 {
				out[i].ModSeq = mods[changed[-out[i].ModSeq-1]]
			}
		}
		// Sessions of every mailbox showing a changed message find it
		// through the log of flag changes the flags_update trigger writes
		// (ChangesSince, schema 0030); the trigger notifies them.
		return reevalFlagViews(ctx, tx, userID, newFlags, which, nil)
	})
	return out, modified, wrap("store flags", err)
}

// AddRemoveFlags is StoreFlags for the commonest STORE, +FLAGS or -FLAGS
// (a client marking messages read, flagged, deleted, or adding and removing
// keywords), in one UPDATE that touches only the messages whose flags
// change: it returns those alone, ascending by UID (and lo..hi, the modseqs
// it used), not every targeted message; the session has the others' flags.
//
// It commits lazily unless messages enter a view (gate.go). When the new
// value of the flags it sets or clears decides every query mailbox reading
// them (Unread for \Seen, Flagged for \Flagged: the default views; "UNSEEN
// HEADER List-Id x" for ±\Seen, by its candidates: decider), the change is
// one round trip (changeBatch): the UPDATE, the removals from the views the
// changed messages leave and the additions to those they enter, all queued
// at once, checked under the lock against the views it planned with
// (users.views_version). Otherwise the views are re-evaluated from the
// UPDATE's result (reevalFlagViews), in a transaction of a few round trips.
func (s *Store) AddRemoveFlags(ctx context.Context, b Box, uids []uint32, add bool, f Flags) (changed []FlagChange, lo, hi int64, err error) {
	if err := b.check(); err != nil {
		return nil, 0, 0, err
	}
	userID, mailboxID := b.userID, b.id
	f.Keywords = cleanAll(f.Keywords)
	sets := map[string]bool{} // the flags' new value, by flagDeps key
	for _, k := range flagKeys(f) {
		sets[k] = add
	}
	update, args := flagsUpdateSQL(mailboxID, uids, add, f)
	// scan reads the changed rows; the new flags by message id only for
	// the slow path (reevalFlagViews): a map of 70,000 entries per STORE
	// of a 100k mailbox is not made for nothing.
	scan := func(rows pgx.Rows, byID bool) (map[int64]Flags, error) {
		changed, lo, hi = changed[:0], 0, 0
		var newFlags map[int64]Flags
		if byID {
			newFlags = map[int64]Flags{}
		}
		for rows.Next() {
			var c FlagChange
			var uid, id int64
			if err := rows.Scan(&uid, &id, &c.Flags.Seen, &c.Flags.Answered, &c.Flags.Flagged, &c.Flags.Deleted,
				&c.Flags.Draft, &c.Flags.Keywords, &c.ModSeq); err != nil {
				return nil, err
			}
			c.UID = uint32(uid)
			changed = append(changed, c)
			if byID {
				newFlags[id] = c.Flags
			}
			if lo == 0 || c.ModSeq < lo {
				lo = c.ModSeq
			}
			hi = max(hi, c.ModSeq)
		}
		slices.SortFunc(changed, func(a, b FlagChange) int { return cmp.Compare(a.UID, b.UID) })
		return newFlags, rows.Err()
	}
	err = s.changeBatch(ctx, userID, func(b *pgx.Batch, attempt int) (commitMode, error) {
		// A retry (the views changed under us) reads the views again.
		fv, err := s.flagViews(ctx, userID, attempt > 0)
		if err != nil {
			return durable, err
		}
		enter, leave, ok := fv.decide(sets)
		if !ok {
			return durable, errSlowPath
		}
		// Views no session of this process follows wait for their
		// readers when the change is large (pending.go).
		enter, leave, pending := s.splitPending(userID, len(uids), enter, leave)
		if len(uids) >= s.deferFrom() {
			s.committed.skipFeeds(userID) // gate.go
		}
		// The mark, for views left pending (pending.go): the sequence's
		// last value. Every flags row of the user has a modseq up to it
		// (the user's lock), and the UPDATE gives those it changes higher
		// ones (one sequence, without a cache, so its values come in call
		// order).
		b.Queue(`SELECT decimail_check((SELECT views_version FROM users WHERE id = $1) = $2, 'the views changed during the STORE'),
			set_config('decimail.flags_mark', (SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END FROM modseq_seq)::text, true)`,
			userID, fv.version)
		b.Queue(update, args...).Query(func(rows pgx.Rows) error { _, err := scan(rows, false); return err })
		if len(pending) > 0 {
			queuePending(b, pending)
		}
		// The changed messages: every one of them now has the new value,
		// so each such view takes all of them or none (the targeted ones
		// that did not change were already where they belong).
		if len(enter) > 0 {
			queueEnterViews(b, enter, changedSQL(3), []any{userID})
		}
		if len(leave) > 0 {
			// "mailbox_id + 0": probe by message, never views × messages.
			b.Queue(`DELETE FROM mailbox_messages WHERE mailbox_id + 0 = ANY($1) AND message_id IN (`+changedSQL(2)+`)`,
				leave, userID)
		}
		if len(enter) > 0 {
			return durable, nil // gives out UIDs in the views (gate.go)
		}
		return lazy, nil
	})
	if !errors.Is(err, errSlowPath) {
		return changed, lo, hi, wrap("store flags", err)
	}
	err = s.change(ctx, userID, lazy, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, update, args...)
		if err != nil {
			return err
		}
		newFlags, err := scan(rows, true)
		if err != nil || len(changed) == 0 {
			return err
		}
		which := map[string]bool{}
		changedFlags(Flags{}, f, which)
		return reevalFlagViews(ctx, tx, userID, newFlags, which, nil)
	})
	return changed, lo, hi, wrap("store flags", err)
}

// errSlowPath: the views cannot be decided up front (AddRemoveFlags).
var errSlowPath = errors.New("store: the views need the changed messages")

// flagsUpdateSQL is the UPDATE of AddRemoveFlags: every targeted message
// whose flags change gets the flags of f set (add) or cleared, keywords
// compared case-insensitively (RFC 3501 §2.3.2), and a new modseq; it
// returns the changed rows.
func flagsUpdateSQL(mailboxID int64, uids []uint32, add bool, f Flags) (string, []any) {
	cond, cargs, want := uidCond(uids, 9)
	if want != nil { // a range with holes would reach messages outside the set
		cond, cargs = "mm.uid = ANY($9)", []any{toInt64s(uids)}
	}
	kw := f.Keywords
	if kw == nil {
		kw = []string{}
	}
	// $8 are the keywords; "has(x)": a keyword the message has, "missing":
	// one of $8 it lacks.
	const (
		missing = `EXISTS (SELECT 1 FROM unnest($8::text[]) AS k WHERE NOT EXISTS (SELECT 1 FROM unnest(f.keywords) AS x WHERE lower(x) = lower(k)))`
		present = `EXISTS (SELECT 1 FROM unnest(f.keywords) AS x, unnest($8::text[]) AS k WHERE lower(x) = lower(k))`
	)
	return `UPDATE message_flags f SET
			seen = CASE WHEN $3 THEN $2 ELSE f.seen END, answered = CASE WHEN $4 THEN $2 ELSE f.answered END,
			flagged = CASE WHEN $5 THEN $2 ELSE f.flagged END, deleted = CASE WHEN $6 THEN $2 ELSE f.deleted END,
			draft = CASE WHEN $7 THEN $2 ELSE f.draft END,
			keywords = CASE WHEN cardinality($8::text[]) = 0 THEN f.keywords
				WHEN $2 THEN f.keywords || ARRAY(SELECT k FROM unnest($8::text[]) WITH ORDINALITY AS t(k, o)
					WHERE NOT EXISTS (SELECT 1 FROM unnest(f.keywords) AS x WHERE lower(x) = lower(k)) ORDER BY o)
				ELSE ARRAY(SELECT x FROM unnest(f.keywords) WITH ORDINALITY AS t(x, o)
					WHERE NOT EXISTS (SELECT 1 FROM unnest($8::text[]) AS k WHERE lower(k) = lower(x)) ORDER BY o) END,
			modseq = nextval('modseq_seq')
		FROM mailbox_messages mm
		WHERE mm.mailbox_id = $1 AND ` + cond + ` AND f.message_id = mm.message_id
			AND (($3 AND f.seen <> $2) OR ($4 AND f.answered <> $2) OR ($5 AND f.flagged <> $2)
				OR ($6 AND f.deleted <> $2) OR ($7 AND f.draft <> $2)
				OR ($2 AND ` + missing + `) OR (NOT $2 AND ` + present + `))
		RETURNING mm.uid, f.message_id, f.seen, f.answered, f.flagged, f.deleted, f.draft, nullif(f.keywords, '{}'), f.modseq`,
		append([]any{mailboxID, add, f.Seen, f.Answered, f.Flagged, f.Deleted, f.Draft, kw}, cargs...)
}

// changedSQL selects the messages whose flags AddRemoveFlags's UPDATE
// changed: its rows of the log of flag changes, which its trigger wrote and
// named in decimail.flag_log (schema 0030); the user's id is $n.
func changedSQL(n int) string {
	return fmt.Sprintf(`SELECT unnest(c.message_ids) FROM flag_changes c
		WHERE c.ctid = ANY(current_setting('decimail.flag_log')::tid[]) AND c.user_id = $%d`, n)
}

func jsonArrays(kws [][]string) []string {
	out := make([]string, len(kws))
	for i, k := range kws {
		var b strings.Builder
		b.WriteByte('[')
		for j, s := range k {
			if j > 0 {
				b.WriteByte(',')
			}
			b.WriteString(jsonString(s))
		}
		b.WriteByte(']')
		out[i] = b.String()
	}
	return out
}

func jsonString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20:
			b.WriteString(`\u00`)
			b.WriteByte("0123456789abcdef"[r>>4])
			b.WriteByte("0123456789abcdef"[r&15])
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func toInt64s(u []uint32) []int64 {
	out := make([]int64, len(u))
	for i, x := range u {
		out[i] = int64(x)
	}
	return out
}
