package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"decimail/schema"
	"decimail/server/query"
)

// Delim is the hierarchy delimiter of mailbox names.
const Delim = "/"

// Mailbox is a folder (explicit membership) or a query mailbox (Definition set).
type Mailbox struct {
	ID          int64
	UserID      int64
	Name        string
	Definition  string // "" for a folder
	UIDValidity uint32
	UIDNext     uint32
	SpecialUse  string
	box         Box // set only by the store, from the row it read
}

// Box is the handle of one user's mailbox. Every call on a mailbox's
// messages (Fetch, Search, StoreFlags, AddRemoveFlags, Expunge, Copy, Move,
// ChangesSince) takes one instead of a mailbox id, and only the store makes
// them, from a mailbox row it read for its owner (Mailbox.Box): a call that
// names a mailbox by id alone, or with another user's id, does not
// compile. The zero Box names no mailbox; the store refuses it.
type Box struct{ userID, id int64 }

// ID is the mailbox's id; UserID its owner's.
func (b Box) ID() int64     { return b.id }
func (b Box) UserID() int64 { return b.userID }

// ErrNoBox is the error of a call with the zero Box.
var ErrNoBox = errors.New("store: no mailbox handle")

func (b Box) check() error {
	if b.id == 0 || b.userID == 0 {
		return ErrNoBox
	}
	return nil
}

// Box is the mailbox's handle (the zero Box when the Mailbox was not read
// by the store).
func (m Mailbox) Box() Box { return m.box }

// IsQuery reports whether the mailbox is a saved query.
func (m *Mailbox) IsQuery() bool { return m.Definition != "" }

// MailboxStatus is a mailbox with the counts STATUS and LIST-STATUS report.
type MailboxStatus struct {
	Mailbox
	Subscribed    bool
	Messages      int
	Recent        int
	Unseen        int
	Size          int64
	HighestModSeq int64
	// Deleted and DeletedSize (the \Deleted messages and their octets)
	// are read only by AddDeleted.
	Deleted     int
	DeletedSize int64
	pending     bool // a view with flag changes to apply (pending.go)
}

// NormName canonicalises a mailbox name: INBOX is case-insensitive (RFC 3501
// §5.1), including as the first level of a hierarchy.
func NormName(name string) string { return query.NormName(name) }

const mailboxCols = `id, user_id, name, coalesce(definition, ''), uidvalidity, uidnext, coalesce(special_use, '')`

func scanMailbox(r pgx.Row) (Mailbox, error) {
	var m Mailbox
	var uv, un int64
	err := r.Scan(&m.ID, &m.UserID, &m.Name, &m.Definition, &uv, &un, &m.SpecialUse)
	m.UIDValidity, m.UIDNext = uint32(uv), uint32(un)
	m.box = Box{userID: m.UserID, id: m.ID}
	return m, err
}

// compiled is a query mailbox definition compiled for the aliases m
// (messages), f (message_flags) and mt (message_texts), joined by msgJoins.
type compiled struct {
	sql         string
	args        []any
	usesFlags   bool
	usesText    bool
	usesFolders bool // else the view also follows query.Kept (keptSQL)
}

// compileDefinition parses and compiles a query mailbox definition.
func compileDefinition(def string) (compiled, error) {
	n, err := query.ParseDefinition(def)
	if err != nil {
		return compiled{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if query.UsesSession(n) {
		return compiled{}, fmt.Errorf("%w: a definition cannot use UID, sequence numbers, RECENT or MODSEQ", ErrInvalid)
	}
	env := &query.Env{Msg: "m", Flags: "f", Texts: "mt"}
	sql, err := query.Compile(n, env)
	if err != nil {
		return compiled{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return compiled{sql, env.Args, query.UsesFlags(n), query.UsesText(n), query.UsesFolders(n)}, nil
}

// keptSQL is query.Kept, "NOT ONLYFOLDER (Trash Junk)", for the message
// whose id is the SQL expression id: some folder other than Trash and Junk
// holds it. Every view without folder terms follows it (query.ViewNode);
// it is written apart from the definitions' SQL so that the paths that
// decide a view in Go (flag changes, deliveries) need only add it.
func keptSQL(id string) string {
	return `EXISTS (SELECT 1 FROM mailbox_messages km JOIN mailboxes kb ON kb.id = km.mailbox_id
		WHERE km.message_id = ` + id + ` AND kb.definition IS NULL AND kb.name <> ALL('{Trash,Junk}'::text[]))`
}

// msgJoins joins a message m to what a compiled condition reads: its flags
// (f) and, when it reads text, its message_texts row (mt). The texts' owner
// is joined too: with m.user_id = $n in the query the planner knows
// mt.user_id, which the trigram indexes lead with (schema 0006).
func msgJoins(usesText bool) string {
	j := " JOIN message_flags f ON f.message_id = m.id"
	if usesText {
		j += " JOIN message_texts mt ON mt.message_id = m.id AND mt.user_id = m.user_id"
	}
	return j
}

func (s *Store) createMailbox(ctx context.Context, tx pgx.Tx, userID int64, name, def, specialUse string) (Mailbox, error) {
	name = NormName(name)
	if err := s.limits.checkName(name, false); err != nil {
		return Mailbox{}, err
	}
	usesFlags, usesFolders := false, false
	if def != "" {
		c, err := compileDefinition(def)
		if err != nil {
			return Mailbox{}, err
		}
		usesFlags, usesFolders = c.usesFlags, c.usesFolders
	}
	var exists bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM mailboxes WHERE user_id = $1 AND name = $2)`, userID, name).Scan(&exists); err != nil {
		return Mailbox{}, err
	}
	if exists {
		return Mailbox{}, ErrExists
	}
	m, err := scanMailbox(tx.QueryRow(ctx, `INSERT INTO mailboxes (user_id, name, definition, uses_flags, uses_folders, special_use)
		VALUES ($1, $2, nullif($3, ''), $4, $5, nullif($6, '')) RETURNING `+mailboxCols, userID, name, def, usesFlags, usesFolders, specialUse))
	if err != nil {
		return Mailbox{}, err
	}
	if def != "" {
		if err := schema.FillCandidates(ctx, tx, m.ID, def); err != nil {
			return Mailbox{}, err
		}
		if err := addMatching(ctx, tx, m.ID, userID, nil); err != nil {
			return Mailbox{}, err
		}
	}
	return m, nil
}

// CreateMailbox creates a folder (def == "") or a query mailbox. Missing
// parents of a hierarchical name are created as folders (RFC 3501 §6.3.3).
// A name the store refuses is a *NameError (ErrInvalid or ErrLimit), a
// definition over the search limits ErrLimit.
func (s *Store) CreateMailbox(ctx context.Context, userID int64, name, def, specialUse string) (Mailbox, error) {
	name = NormName(name)
	if err := s.limits.checkName(name, false); err != nil {
		return Mailbox{}, err
	}
	if err := s.limits.checkDefinition(def); err != nil {
		return Mailbox{}, err
	}
	var m Mailbox
	err := s.change(ctx, userID, durable, func(tx pgx.Tx) error {
		parts := strings.Split(name, Delim)
		for i := 1; i < len(parts); i++ {
			parent := strings.Join(parts[:i], Delim)
			if _, err := s.createMailbox(ctx, tx, userID, parent, "", ""); err != nil && !errors.Is(err, ErrExists) {
				return err
			}
		}
		var err error
		m, err = s.createMailbox(ctx, tx, userID, name, def, specialUse)
		return err
	})
	return m, err
}

// CreateFolder is CreateMailbox of a folder for the admin tools (import,
// the demo seed) that also subscribes it, so that a client showing
// subscribed folders only (Thunderbird's default) shows it. Parents it
// creates on the way stay unsubscribed containers, as a client's own
// CREATE of Lists/golang leaves them. An existing folder keeps its
// subscription as it is (ErrExists).
func (s *Store) CreateFolder(ctx context.Context, userID int64, name string) (Mailbox, error) {
	m, err := s.CreateMailbox(ctx, userID, name, "", "")
	if err == nil {
		err = s.Subscribe(ctx, userID, m.Name)
	}
	return m, err
}

// Mailbox returns a user's mailbox by name.
func (s *Store) Mailbox(ctx context.Context, userID int64, name string) (Mailbox, error) {
	m, err := scanMailbox(s.pool.QueryRow(ctx, `SELECT `+mailboxCols+` FROM mailboxes WHERE user_id = $1 AND name = $2`, userID, NormName(name)))
	if errors.Is(err, pgx.ErrNoRows) {
		return Mailbox{}, ErrNotFound
	}
	return m, err
}

// Mailboxes lists a user's mailboxes by name with their STATUS numbers
// (counters on the mailbox rows: one query, no counting).
func (s *Store) Mailboxes(ctx context.Context, userID int64) ([]MailboxStatus, error) {
	var sts []MailboxStatus
	err := s.caughtUp(ctx, userID, func() (bool, error) {
		rows, err := s.pool.Query(ctx, `SELECT `+statusCols+` FROM mailboxes b WHERE b.user_id = $1 ORDER BY b.name`, userID)
		if err != nil {
			return false, err
		}
		sts, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (MailboxStatus, error) { return scanStatus(r) })
		return slices.ContainsFunc(sts, func(st MailboxStatus) bool { return st.pending }), err
	})
	return sts, err
}

// statusCols are the columns scanStatus reads, in order. The counters are
// kept on the mailbox row by the schema's triggers, but for \Recent: a claim
// no longer updates the mailbox row (schema 0025), and the unclaimed
// members are counted only when a client asks (CountRecent; Recent is -1
// until then): a mailbox no session selects keeps all its mail \Recent,
// and counting it for every LIST took a 200-mailbox start-up from 3.8 to
// 15.5 ms.
const statusCols = `b.id, b.user_id, b.name, coalesce(b.definition, ''), b.uidvalidity, b.uidnext, coalesce(b.special_use, ''),
	` + subscribedCol + `, b.messages, -1, b.unseen, b.size, b.highest_modseq, b.flags_pending IS NOT NULL`

// CountRecent fills the Recent of each of sts (of one user) not counted
// yet with the mailbox's unclaimed \Recent members (RFC 3501 STATUS
// RECENT), in one query through the partial index of schema 0022.
func (s *Store) CountRecent(ctx context.Context, sts ...*MailboxStatus) error {
	var ids []int64
	for _, st := range sts {
		if st.Recent < 0 {
			ids = append(ids, st.ID)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	n := map[int64]int{}
	rows, err := s.pool.Query(ctx, `SELECT r.mailbox_id, count(*) FROM mailbox_messages r JOIN mailboxes b ON b.id = r.mailbox_id
		WHERE r.mailbox_id = ANY($1) AND r.recent AND b.user_id = $2 GROUP BY r.mailbox_id`, ids, sts[0].UserID)
	if err != nil {
		return wrap("status", err)
	}
	var id, k int64
	if _, err := pgx.ForEachRow(rows, []any{&id, &k}, func() error { n[id] = int(k); return nil }); err != nil {
		return wrap("status", err)
	}
	for _, st := range sts {
		if st.Recent < 0 {
			st.Recent = n[st.ID]
		}
	}
	return nil
}

const subscribedCol = `EXISTS (SELECT 1 FROM subscriptions s WHERE s.user_id = b.user_id AND s.name = b.name)`

func scanStatus(r pgx.Row) (MailboxStatus, error) {
	var st MailboxStatus
	var uv, un, n, rc, u int64
	err := r.Scan(&st.ID, &st.UserID, &st.Name, &st.Definition, &uv, &un, &st.SpecialUse, &st.Subscribed,
		&n, &rc, &u, &st.Size, &st.HighestModSeq, &st.pending)
	st.UIDValidity, st.UIDNext = uint32(uv), uint32(un)
	st.Messages, st.Recent, st.Unseen = int(n), int(rc), int(u)
	return st, err
}

// Statuses is Status for several mailboxes in one query, by normalised
// name (NormName); names that do not exist are absent. Subscribed is not
// read: STATUS does not report it.
func (s *Store) Statuses(ctx context.Context, userID int64, names []string) (map[string]MailboxStatus, error) {
	norm := make([]string, len(names))
	for i, n := range names {
		norm[i] = NormName(n)
	}
	cols := strings.Replace(statusCols, subscribedCol, "false", 1)
	var out map[string]MailboxStatus
	err := s.caughtUp(ctx, userID, func() (pending bool, err error) {
		rows, err := s.pool.Query(ctx, `SELECT `+cols+` FROM mailboxes b WHERE b.user_id = $1 AND b.name = ANY($2)`, userID, norm)
		if err != nil {
			return false, err
		}
		defer rows.Close()
		out = map[string]MailboxStatus{}
		for rows.Next() {
			st, err := scanStatus(rows)
			if err != nil {
				return false, err
			}
			out[st.Name] = st
			pending = pending || st.pending
		}
		return pending, rows.Err()
	})
	return out, err
}

// Status returns one mailbox's counts, from the status cache when nothing
// of the mailbox or its user was signalled since it was read
// (statuscache.go), else with one read.
func (s *Store) Status(ctx context.Context, userID int64, name string) (MailboxStatus, error) {
	key := statusKey{userID, NormName(name)}
	if st, ok := s.statuses.get(s.notif, key); ok {
		return st, nil
	}
	s.notif.Start()
	gen := s.notif.Gen()
	all, err := s.Statuses(ctx, userID, []string{name})
	if err != nil {
		return MailboxStatus{}, err
	}
	st, ok := all[key.name]
	if !ok {
		return MailboxStatus{}, ErrNotFound
	}
	s.statuses.put(key, st, gen)
	return st, nil
}

// DeleteMailbox deletes a mailbox. Messages that no folder holds any more are
// deleted (delete_log). A mailbox with inferiors cannot be deleted (we do not
// keep \Noselect placeholders; RFC 3501 §6.3.4 allows refusing).
func (s *Store) DeleteMailbox(ctx context.Context, userID int64, name string) error {
	name = NormName(name)
	if name == "INBOX" {
		return ErrSpecialFolder
	}
	return s.change(ctx, userID, durable, func(tx pgx.Tx) error {
		m, err := scanMailbox(tx.QueryRow(ctx, `SELECT `+mailboxCols+` FROM mailboxes WHERE user_id = $1 AND name = $2`, userID, name))
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		} else if err != nil {
			return err
		}
		var kids bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM mailboxes WHERE user_id = $1 AND starts_with(name, $2))`,
			userID, name+Delim).Scan(&kids); err != nil {
			return err
		}
		if kids {
			return ErrHasChildren
		}
		var ids []int64
		if !m.IsQuery() {
			rows, err := tx.Query(ctx, `SELECT message_id FROM mailbox_messages WHERE mailbox_id = $1`, m.ID)
			if err != nil {
				return err
			}
			if ids, err = pgx.CollectRows(rows, pgx.RowTo[int64]); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, `DELETE FROM mailboxes WHERE id = $1`, m.ID); err != nil {
			return err
		}
		if err := deleteOrphans(ctx, tx, ids); err != nil {
			return err
		}
		// The survivors left a folder: the views follow (folderviews.go).
		left, err := survivingMessages(ctx, tx, ids)
		if err != nil {
			return err
		}
		return refreshFolderViews(ctx, tx, userID, left, nil)
	})
}

// RenameMailbox renames a mailbox and its inferiors. Renaming INBOX moves its
// messages to a new folder and leaves INBOX empty (RFC 3501 §6.3.5).
func (s *Store) RenameMailbox(ctx context.Context, userID int64, from, to string) error {
	from, to = NormName(from), NormName(to)
	if err := s.limits.checkName(to, false); err != nil {
		return err
	}
	return s.change(ctx, userID, durable, func(tx pgx.Tx) error {
		src, err := scanMailbox(tx.QueryRow(ctx, `SELECT `+mailboxCols+` FROM mailboxes WHERE user_id = $1 AND name = $2`, userID, from))
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		} else if err != nil {
			return err
		}
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM mailboxes WHERE user_id = $1 AND (name = $2 OR starts_with(name, $3)))`,
			userID, to, to+Delim).Scan(&exists); err != nil {
			return err
		}
		if exists || from == to {
			return ErrExists
		}
		if from != "INBOX" && strings.HasPrefix(to, from+Delim) {
			return ErrInvalid
		}
		if from != "INBOX" && s.limits.MailboxName > 0 {
			// The inferiors (and subscriptions) move along: the longest
			// of them must fit under the new name too.
			var tail int
			if err := tx.QueryRow(ctx, `SELECT coalesce(max(octet_length(name)), 0) - octet_length($2) FROM (
				SELECT name FROM mailboxes WHERE user_id = $1 AND starts_with(name, $2 || '/')
				UNION ALL SELECT name FROM subscriptions WHERE user_id = $1 AND starts_with(name, $2 || '/')) n`,
				userID, from).Scan(&tail); err != nil {
				return err
			}
			if tail > 0 && len(to)+tail > s.limits.MailboxName {
				return &NameError{Reason: fmt.Sprintf("would make an inferior's name %d bytes long, at most %d allowed",
					len(to)+tail, s.limits.MailboxName), TooLong: true}
			}
		}
		// The messages of the renamed folders: their folders' names change,
		// and the views follow (folderviews.go), after the rename.
		rows, err := tx.Query(ctx, `SELECT DISTINCT mm.message_id FROM mailbox_messages mm JOIN mailboxes b ON b.id = mm.mailbox_id
			WHERE b.user_id = $1 AND b.definition IS NULL AND (b.name = $2 OR starts_with(b.name, $2 || '/')) ORDER BY 1`, userID, from)
		if err != nil {
			return err
		}
		moved, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return err
		}
		if err := s.renameTx(ctx, tx, userID, src, from, to); err != nil {
			return err
		}
		return refreshFolderViews(ctx, tx, userID, moved, moved)
	})
}

// renameTx is RenameMailbox's change of names (and of INBOX's messages).
func (s *Store) renameTx(ctx context.Context, tx pgx.Tx, userID int64, src Mailbox, from, to string) error {
	parts := strings.Split(to, Delim)
	for i := 1; i < len(parts); i++ {
		if _, err := s.createMailbox(ctx, tx, userID, strings.Join(parts[:i], Delim), "", ""); err != nil && !errors.Is(err, ErrExists) {
			return err
		}
	}
	if from == "INBOX" {
		dst, err := s.createMailbox(ctx, tx, userID, to, "", "")
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `WITH moved AS (DELETE FROM mailbox_messages WHERE mailbox_id = $1 RETURNING uid, message_id)
			INSERT INTO mailbox_messages (mailbox_id, uid, message_id, modseq)
			SELECT $2, row_number() OVER (ORDER BY uid), message_id, nextval('modseq_seq') FROM moved`, src.ID, dst.ID)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE mailboxes SET uidnext = 1 + (SELECT count(*) FROM mailbox_messages WHERE mailbox_id = $1) WHERE id = $1`, dst.ID)
		return err
	}
	// The mailbox keeps its id (MAILBOXID is stable across RENAME, RFC 8474)
	// and its UIDVALIDITY (its UIDs did not change).
	_, err := tx.Exec(ctx, `UPDATE mailboxes SET name = $3 || substr(name, length($2) + 1)
		WHERE user_id = $1 AND (name = $2 OR starts_with(name, $2 || '/'))`, userID, from, to)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `UPDATE subscriptions SET name = $3 || substr(name, length($2) + 1)
		WHERE user_id = $1 AND (name = $2 OR starts_with(name, $2 || '/'))
		AND NOT EXISTS (SELECT 1 FROM subscriptions s2 WHERE s2.user_id = $1 AND s2.name = $3 || substr(subscriptions.name, length($2) + 1))`,
		userID, from, to)
	return err
}

// survivingMessages returns those of ids that still exist.
func survivingMessages(ctx context.Context, tx pgx.Tx, ids []int64) ([]int64, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	rows, err := tx.Query(ctx, `SELECT id FROM messages WHERE id = ANY($1) ORDER BY id`, ids)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[int64])
}

// DefineMailbox sets (or changes) a query mailbox's definition: membership is
// recomputed and UIDVALIDITY changes (RFC 3501 §2.3.1.1), UIDs restart at 1.
// The definition must be within Limits.Search (ErrLimit).
func (s *Store) DefineMailbox(ctx context.Context, userID int64, name, def string) (Mailbox, error) {
	if err := s.limits.checkName(NormName(name), false); err != nil {
		return Mailbox{}, err
	}
	if err := s.limits.checkDefinition(def); err != nil {
		return Mailbox{}, err
	}
	c, err := compileDefinition(def)
	if err != nil {
		return Mailbox{}, err
	}
	var m Mailbox
	err = s.change(ctx, userID, durable, func(tx pgx.Tx) error {
		var err error
		m, err = scanMailbox(tx.QueryRow(ctx, `SELECT `+mailboxCols+` FROM mailboxes WHERE user_id = $1 AND name = $2 FOR UPDATE`, userID, NormName(name)))
		if errors.Is(err, pgx.ErrNoRows) {
			m, err = s.createMailbox(ctx, tx, userID, name, def, "")
			if err == nil {
				err = subscribe(ctx, tx, userID, m.Name) // a view made for the user is meant to be seen
			}
			return err
		} else if err != nil {
			return err
		}
		if !m.IsQuery() {
			return fmt.Errorf("%w: %s is a folder", ErrInvalid, m.Name)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM mailbox_messages WHERE mailbox_id = $1`, m.ID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM mailbox_expunges WHERE mailbox_id = $1`, m.ID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE mailboxes SET definition = $2, uses_flags = $3, uses_folders = $4, uidnext = 1,
			uidvalidity = nextval('uidvalidity_seq'), expunges_pruned = 0, flags_pending = NULL WHERE id = $1`, m.ID, def, c.usesFlags, c.usesFolders); err != nil {
			return err
		}
		if err := schema.FillCandidates(ctx, tx, m.ID, def); err != nil {
			return err
		}
		if err := addMatching(ctx, tx, m.ID, userID, nil); err != nil {
			return err
		}
		m, err = scanMailbox(tx.QueryRow(ctx, `SELECT `+mailboxCols+` FROM mailboxes WHERE id = $1`, m.ID))
		return err
	})
	return m, err
}

func subscribe(ctx context.Context, tx pgx.Tx, userID int64, name string) error {
	_, err := tx.Exec(ctx, `INSERT INTO subscriptions (user_id, name) VALUES ($1, $2) ON CONFLICT DO NOTHING`, userID, name)
	return err
}

// Subscribe adds a name to the user's subscriptions; the name must be one
// a mailbox could have (*NameError).
func (s *Store) Subscribe(ctx context.Context, userID int64, name string) error {
	if err := s.limits.checkName(NormName(name), true); err != nil {
		return err
	}
	_, err := s.pool.Exec(ctx, `WITH ins AS (INSERT INTO subscriptions (user_id, name) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING name)
		SELECT `+notifySubscription, userID, NormName(name))
	if err == nil {
		s.notif.Touch(userID)
	}
	return wrap("subscribe", err)
}

// notifySubscription: a subscription changed signals the mailbox of its
// name, if there is one, to every process (NOTIFY's SubscriptionChange,
// imapd/notify.go); ins holds the changed row.
const notifySubscription = `pg_notify('decimail', b.id::text) FROM ins, mailboxes b WHERE b.user_id = $1 AND b.name = ins.name`

// Unsubscribe removes a name from the user's subscriptions.
func (s *Store) Unsubscribe(ctx context.Context, userID int64, name string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM subscriptions WHERE user_id = $1 AND name = $2`, userID, NormName(name))
	if err == nil && tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	if err == nil {
		_, err = s.pool.Exec(ctx, `WITH ins AS (SELECT $2::text AS name) SELECT `+notifySubscription, userID, NormName(name))
		s.notif.Touch(userID)
	}
	return wrap("unsubscribe", err)
}

// Subscriptions lists subscribed names (whether or not the mailboxes exist).
func (s *Store) Subscriptions(ctx context.Context, userID int64) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT name FROM subscriptions WHERE user_id = $1 ORDER BY name`, userID)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}
