package store

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"decimail/server/query"
)

// flagDeps returns the flags a definition reads ("seen", ..., "kw:<lower>").
func flagDeps(n query.Node) map[string]bool {
	deps := map[string]bool{}
	var walk func(query.Node)
	walk = func(n query.Node) {
		switch n := n.(type) {
		case query.Flag, query.Keyword:
			k, _ := leafKey(n)
			deps[k] = true
		case query.Not:
			walk(n.X)
		case query.Or:
			walk(n.A)
			walk(n.B)
		case query.And:
			for _, x := range n {
				walk(x)
			}
		}
	}
	walk(n)
	return deps
}

// leafKey is the flag a Flag or Keyword node tests, as flagDeps names it,
// and whether it wants it set. KEYWORD \Seen is \Seen; KEYWORD Seen (no
// backslash) is a keyword, as query.Eval and the compiled SQL have it.
func leafKey(n query.Node) (string, bool) {
	switch n := n.(type) {
	case query.Flag:
		return strings.ToLower(n.Key), n.Set
	case query.Keyword:
		if f := strings.ToLower(strings.TrimPrefix(n.Flag, `\`)); strings.HasPrefix(n.Flag, `\`) && systemFlag(f) {
			return f, n.Set
		}
		return "kw:" + strings.ToLower(n.Flag), n.Set
	}
	return "", false
}

// flagKeys names the flags f holds (system flags and keywords) as flagDeps
// does.
func flagKeys(f Flags) []string {
	var out []string
	for _, x := range []struct {
		on   bool
		name string
	}{{f.Seen, "seen"}, {f.Answered, "answered"}, {f.Flagged, "flagged"}, {f.Deleted, "deleted"}, {f.Draft, "draft"}} {
		if x.on {
			out = append(out, x.name)
		}
	}
	for _, k := range f.Keywords {
		out = append(out, "kw:"+strings.ToLower(k))
	}
	return out
}

// evalOnly evaluates a definition knowing only some flags' values (vals, by
// flagDeps key): known is false when the result depends on anything else.
func evalOnly(n query.Node, vals map[string]bool) (v, known bool) {
	return eval3(n, func(l query.Node) (bool, bool) {
		k, set := leafKey(l)
		has, ok := vals[k]
		return ok && has == set, ok
	})
}

// eval3 evaluates a definition three-valued: leaf gives the value of a flag
// or keyword term (or that it is unknown); every other term is unknown, and
// NOT, OR and AND decide what they can without it.
func eval3(n query.Node, leaf func(query.Node) (v, known bool)) (v, known bool) {
	switch n := n.(type) {
	case query.All:
		return true, true
	case query.Flag, query.Keyword:
		return leaf(n)
	case query.Not:
		v, known := eval3(n.X, leaf)
		return !v, known
	case query.Or:
		a, ka := eval3(n.A, leaf)
		b, kb := eval3(n.B, leaf)
		if (ka && a) || (kb && b) {
			return true, true
		}
		return false, ka && kb
	case query.And:
		all := true
		for _, x := range n {
			v, known := eval3(x, leaf)
			if known && !v {
				return false, true
			}
			all = all && known
		}
		return true, all
	}
	return false, false
}

// userFlagViews are a user's query mailboxes that read flags, as of
// users.views_version (Store.flagViews).
type userFlagViews struct {
	version int64
	views   []flagViewDeps
}

type flagViewDeps struct {
	viewRef
	n    query.Node // what decides it on a flag change (decider)
	deps map[string]bool
}

// viewRef is a view a message may enter; cand: it takes only its
// candidates (view_candidates).
type viewRef struct {
	id   int64
	cand bool
}

// decider is what decides a view on a flag change: the flags part of its
// definition when the rest is kept as candidates (query.SplitFlags: a
// message enters "UNSEEN HEADER List-Id x" on -\Seen if it is a candidate,
// with no header read), else the whole definition.
func decider(n query.Node) (query.Node, bool) {
	if fl, _, ok := query.SplitFlags(n); ok {
		return fl, true
	}
	return n, false
}

// flagViews returns the user's flag-reading views, cached per process by
// views_version; a change that plans with them checks the version under
// the user's lock (AddRemoveFlags). refresh reads them again.
func (s *Store) flagViews(ctx context.Context, userID int64, refresh bool) (*userFlagViews, error) {
	if v, ok := s.flagViewsCache.Load(userID); ok && !refresh {
		return v.(*userFlagViews), nil
	}
	rows, err := s.pool.Query(ctx, `SELECT u.views_version, b.id, b.definition FROM users u
		LEFT JOIN mailboxes b ON b.user_id = u.id AND b.uses_flags WHERE u.id = $1 ORDER BY b.id`, userID)
	if err != nil {
		return nil, err
	}
	fv := &userFlagViews{version: -1}
	var id *int64
	var def *string
	_, err = pgx.ForEachRow(rows, []any{&fv.version, &id, &def}, func() error {
		if id == nil {
			return nil
		}
		n, err := parseDefinition(*def)
		if err != nil {
			return fmt.Errorf("mailbox %d definition %q: %w", *id, *def, err)
		}
		d, cand := decider(n)
		fv.views = append(fv.views, flagViewDeps{viewRef{*id, cand}, d, flagDeps(n)})
		return nil
	})
	if err != nil {
		return nil, err
	}
	if fv.version < 0 {
		return nil, ErrNoUser
	}
	s.flagViewsCache.Store(userID, fv)
	return fv, nil
}

// decide returns the views a message enters and leaves when the flags in
// sets take those values, whatever its other flags and contents; ok is
// false when a view reading one of them needs more to decide.
func (fv *userFlagViews) decide(sets map[string]bool) (enter []viewRef, leave []int64, ok bool) {
	for _, v := range fv.views {
		reads := false
		for k := range sets {
			reads = reads || v.deps[k]
		}
		if !reads {
			continue
		}
		match, known := evalOnly(v.n, sets)
		switch {
		case !known:
			return nil, nil, false
		case match:
			enter = append(enter, v.viewRef)
		default:
			leave = append(leave, v.id)
		}
	}
	return enter, leave, true
}

func systemFlag(f string) bool {
	switch f {
	case "seen", "answered", "flagged", "deleted", "draft":
		return true
	}
	return false
}

// changedFlags names the flags that differ between a and b.
func changedFlags(a, b Flags, into map[string]bool) {
	for _, x := range []struct {
		name string
		a, b bool
	}{{"seen", a.Seen, b.Seen}, {"answered", a.Answered, b.Answered}, {"flagged", a.Flagged, b.Flagged},
		{"deleted", a.Deleted, b.Deleted}, {"draft", a.Draft, b.Draft}} {
		if x.a != x.b {
			into[x.name] = true
		}
	}
	for _, k := range a.Keywords {
		if !hasKeyword(b.Keywords, k) {
			into["kw:"+strings.ToLower(k)] = true
		}
	}
	for _, k := range b.Keywords {
		if !hasKeyword(a.Keywords, k) {
			into["kw:"+strings.ToLower(k)] = true
		}
	}
}

// evalFlags evaluates a definition knowing only a message's flags: known is
// false when the result depends on something else (text, dates, size).
func evalFlags(n query.Node, f Flags) (v, known bool) {
	m := &query.Msg{Seen: f.Seen, Answered: f.Answered, Flagged: f.Flagged, Deleted: f.Deleted, Draft: f.Draft, Keywords: f.Keywords}
	return eval3(n, func(l query.Node) (bool, bool) { return query.Eval(l, m, 0, 0), true })
}

// reevalFlagViews brings the query mailboxes that depend on the changed flags
// up to date for the changed messages: a message that stops matching leaves,
// one that starts matching enters with a new UID. Views whose definition reads
// only flags are decided in Go from the new flags, and so are messages whose
// flags alone decide a mixed definition; the rest by the view's SQL
// predicate, restricted to those messages. Views that do not read any
// changed flag are skipped. All statements go in one batch.
//
// only, when not nil, names the views to bring up to date instead of those
// reading a changed flag (catchUp: views left pending by earlier changes).
func reevalFlagViews(ctx context.Context, tx pgx.Tx, userID int64, newFlags map[int64]Flags, changed map[string]bool, only map[int64]bool) error {
	rows, err := tx.Query(ctx, `SELECT id, definition FROM mailboxes WHERE user_id = $1 AND uses_flags ORDER BY id`, userID)
	if err != nil {
		return err
	}
	views, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (flagView, error) {
		var v flagView
		return v, r.Scan(&v.id, &v.def)
	})
	if err != nil || len(views) == 0 {
		return err
	}
	// The views a changed flag can affect, and which changed messages each
	// holds now (one probe per message through its memberships): removals
	// and additions are then exact, not "every changed message × view".
	var hits []hitView
	var hitIDs []int64
	for _, v := range views {
		n, err := parseDefinition(v.def)
		if err != nil {
			return fmt.Errorf("mailbox %d definition %q: %w", v.id, v.def, err)
		}
		hit := only[v.id]
		for d := range flagDeps(n) {
			hit = hit || only == nil && changed[d]
		}
		if hit {
			dn, cand := decider(n)
			hits = append(hits, hitView{v, dn, cand})
			hitIDs = append(hitIDs, v.id)
		}
	}
	if len(hits) == 0 {
		return nil
	}
	ids := make([]int64, 0, len(newFlags))
	for id := range newFlags {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	if done, err := uniformFlagViews(ctx, tx, hits, ids, newFlags); done || err != nil {
		return err
	}
	rows, err = tx.Query(ctx, `SELECT mailbox_id, message_id FROM mailbox_messages
		WHERE message_id = ANY($1) AND mailbox_id = ANY($2)`, ids, hitIDs)
	if err != nil {
		return err
	}
	member := map[[2]int64]bool{}
	var mb, msg int64
	if _, err := pgx.ForEachRow(rows, []any{&mb, &msg}, func() error { member[[2]int64{mb, msg}] = true; return nil }); err != nil {
		return err
	}
	b := viewBatch()
	added := false                // a message may enter a view: the change gives out UIDs
	var delViews, delMsgs []int64 // (view, message) pairs to remove, in one statement
	for _, v := range hits {
		// Decide what the new flags alone decide (e.g. +\Seen takes every
		// message out of "UNSEEN HEADER List-Id x" without a regex); only
		// the rest goes through the view's SQL predicate.
		var in, unknownIn, unknownOut []int64
		for _, id := range ids {
			isMember := member[[2]int64{v.id, id}]
			switch match, known := evalFlags(v.n, newFlags[id]); {
			case !known && isMember:
				unknownIn = append(unknownIn, id)
			case !known:
				unknownOut = append(unknownOut, id)
			case match && !isMember:
				in = append(in, id)
			case !match && isMember:
				delViews, delMsgs = append(delViews, v.id), append(delMsgs, id)
			}
		}
		if len(in) > 0 {
			queueAddToView(b, viewRef{v.id, v.cand}, in)
			added = true
		}
		if len(unknownIn) > 0 || len(unknownOut) > 0 {
			c, err := compileDefinition(v.def)
			if err != nil {
				return err
			}
			if len(unknownIn) > 0 {
				k := len(c.args)
				b.Queue(fmt.Sprintf(`DELETE FROM mailbox_messages mm USING messages m%s
					WHERE mm.mailbox_id = $%d AND mm.message_id = m.id AND m.id = ANY($%d) AND NOT coalesce((%s), false)`,
					msgJoins(c.usesText), k+1, k+2, c.sql), append(append([]any{}, c.args...), v.id, unknownIn)...)
			}
			if len(unknownOut) > 0 {
				q, qargs := addMatchingSQL(viewDef{v.id, c}, userID, unknownOut)
				b.Queue(q, qargs...)
				added = true
			}
		}
	}
	if len(delMsgs) > 0 {
		b.Queue(`DELETE FROM mailbox_messages mm USING unnest($1::bigint[], $2::bigint[]) AS d(mailbox_id, message_id)
			WHERE mm.mailbox_id = d.mailbox_id AND mm.message_id = d.message_id`, delViews, delMsgs)
	}
	if b.Len() == 1 { // only viewBatch's SET
		return nil
	}
	if added {
		b.Queue(durableNow) // UIDs given out are on disk at COMMIT (gate.go)
	}
	return tx.SendBatch(ctx, b).Close()
}

// flagView is a query mailbox whose definition reads flags.
type flagView struct {
	id  int64
	def string
}

type hitView struct {
	flagView
	n    query.Node // decider
	cand bool
}

// uniformFlagViews handles the commonest change, one flag set or cleared on
// many messages: when the new flags decide every affected view the same way
// for all the changed messages, each view takes all of them or none. Then one DELETE removes them from the views they leave
// and one INSERT per view adds the non-members to the views they enter; no
// membership is read first. done is false when the case does not apply.
func uniformFlagViews(ctx context.Context, tx pgx.Tx, hits []hitView, ids []int64, newFlags map[int64]Flags) (done bool, err error) {
	// The distinct new flag sets (a handful: +\Seen on 3,000 messages
	// leaves those with and without \Flagged, \Answered, ...).
	var distinct []Flags
	seen := map[string]bool{}
	for _, id := range ids {
		f := newFlags[id]
		k := strings.Join(f.Names(), " ")
		if !seen[k] {
			seen[k] = true
			distinct = append(distinct, f)
		}
	}
	var out []int64
	var enter []viewRef
	b := &pgx.Batch{}
	for _, v := range hits {
		match, known := evalFlags(v.n, distinct[0])
		for _, f := range distinct[1:] {
			if m, k := evalFlags(v.n, f); !k || m != match {
				known = false
			}
		}
		switch {
		case !known:
			return false, nil
		case match:
			enter = append(enter, viewRef{v.id, v.cand})
		default:
			out = append(out, v.id)
		}
	}
	if len(enter) > 0 {
		queueEnterViews(b, enter, `SELECT unnest($3::bigint[])`, []any{ids})
		b.Queue(durableNow) // UIDs given out are on disk at COMMIT (gate.go)
	}
	if len(out) > 0 {
		// "mailbox_id + 0": probe by message (one index probe per changed
		// message), never views × messages through (mailbox_id, message_id).
		b.Queue(`DELETE FROM mailbox_messages WHERE message_id = ANY($1) AND mailbox_id + 0 = ANY($2)`, ids, out)
	}
	return true, tx.SendBatch(ctx, b).Close()
}

// queueAddToView queues the statement that adds the messages ids (ascending)
// that view does not hold yet, with fresh UIDs in id order, and advances its
// UIDNEXT.
func queueAddToView(b *pgx.Batch, view viewRef, ids []int64) {
	queueEnterViews(b, []viewRef{view}, `SELECT unnest($3::bigint[])`, []any{ids})
}

// queueEnterViews queues the one statement that puts the messages a query
// selects (ids: its parameters numbered from $3) into the views they are
// not in yet, with fresh UIDs in id order per view, and advances the views'
// UIDNEXT. A view with candidates takes only its candidates; a view
// without folder terms takes only messages a folder other than Trash or
// Junk holds (keptSQL, tested once per message): the callers decide by
// flags alone.
func queueEnterViews(b *pgx.Batch, views []viewRef, ids string, args []any) {
	var plain, cand []int64
	for _, v := range views {
		if v.cand {
			cand = append(cand, v.id)
		} else {
			plain = append(plain, v.id)
		}
	}
	b.Queue(`WITH t AS MATERIALIZED (SELECT t.id, `+keptSQL("t.id")+` AS kept FROM (`+ids+`) AS t(id)),
		e AS (SELECT v.id AS mailbox_id, t.id AS message_id, t.kept FROM t, unnest($1::bigint[]) AS v(id)
			UNION ALL
			SELECT c.mailbox_id, c.message_id, t.kept FROM t JOIN view_candidates c ON c.message_id = t.id
			WHERE c.mailbox_id = ANY($2)),
		vb AS MATERIALIZED (SELECT id, uidnext, uses_folders FROM mailboxes WHERE id = ANY($1) OR id = ANY($2)),
		new AS (SELECT e.mailbox_id, e.message_id,
				vb.uidnext + row_number() OVER (PARTITION BY e.mailbox_id ORDER BY e.message_id) - 1 AS uid
			FROM e JOIN vb ON vb.id = e.mailbox_id
			WHERE (e.kept OR vb.uses_folders)
				AND NOT EXISTS (SELECT 1 FROM mailbox_messages x WHERE x.mailbox_id = e.mailbox_id AND x.message_id = e.message_id)),
		ins AS (INSERT INTO mailbox_messages (mailbox_id, uid, message_id, modseq)
			SELECT mailbox_id, uid, message_id, nextval('modseq_seq') FROM new ORDER BY mailbox_id, uid RETURNING mailbox_id)
		UPDATE mailboxes b SET uidnext = b.uidnext + k.n
		FROM (SELECT mailbox_id, count(*) AS n FROM ins GROUP BY mailbox_id) k WHERE b.id = k.mailbox_id`,
		append([]any{nonNilIDs(plain), nonNilIDs(cand)}, args...)...)
}

func nonNilIDs(ids []int64) []int64 {
	if ids == nil {
		return []int64{}
	}
	return ids
}
