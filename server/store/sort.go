package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"decimail/server/query"
)

// SortMsg is one message's SORT and THREAD keys (RFC 5256), as delivery
// stored them (schema 0016): the text keys are folded (query.Fold), so
// that comparing their octets is the i;unicode-casemap order the RFC asks
// for (rfc5256.txt:858-863).
type SortMsg struct {
	UID     uint32
	Arrival time.Time // INTERNALDATE
	Sent    time.Time // Date:, zero if absent or unparseable
	Size    int64
	Subject string // base subject, folded
	Reply   bool   // the subject marked a reply or forward
	From    string // addr-mailbox of the first From address, folded
	To, Cc  string
	// DisplayFrom, DisplayTo: the SORT=DISPLAY keys (RFC 5957), folded.
	DisplayFrom, DisplayTo string
	MsgID   string   // Message-ID as in the header (THREAD only)
	InReply string   // first msg-id of In-Reply-To (THREAD only)
	Refs    []string // msg-ids of References (THREAD only)
}

// SortKeys is SearchHeld that returns the matching messages' sort keys
// instead of their UIDs, in ascending UID order: the same compiled
// program, limits and held messages, in ONE query. With thread the
// Message-ID, In-Reply-To and References are read too.
func (s *Store) SortKeys(ctx context.Context, b Box, n query.Node, env *query.Env, held Held, thread bool) ([]SortMsg, error) {
	if err := b.check(); err != nil {
		return nil, err
	}
	userID, mailboxID := b.userID, b.id
	n, err := s.limits.Search.Prepare(n)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrLimit, err)
	}
	env.Msg, env.Member, env.Flags, env.Texts = "m", "mm", "f", "mt"
	env.Args = append(env.Args[:0], mailboxID, userID)
	pred, err := query.Compile(n, env)
	if err != nil {
		return nil, err
	}
	cols := `mm.uid, m.internal_date, m.sent_date, m.size, m.base_subject, m.subject_reply, m.from_mbox, m.to_mbox, m.cc_mbox, m.from_display, m.to_display`
	if thread {
		cols += `, m.message_id, m.in_reply_to, m.refs`
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
	rows, err := s.pool.Query(ctx, sql+` ORDER BY 1`, env.Args...)
	if err != nil {
		return nil, wrap("sort", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (SortMsg, error) {
		var m SortMsg
		var uid int64
		var sent *time.Time
		dst := []any{&uid, &m.Arrival, &sent, &m.Size, &m.Subject, &m.Reply, &m.From, &m.To, &m.Cc, &m.DisplayFrom, &m.DisplayTo}
		if thread {
			dst = append(dst, &m.MsgID, &m.InReply, &m.Refs)
		}
		err := r.Scan(dst...)
		m.UID = uint32(uid)
		if sent != nil {
			m.Sent = *sent
		}
		return m, err
	})
	if err != nil {
		return nil, wrap("sort", err)
	}
	return out, nil
}
