package conformance

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"decimail/fixtures"
	"decimail/server/store"
)

// Outcome says where every seed message (and every extra message that was
// delivered) is after a session: one line per message with the mailboxes
// holding each stored copy (a messages row), its UID there and its flags,
// "GONE" when no copy is left; then one line per mailbox with its counts.
// The capture harness writes it as NAME.outcome next to the transcripts;
// the replay (TestTranscripts) computes it again after replaying the
// capture and requires the same text. Row ids are left out (they depend on
// what the database held before); UIDs are deterministic, because the
// account is built the same way every time (SetupAccount).
//
// This is the evidence of issue 14: after a delete in a view the message
// must be in Trash, not gone, and nothing else may have changed.
func Outcome(ctx context.Context, st *store.Store, user int64) (string, error) {
	type item struct{ file, msgid, was string }
	var items []item
	seed, err := fixtures.Seed()
	if err != nil {
		return "", err
	}
	for _, m := range seed {
		items = append(items, item{m.File, header(m.Raw, "Message-ID"), fmt.Sprintf("%s %d (%s)", m.Folder, m.UID, strings.Join(m.Flags, " "))})
	}
	extras, err := ExtraMessages()
	if err != nil {
		return "", err
	}
	for _, f := range extras {
		raw, err := ExtraMessage(f)
		if err != nil {
			return "", err
		}
		items = append(items, item{f, header(raw, "Message-ID"), ""})
	}
	var b strings.Builder
	b.WriteString("# outcome: for every seed message, the mailboxes holding it after the session (UID there; flags of each stored copy)\n")
	gone := 0
	for _, it := range items {
		copies, err := messageCopies(ctx, st, user, it.msgid)
		if err != nil {
			return "", err
		}
		status := strings.Join(copies, "; ")
		if len(copies) == 0 {
			if it.was == "" {
				continue // an extra message that was never delivered
			}
			status = "GONE"
			gone++
		}
		was := it.was
		if was == "" {
			was = "(delivered during the session)"
		}
		fmt.Fprintf(&b, "%-22s %-32s was %-28s now %s\n", it.file, it.msgid, was, status)
	}
	fmt.Fprintf(&b, "# %d seed messages gone\n", gone)
	b.WriteString("# mailboxes (name, view definition, uidnext, messages, unseen, subscribed):\n")
	mbs, err := st.Mailboxes(ctx, user)
	if err != nil {
		return "", err
	}
	for _, m := range mbs {
		def := ""
		if m.Definition != "" {
			def = " view " + strconv.Quote(m.Definition)
		}
		fmt.Fprintf(&b, "#   %-14s%s uidnext %d, %d messages, %d unseen, subscribed %v\n", m.Name, def, m.UIDNext, m.Messages, m.Unseen, m.Subscribed)
	}
	return b.String(), nil
}

// messageCopies describes each stored copy of a message (by Message-ID):
// "(flags): Mailbox uid, View (view) uid".
func messageCopies(ctx context.Context, st *store.Store, user int64, msgid string) ([]string, error) {
	rows, err := st.Pool().Query(ctx, `
		SELECT f.seen, f.answered, f.flagged, f.deleted, f.draft, f.keywords,
		       coalesce(string_agg(b.name || CASE WHEN b.definition IS NULL THEN '' ELSE ' (view)' END || ' ' || mm.uid,
		                           ', ' ORDER BY b.definition IS NOT NULL, b.name), '')
		FROM messages m JOIN message_flags f ON f.message_id = m.id
		LEFT JOIN mailbox_messages mm ON mm.message_id = m.id
		LEFT JOIN mailboxes b ON b.id = mm.mailbox_id
		WHERE m.user_id = $1 AND m.message_id = $2
		GROUP BY m.id, f.seen, f.answered, f.flagged, f.deleted, f.draft, f.keywords
		ORDER BY m.id`, user, msgid)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var seen, answered, flagged, deleted, draft bool
		var kw []string
		var in string
		if err := rows.Scan(&seen, &answered, &flagged, &deleted, &draft, &kw, &in); err != nil {
			return nil, err
		}
		var fl []string
		for _, f := range []struct {
			on   bool
			name string
		}{{answered, `\Answered`}, {flagged, `\Flagged`}, {deleted, `\Deleted`}, {seen, `\Seen`}, {draft, `\Draft`}} {
			if f.on {
				fl = append(fl, f.name)
			}
		}
		fl = append(fl, kw...)
		if in == "" {
			in = "no mailbox"
		}
		out = append(out, fmt.Sprintf("(%s): %s", strings.Join(fl, " "), in))
	}
	return out, rows.Err()
}

// header returns the first value of a header field of a raw message.
func header(raw []byte, name string) string {
	for _, line := range strings.Split(string(raw), "\n") {
		line = strings.TrimRight(line, "\r")
		if line == "" {
			break
		}
		if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(k, name) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
