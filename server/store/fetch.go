package store

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"decimail/server/message"
	"decimail/server/query"
)

// FetchCols selects the columns one FETCH needs (DESIGN "Performance rules":
// one query per command, only the needed columns, bodies only when asked).
type FetchCols struct {
	Flags, InternalDate, Size, Envelope, BodyStructure, BodySimple, Header, Body, IDs, ModSeq, SaveDate bool
	Preview                                                                                             PreviewMode
}

// PreviewMode is how FETCH reads previews (RFC 8970).
type PreviewMode uint8

const (
	PreviewNone   PreviewMode = iota
	PreviewStored             // stored previews only: a message stored before schema 0021 has none (PREVIEW (LAZY) answers NIL)
	PreviewMake               // also make the missing ones from the message, in the same query
)

// FetchRow is one message's requested data. Slices are fresh per row.
type FetchRow struct {
	UID           uint32
	MessageID     int64 // global id: OBJECTID EMAILID
	ThreadID      int64
	Flags         Flags
	InternalDate  time.Time
	Size          int
	ModSeq        int64
	Preview       pgtype.Text // PREVIEW; not Valid: none stored (PreviewStored)
	SaveDate      *time.Time  // when the message entered the mailbox (schema 0020); nil for a held message no longer in it
	Envelope      []byte
	BodyStructure []byte
	BodySimple    []byte
	Header        []byte
	Body          []byte

	tz         int32  // internal_tz, seconds east of UTC
	previewRaw []byte // the message, when its preview is to be made
}

// fetchCol is a column group of a FETCH read.
type fetchCol struct {
	on   bool
	expr string
	ptr  func(r *FetchRow) []any
}

// Fetch chunks: a connection is never held while fn runs (fn writes to a
// client's socket, which may be slow or stalled), so rows are read a chunk at
// a time, the connection released, then handed to fn. A chunk is at most
// fetchChunkRows messages and, when message text is read, about
// fetchChunkBytes of it (always at least one message): that bounds a
// session's memory for FETCH 1:* BODY[] of any mailbox.
const (
	fetchChunkRows  = 1000
	fetchChunkBytes = 8 << 20
)

// Fetch reads the requested columns of the messages with the given UIDs and
// calls fn for each, ascending by UID: one query per chunk (one in all for
// up to fetchChunkRows messages without text), only the needed columns.
func (s *Store) Fetch(ctx context.Context, b Box, uids []uint32, cols FetchCols, fn func(*FetchRow) error) error {
	return s.FetchHeld(ctx, b, uids, Held{}, cols, fn)
}

// FetchHeld is Fetch that also reads the messages a session holds (Held):
// by message id, reported at their held UIDs, in UID order with the
// mailbox's (uids includes the held UIDs). A message deleted meanwhile has
// no row.
func (s *Store) FetchHeld(ctx context.Context, b Box, uids []uint32, held Held, cols FetchCols, fn func(*FetchRow) error) error {
	if err := b.check(); err != nil {
		return err
	}
	return s.fetch(ctx, b.id, uids, held, cols, fn)
}

// members is the relation "mm" (uid, message_id, modseq) a FETCH reads:
// the mailbox's rows or, with held messages, those and the held pairs.
// Its parameters come first; the UID condition's start at $n, and where
// is to be followed by it.
func members(mailboxID int64, held Held) (from string, args []any, n int, where string) {
	if held.Len() == 0 {
		return "mailbox_messages mm", []any{mailboxID}, 2, "mm.mailbox_id = $1 AND "
	}
	return `(SELECT uid, message_id, modseq, saved_at FROM mailbox_messages WHERE mailbox_id = $1
		UNION ALL SELECT h.uid, h.message_id, 0::bigint, NULL::timestamptz FROM unnest($2::bigint[], $3::bigint[]) AS h(uid, message_id)) mm`,
		append([]any{mailboxID}, held.args()...), 4, ""
}

func (s *Store) fetch(ctx context.Context, mailboxID int64, uids []uint32, held Held, cols FetchCols, fn func(*FetchRow) error) error {
	sel := []string{"mm.uid"}
	type col = fetchCol
	cs := []col{
		{cols.IDs, "m.id, m.thread_id", func(r *FetchRow) []any { return []any{&r.MessageID, &r.ThreadID} }},
		{cols.Flags, "f.seen, f.answered, f.flagged, f.deleted, f.draft, nullif(f.keywords, '{}')", func(r *FetchRow) []any {
			return []any{&r.Flags.Seen, &r.Flags.Answered, &r.Flags.Flagged, &r.Flags.Deleted, &r.Flags.Draft, &r.Flags.Keywords}
		}},
		{cols.InternalDate, "m.internal_date, m.internal_tz", func(r *FetchRow) []any { return []any{&r.InternalDate, &r.tz} }},
		{cols.Size, "f.size", func(r *FetchRow) []any { return []any{&r.Size} }},
		{cols.ModSeq, "greatest(mm.modseq, f.modseq)", func(r *FetchRow) []any { return []any{&r.ModSeq} }},
		{cols.Preview == PreviewStored, "m.preview, NULL::bytea", func(r *FetchRow) []any { return []any{&r.Preview, &r.previewRaw} }},
		{cols.Preview == PreviewMake, "m.preview, CASE WHEN m.preview IS NULL THEN m.header || m.body END",
			func(r *FetchRow) []any { return []any{&r.Preview, &r.previewRaw} }},
		{cols.SaveDate, "mm.saved_at", func(r *FetchRow) []any { return []any{&r.SaveDate} }},
		{cols.Envelope, "m.envelope", func(r *FetchRow) []any { return []any{&r.Envelope} }},
		{cols.BodyStructure, "m.bodystructure", func(r *FetchRow) []any { return []any{&r.BodyStructure} }},
		{cols.BodySimple, "m.body_simple", func(r *FetchRow) []any { return []any{&r.BodySimple} }},
		{cols.Header, "m.header", func(r *FetchRow) []any { return []any{&r.Header} }},
		{cols.Body, "m.body", func(r *FetchRow) []any { return []any{&r.Body} }},
	}
	var used []col
	for _, c := range cs {
		if c.on {
			sel = append(sel, c.expr)
			used = append(used, c)
		}
	}
	// Join only what the items need: FETCH (UID FLAGS) or (UID RFC822.SIZE
	// FLAGS) never touches the wide message rows.
	// Text is read a chunk of about fetchChunkBytes at a time, the chunk
	// chosen in the same query: the rows up to the one whose text would
	// pass the budget (a running sum of the sizes; the texts of the rows
	// left out are not read, a TOASTed value is only read when it is
	// sent), and the next query starts after the last UID returned.
	bySize := (cols.Header || cols.Body || cols.Preview == PreviewMake) && len(uids) > 1 // (a preview made from the message reads it)
	from, margs, n, where := members(mailboxID, held)
	if cols.IDs || cols.Preview != PreviewNone || cols.InternalDate || cols.Envelope || cols.BodyStructure || cols.BodySimple || cols.Header || cols.Body {
		from += " JOIN messages m ON m.id = mm.message_id"
	}
	if cols.Flags || cols.ModSeq || cols.Size || held.Len() > 0 || bySize { // (a held message deleted since has no flags row; f.size chunks the texts)
		from += " JOIN message_flags f ON f.message_id = mm.message_id"
	}
	rest := uids
	if bySize && !slices.IsSorted(uids) { // (the next chunk starts after the last UID read)
		rest = slices.Sorted(slices.Values(uids))
	}
	var rows []FetchRow
	for len(rest) > 0 {
		chunk := rest
		if !bySize {
			chunk = rest[:min(len(rest), fetchChunkRows)]
		}
		rows = rows[:0]
		cond, args, want := uidCond(chunk, n)
		q := `SELECT ` + strings.Join(sel, ", ") + ` FROM ` + from + `
			WHERE ` + where + cond + ` ORDER BY mm.uid`
		if bySize {
			// Of the first fetchChunkRows rows, those whose texts with
			// the ones before add up to fetchChunkBytes, and at least one.
			q = fmt.Sprintf(`SELECT * FROM (SELECT x.*, sum(x.chunk_size) OVER (ORDER BY x.uid ROWS UNBOUNDED PRECEDING) - x.chunk_size AS chunk_before
				FROM (SELECT %s, f.size AS chunk_size FROM %s WHERE %s%s ORDER BY mm.uid LIMIT %d) x) c
				WHERE c.chunk_before = 0 OR c.chunk_before + c.chunk_size <= %d ORDER BY c.uid`,
				strings.Join(sel, ", "), from, where, cond, fetchChunkRows, fetchChunkBytes)
		}
		last := int64(-1)
		err := func() error {
			q, err := s.pool.Query(ctx, q, append(margs[:len(margs):len(margs)], args...)...)
			if err != nil {
				return err
			}
			defer q.Close()
			for q.Next() {
				var r FetchRow
				var uid, size, before int64
				dst := []any{&uid}
				for _, c := range used {
					dst = append(dst, c.ptr(&r)...)
				}
				if bySize {
					dst = append(dst, &size, &before)
				}
				if err := q.Scan(dst...); err != nil {
					return err
				}
				last = uid
				if r.UID = uint32(uid); want != nil && !want[r.UID] {
					continue
				}
				if cols.InternalDate {
					r.InternalDate = r.InternalDate.In(zone(int(r.tz)))
				}
				if r.previewRaw != nil {
					r.Preview = pgtype.Text{String: message.Preview(r.previewRaw), Valid: true}
					r.previewRaw = nil
				}
				rows = append(rows, r)
			}
			return q.Err()
		}()
		if err != nil {
			return wrap("fetch", err)
		}
		for i := range rows {
			if err := fn(&rows[i]); err != nil {
				return err
			}
			rows[i] = FetchRow{} // the text is written: let it go
		}
		switch {
		case !bySize:
			rest = rest[len(chunk):]
		case last < 0:
			rest = nil // no row left in the set
		default:
			rest = rest[sort.Search(len(rest), func(i int) bool { return int64(rest[i]) > last }):]
		}
	}
	return nil
}

var zones sync.Map // offset -> *time.Location

// zone returns a shared fixed zone for an offset (one allocation per offset,
// not per row).
func zone(offset int) *time.Location {
	if z, ok := zones.Load(offset); ok {
		return z.(*time.Location)
	}
	z, _ := zones.LoadOrStore(offset, time.FixedZone("", offset))
	return z.(*time.Location)
}

// PrepareSearch applies the store's search limits to a program (as Search
// does) and returns it as Search would run it, for a caller that evaluates
// it itself (imapd answers flag-only programs from a session's flags).
func (s *Store) PrepareSearch(n query.Node) (query.Node, error) {
	n, err := s.limits.Search.Prepare(n)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrLimit, err)
	}
	return n, nil
}

// Search returns the UIDs in a mailbox matching a compiled SEARCH program, in
// ONE query. env.Msg and env.Member are set here. A program over
// Limits.Search is refused before it reaches Postgres: the error matches
// ErrLimit and wraps a *query.LimitError.
func (s *Store) Search(ctx context.Context, b Box, n query.Node, env *query.Env) ([]uint32, error) {
	return s.SearchHeld(ctx, b, n, env, Held{})
}

// SearchHeld is Search that also matches the program against messages the
// session holds (Held), in the same query, reporting their held UIDs.
func (s *Store) SearchHeld(ctx context.Context, b Box, n query.Node, env *query.Env, held Held) ([]uint32, error) {
	sql, err := s.searchSQL(b, n, env, held, `mm.uid`)
	if err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, sql, env.Args...)
	if err != nil {
		return nil, wrap("search", err)
	}
	us, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, wrap("search", err)
	}
	out := make([]uint32, len(us))
	for i, u := range us {
		out[i] = uint32(u)
	}
	return out, nil
}

// searchSQL is the one query of SearchHeld and SortKeys: the columns cols
// (mm: the membership, m: the message) of the mailbox's members matching
// the program, and of the held messages matching it, at their held UIDs;
// ordered by the first column. The program is checked against
// Limits.Search first (ErrLimit wrapping a *query.LimitError); env.Args
// get the query's parameters.
func (s *Store) searchSQL(b Box, n query.Node, env *query.Env, held Held, cols string) (string, error) {
	if err := b.check(); err != nil {
		return "", err
	}
	n, err := s.limits.Search.Prepare(n)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrLimit, err)
	}
	env.Msg, env.Member, env.Flags, env.Texts = "m", "mm", "f", "mt"
	env.Args = append(env.Args[:0], b.id, b.userID) // $2: the trigram indexes lead with the user (schema 0006)
	pred, err := query.Compile(n, env)
	if err != nil {
		return "", err
	}
	sql := `SELECT ` + cols + ` FROM mailbox_messages mm JOIN messages m ON m.id = mm.message_id` +
		msgJoins(query.UsesText(n)) + ` WHERE mm.mailbox_id = $1 AND m.user_id = $2 AND (` + pred + `)`
	if held.Len() > 0 {
		k := len(env.Args)
		sql += fmt.Sprintf(` UNION ALL SELECT `+cols+` FROM (SELECT h.uid, h.message_id, 0::bigint AS modseq, NULL::timestamptz AS saved_at
				FROM unnest($%d::bigint[], $%d::bigint[]) AS h(uid, message_id)) mm
			JOIN messages m ON m.id = mm.message_id`, k+1, k+2) +
			msgJoins(query.UsesText(n)) + ` WHERE m.user_id = $2 AND (` + pred + `)`
		env.Args = append(env.Args, held.args()...)
	}
	return sql + ` ORDER BY 1`, nil
}

// uidCond is the condition on mm.uid selecting uids, its parameters numbered
// from $n. A large dense set (a client's 1:*) is one index range scan
// instead of one probe per UID; want, when not nil, holds the set, to skip
// the rows of the range outside it. A sparse set (200 random UIDs of 10,000)
// uses = ANY: a range would read every row between them.
func uidCond(uids []uint32, n int) (cond string, args []any, want map[uint32]bool) {
	if len(uids) > 64 {
		lo, hi := uids[0], uids[0]
		for _, u := range uids {
			lo, hi = min(lo, u), max(hi, u)
		}
		if int(hi-lo)+1 <= 2*len(uids) {
			if int(hi-lo)+1 > len(uids) {
				want = make(map[uint32]bool, len(uids))
				for _, u := range uids {
					want[u] = true
				}
			}
			return fmt.Sprintf("mm.uid BETWEEN $%d AND $%d", n, n+1), []any{int64(lo), int64(hi)}, want
		}
	}
	return fmt.Sprintf("mm.uid = ANY($%d)", n), []any{toInt64s(uids)}, nil
}
