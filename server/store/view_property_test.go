package store_test

// Property test of query mailboxes (issue 6, part 3): random deliveries, flag
// changes, copies, moves, expunges and definition changes on a user with
// several query mailboxes (flag-based, header-based and mixed). After every
// action each query mailbox's membership must be exactly what re-evaluating
// its definition with query.Eval over all the user's messages gives, and the
// UIDs of every mailbox must obey RFC 3501 §2.3.1.1: a message keeps its UID
// while it stays, a message that enters (first time or again) gets a UID
// above every UID the mailbox ever had under this UIDVALIDITY, UIDs are never
// reused, UIDNEXT stays above them, and only a definition change moves
// UIDVALIDITY — always upwards.

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	"decimail/server/query"
	"decimail/server/store"
)

// viewDefs are the definitions the query mailboxes start with and may be
// redefined to (besides random programs).
var viewDefs = []string{
	"FLAGGED", "UNSEEN", "OR SEEN KEYWORD Junk", "UNSEEN UNDELETED", "NOT KEYWORD $Work", "OR ANSWERED DRAFT",
	"SUBJECT golang", "FROM alice", "HEADER List-Id golang", "OR SUBJECT news NOT FROM bob", "TEXT café", "LARGER 600",
	"SUBJECT rust FLAGGED", "OR FROM carol UNSEEN", "SINCE 26-Oct-2026", "KEYWORD \\Seen SENTBEFORE 25-Oct-2026",
	"SUBJECT MÜNCHEN", "TEXT strasse", "OR BODY ς FROM CARÖL", "SUBJECT İSTANBUL",
	// Folder terms (issue 14): no default rule for these.
	"FOLDER Archive", "OR FOLDER Trash UNSEEN", "NOT ONLYFOLDER Trash", "ONLYFOLDER (INBOX Archive) FLAGGED",
}

// mbTrack is what the test remembers of one mailbox between actions.
type mbTrack struct {
	name        string
	uidValidity uint32
	everUsed    map[uint32]bool  // every UID seen under this UIDVALIDITY
	maxUID      uint32           // the largest of them
	members     map[int64]uint32 // message id -> UID now
}

type viewStoreMachine struct {
	ctx       context.Context
	s         *store.Store
	u         store.User
	flagsJoin string // how to join a message to its flags (schema-independent)
	track     map[int64]*mbTrack
	redefined map[int64]bool // mailboxes DefineMailbox just changed
	folders   []string
	views     []string // query mailboxes the test defines
}

// flagsJoin finds where flags live: in messages, or in message_flags.
func flagsJoin(ctx context.Context, t testing.TB, s *store.Store) string {
	var split bool
	must(t, s.Pool().QueryRow(ctx, `SELECT to_regclass('message_flags') IS NOT NULL`).Scan(&split))
	if split {
		return "JOIN message_flags f ON f.message_id = m.id"
	}
	return "JOIN messages f ON f.id = m.id"
}

// userMsgs reads every message of the user with what query.Eval needs,
// the names of the folders holding it included.
func (sm *viewStoreMachine) userMsgs(t *rapid.T) map[int64]*query.Msg {
	rows, err := sm.s.Pool().Query(sm.ctx, `SELECT m.id, m.subject, m.from_addr, m.to_addr, m.cc_addr, m.bcc_addr,
			t.header_text, t.body_text, m.internal_day, m.sent_day, m.size, f.seen, f.answered, f.flagged, f.deleted, f.draft, f.keywords,
			m.header || m.body,
			array(SELECT b.name FROM mailbox_messages mm JOIN mailboxes b ON b.id = mm.mailbox_id
				WHERE mm.message_id = m.id AND b.definition IS NULL ORDER BY b.name)
		FROM messages m JOIN message_texts t ON t.message_id = m.id `+sm.flagsJoin+` WHERE m.user_id = $1`, sm.u.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[int64]*query.Msg{}
	for rows.Next() {
		var m query.Msg
		var id int64
		var sent *time.Time
		var raw []byte
		if err := rows.Scan(&id, &m.Subject, &m.From, &m.To, &m.Cc, &m.Bcc, &m.HeaderText, &m.BodyText, &m.InternalDay, &sent,
			&m.Size, &m.Seen, &m.Answered, &m.Flagged, &m.Deleted, &m.Draft, &m.Keywords, &raw, &m.Folders); err != nil {
			t.Fatal(err)
		}
		if err := origTexts(&m, raw); err != nil { // Eval folds the message's own text
			t.Fatalf("message %d: %v", id, err)
		}
		if sent != nil {
			m.SentDay = *sent
		}
		out[id] = &m
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// memberships reads mailbox id -> message id -> UID for all the user's mailboxes.
func (sm *viewStoreMachine) memberships(t *rapid.T) map[int64]map[int64]uint32 {
	rows, err := sm.s.Pool().Query(sm.ctx, `SELECT mm.mailbox_id, mm.message_id, mm.uid FROM mailbox_messages mm
		JOIN mailboxes b ON b.id = mm.mailbox_id WHERE b.user_id = $1`, sm.u.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[int64]map[int64]uint32{}
	for rows.Next() {
		var mb, id, uid int64
		if err := rows.Scan(&mb, &id, &uid); err != nil {
			t.Fatal(err)
		}
		if out[mb] == nil {
			out[mb] = map[int64]uint32{}
		}
		out[mb][id] = uint32(uid)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func (sm *viewStoreMachine) mailboxes(t *rapid.T) []store.MailboxStatus {
	ms, err := sm.s.Mailboxes(sm.ctx, sm.u.ID)
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

// checkCounters compares a mailbox's STATUS counters (kept by triggers)
// with counting its members.
func checkCounters(ctx context.Context, t interface {
	Helper()
	Fatalf(string, ...any)
}, s *store.Store, mb store.MailboxStatus) {
	t.Helper()
	if mb.Recent != -1 {
		t.Fatalf("%s: RECENT %d before it was counted", mb.Name, mb.Recent)
	}
	if err := s.CountRecent(ctx, &mb); err != nil {
		t.Fatalf("count recent %s: %v", mb.Name, err)
	}
	var n, r, u int
	var sz, hm int64
	err := s.Pool().QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE mm.recent), count(*) FILTER (WHERE NOT f.seen),
		coalesce(sum(f.size), 0), greatest(coalesce(max(greatest(mm.modseq, f.modseq)), 0),
			(SELECT coalesce(max(modseq), 0) FROM mailbox_expunges WHERE mailbox_id = $1))
		FROM mailbox_messages mm JOIN message_flags f ON f.message_id = mm.message_id WHERE mm.mailbox_id = $1`, mb.ID).Scan(&n, &r, &u, &sz, &hm)
	if err != nil {
		t.Fatalf("recount %s: %v", mb.Name, err)
	}
	if mb.Messages != n || mb.Recent != r || mb.Unseen != u || mb.Size != sz || mb.HighestModSeq < hm {
		t.Fatalf("%s: counters MESSAGES %d RECENT %d UNSEEN %d SIZE %d HIGHESTMODSEQ %d, counted %d %d %d %d, at least %d",
			mb.Name, mb.Messages, mb.Recent, mb.Unseen, mb.Size, mb.HighestModSeq, n, r, u, sz, hm)
	}
}

// check is the invariant, run after every action.
func (sm *viewStoreMachine) check(t *rapid.T) {
	msgs := sm.userMsgs(t)
	mem := sm.memberships(t)
	for _, mb := range sm.mailboxes(t) {
		checkCounters(sm.ctx, t, sm.s, mb)
		cur := mem[mb.ID]
		// Membership of a query mailbox = its definition over all the
		// user's messages, with the default rule unless it has folder
		// terms (query.ViewNode).
		if mb.Definition != "" {
			def, err := query.ParseDefinition(mb.Definition)
			if err != nil {
				t.Fatalf("%s: stored definition %q does not parse: %v", mb.Name, mb.Definition, err)
			}
			var diff []string
			for id, m := range msgs {
				want := query.Eval(query.ViewNode(def), m, 0, 0)
				if _, got := cur[id]; got != want {
					diff = append(diff, fmt.Sprintf("message %d member=%v, definition says %v: %s", id, got, want, describeMsg(*m)))
				}
			}
			for id := range cur {
				if msgs[id] == nil {
					diff = append(diff, fmt.Sprintf("message %d is a member but not a message of the user", id))
				}
			}
			if len(diff) > 0 {
				slices.Sort(diff)
				t.Fatalf("query mailbox %q (%s) membership wrong:\n%s", mb.Name, mb.Definition, strings.Join(diff, "\n"))
			}
		}
		// UIDs (RFC 3501 §2.3.1.1).
		tr := sm.track[mb.ID]
		if tr == nil || tr.uidValidity != mb.UIDValidity {
			if tr != nil {
				if !sm.redefined[mb.ID] {
					t.Fatalf("%s: UIDVALIDITY changed %d -> %d without a definition change", mb.Name, tr.uidValidity, mb.UIDValidity)
				}
				if mb.UIDValidity <= tr.uidValidity {
					t.Fatalf("%s: UIDVALIDITY went from %d to %d on redefinition (must grow)", mb.Name, tr.uidValidity, mb.UIDValidity)
				}
			}
			tr = &mbTrack{name: mb.Name, uidValidity: mb.UIDValidity, everUsed: map[uint32]bool{}, members: map[int64]uint32{}}
			sm.track[mb.ID] = tr
		} else if sm.redefined[mb.ID] {
			t.Fatalf("%s: definition changed but UIDVALIDITY stayed %d", mb.Name, mb.UIDValidity)
		}
		var entered []string
		for _, id := range slices.Sorted(maps.Keys(cur)) {
			uid := cur[id]
			if old, ok := tr.members[id]; ok && old == uid {
				continue
			}
			if uid <= tr.maxUID || tr.everUsed[uid] {
				t.Fatalf("%s: message %d entered with UID %d, but UIDs up to %d were already used (reused: %v; members %v)",
					mb.Name, id, uid, tr.maxUID, tr.everUsed[uid], cur)
			}
			entered = append(entered, fmt.Sprintf("%d=uid%d", id, uid))
		}
		if len(entered) > 0 {
			t.Logf("  %s: entered %v", mb.Name, entered)
		}
		for id, uid := range cur {
			tr.everUsed[uid] = true
			tr.maxUID = max(tr.maxUID, uid)
			_ = id
		}
		if mb.UIDNext <= tr.maxUID {
			t.Fatalf("%s: UIDNEXT %d not above UID %d", mb.Name, mb.UIDNext, tr.maxUID)
		}
		tr.members = maps.Clone(cur)
	}
	clear(sm.redefined)
}

func (sm *viewStoreMachine) mailboxID(t *rapid.T, name string) int64 {
	m, err := sm.s.Mailbox(sm.ctx, sm.u.ID, name)
	if err != nil {
		t.Fatal(err)
	}
	return m.ID
}

// box is mailbox name's handle.
func (sm *viewStoreMachine) box(t *rapid.T, name string) store.Box {
	m, err := sm.s.Mailbox(sm.ctx, sm.u.ID, name)
	if err != nil {
		t.Fatal(err)
	}
	return m.Box()
}

// uidsOf draws some of a mailbox's current UIDs (and sometimes a UID that does not exist).
func (sm *viewStoreMachine) uidsOf(t *rapid.T, name string) []uint32 {
	tr := sm.track[sm.mailboxID(t, name)]
	var us []uint32
	for _, u := range tr.members {
		us = append(us, u)
	}
	us = append(us, tr.maxUID+1)
	slices.Sort(us)
	got := rapid.SliceOfNDistinct(rapid.SampledFrom(us), 1, -1, func(u uint32) uint32 { return u }).Draw(t, "uids")
	slices.Sort(got)
	return got
}

// genViewMessage is a small message whose subject, From, List-Id and size
// the definitions look at.
func genViewMessage(t *rapid.T) ([]byte, string) {
	subject := drawWords(t, 0, 2, "subject")
	from := rapid.SampledFrom([]string{"alice@example.com", "Bob <bob@example.org>", "=?UTF-8?Q?Car=C3=B6l?= <carol@example.net>"}).Draw(t, "from")
	var b strings.Builder
	fmt.Fprintf(&b, "From: %s\r\nTo: u@example.test\r\nSubject: %s\r\n", from, subject)
	if rapid.Bool().Draw(t, "has date") {
		fmt.Fprintf(&b, "Date: %s\r\n", drawTime(t, "sent").Format("Mon, 02 Jan 2006 15:04:05 -0700"))
	}
	if rapid.Bool().Draw(t, "list-id") {
		b.WriteString("List-Id: golang-nuts <golang-nuts.googlegroups.com>\r\n")
	}
	b.WriteString("\r\n" + drawWords(t, 0, 4, "body") + "\r\n")
	b.WriteString(strings.Repeat("padding padding padding\r\n", rapid.IntRange(0, 30).Draw(t, "padding")))
	return []byte(b.String()), fmt.Sprintf("subject %q from %q", subject, from)
}

func drawStoreFlags(t *rapid.T, label string) store.Flags {
	f, _ := store.ParseFlags(rapid.SliceOfDistinct(rapid.SampledFrom([]string{`\Seen`, `\Answered`, `\Flagged`, `\Deleted`, `\Draft`, "$Work", "Junk"}),
		func(s string) string { return s }).Draw(t, label))
	return f
}

func TestPropertyQueryMailboxes(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	join := flagsJoin(ctx, t, s)
	run := 0
	rapid.Check(t, func(t *rapid.T) {
		run++
		u, err := s.CreateUser(ctx, fmt.Sprintf("prop%d", run), "pw")
		if err != nil {
			t.Fatal(err)
		}
		sm := &viewStoreMachine{ctx: ctx, s: s, u: u, flagsJoin: join, track: map[int64]*mbTrack{}, redefined: map[int64]bool{},
			folders: []string{"INBOX", "Archive", "Trash", "Junk"}}
		// EXPUNGE in a view: to Trash (the default) or at once (issue 14).
		if rapid.Bool().Draw(t, "view expunge deletes") {
			if err := s.SetConfig(ctx, store.ViewExpungeKey+":"+u.Name, store.ViewExpungeDelete); err != nil {
				t.Fatal(err)
			}
		}
		// Besides All Mail, Flagged and Unread: a flag-based, a header-based and a mixed view.
		for i, pool := range [][]string{viewDefs[:6], viewDefs[6:12], viewDefs[12:]} {
			name := fmt.Sprintf("View%d", i)
			def := rapid.SampledFrom(pool).Draw(t, name)
			if _, err := s.CreateMailbox(ctx, u.ID, name, def, ""); err != nil {
				t.Fatalf("create %s %q: %v", name, def, err)
			}
			sm.views = append(sm.views, name)
		}
		sm.check(t)
		anyMailbox := func() []string { // folders change names ("rename folder")
			return append(append([]string{}, sm.folders...), append(sm.views, "All Mail", "Flagged", "Unread")...)
		}
		actions := map[string]func(*rapid.T){
			"deliver": func(t *rapid.T) {
				raw, what := genViewMessage(t)
				to := rapid.SampledFrom(sm.folders).Draw(t, "mailbox")
				f := drawStoreFlags(t, "flags")
				d, err := s.Deliver(ctx, u.ID, raw, store.DeliverOptions{Mailbox: to, Flags: f, InternalDate: drawTime(t, "internal")})
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("deliver %s flags %v into %s: message %d uid %d", what, f.Names(), to, d.MessageID, d.UID)
			},
			"store flags": func(t *rapid.T) {
				name := rapid.SampledFrom(anyMailbox()).Draw(t, "mailbox")
				uids := sm.uidsOf(t, name)
				op := rapid.SampledFrom([]store.FlagOp{store.FlagsSet, store.FlagsAdd, store.FlagsDel}).Draw(t, "op")
				f := drawStoreFlags(t, "flags")
				_, err := s.StoreFlags(ctx, sm.box(t, name), uids, op, f)
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("STORE %s %v %s %v", name, uids, []string{"FLAGS", "+FLAGS", "-FLAGS"}[op], f.Names())
			},
			"add/remove flags": func(t *rapid.T) {
				// AddRemoveFlags: one round trip when the new flags decide
				// the views that read them, else the views re-evaluated.
				name := rapid.SampledFrom(anyMailbox()).Draw(t, "mailbox")
				uids := sm.uidsOf(t, name)
				add := rapid.Bool().Draw(t, "add")
				f := drawStoreFlags(t, "flags")
				before := flagsByUID(ctx, t, s, u, name)
				ch, _, _, err := s.AddRemoveFlags(ctx, sm.box(t, name), uids, add, f)
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("STORE %s %v %s %v: %d changed", name, uids, map[bool]string{true: "+FLAGS", false: "-FLAGS"}[add], f.Names(), len(ch))
				// The flag arithmetic, and what it says changed. (A message
				// that left the view with the change is not checked.)
				after := flagsByUID(ctx, t, s, u, name)
				changed := map[uint32]bool{}
				for _, c := range ch {
					changed[c.UID] = true
				}
				for _, uid := range uids {
					old, ok := before[uid]
					got, still := after[uid]
					if !ok || !still {
						continue
					}
					want := old
					want.Seen, want.Answered, want.Flagged = flagOp(old.Seen, f.Seen, add), flagOp(old.Answered, f.Answered, add), flagOp(old.Flagged, f.Flagged, add)
					want.Deleted, want.Draft = flagOp(old.Deleted, f.Deleted, add), flagOp(old.Draft, f.Draft, add)
					want.Keywords = nil
					for _, k := range old.Keywords {
						if add || !slices.ContainsFunc(f.Keywords, func(x string) bool { return strings.EqualFold(x, k) }) {
							want.Keywords = append(want.Keywords, k)
						}
					}
					for _, k := range f.Keywords {
						if add && !slices.ContainsFunc(want.Keywords, func(x string) bool { return strings.EqualFold(x, k) }) {
							want.Keywords = append(want.Keywords, k)
						}
					}
					if fmt.Sprint(got.Names()) != fmt.Sprint(want.Names()) {
						t.Fatalf("uid %d: flags %v, want %v", uid, got.Names(), want.Names())
					}
					if changed[uid] != (fmt.Sprint(old.Names()) != fmt.Sprint(want.Names())) {
						t.Fatalf("uid %d: reported changed=%v, flags %v -> %v", uid, changed[uid], old.Names(), want.Names())
					}
				}
			},
			"copy": func(t *rapid.T) {
				from := rapid.SampledFrom(anyMailbox()).Draw(t, "from")
				uids := sm.uidsOf(t, from)
				to := rapid.SampledFrom(sm.folders).Draw(t, "to")
				c, err := s.Copy(ctx, sm.box(t, from), uids, to)
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("COPY %s %v -> %s %v", from, c.Src, to, c.Dst)
			},
			"move": func(t *rapid.T) {
				// Out of a query mailbox too: a message that still matches
				// must be back in the view, with a new UID.
				from := rapid.SampledFrom(anyMailbox()).Draw(t, "from")
				uids := sm.uidsOf(t, from)
				to := rapid.SampledFrom(sm.folders).Draw(t, "to")
				c, err := s.Move(ctx, sm.box(t, from), uids, to)
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("MOVE %s %v -> %s %v", from, c.Src, to, c.Dst)
			},
			"expunge": func(t *rapid.T) {
				name := rapid.SampledFrom(anyMailbox()).Draw(t, "mailbox")
				var uids []uint32
				if rapid.Bool().Draw(t, "UID EXPUNGE") {
					uids = sm.uidsOf(t, name)
				}
				gone, err := s.Expunge(ctx, sm.box(t, name), uids)
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("EXPUNGE %s (uids %v): %v", name, uids, gone)
			},
			"rename folder": func(t *rapid.T) {
				// Folder names are what folder terms and the default rule
				// read: a view follows a RENAME of Trash (issue 14).
				i := rapid.IntRange(1, len(sm.folders)-1).Draw(t, "folder")
				var free []string
				for _, n := range searchFolders[1:5] {
					if !slices.Contains(sm.folders, n) {
						free = append(free, n)
					}
				}
				to := rapid.SampledFrom(free).Draw(t, "to")
				if err := s.RenameMailbox(ctx, u.ID, sm.folders[i], to); err != nil {
					t.Fatal(err)
				}
				t.Logf("RENAME %s %s", sm.folders[i], to)
				sm.folders[i] = to
			},
			"index texts": func(t *rapid.T) {
				// Views defined later read the texts through the trigram
				// indexes or without them (query: compiler.text).
				n, err := s.IndexTexts(ctx)
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("indexed %d texts", n)
			},
			"define": func(t *rapid.T) {
				name := rapid.SampledFrom(append(sm.views, "Flagged", "Unread")).Draw(t, "view")
				var def string
				if rapid.Bool().Draw(t, "random program") {
					def = query.String(searchGen{def: true}.node(t, 1))
				} else {
					def = rapid.SampledFrom(viewDefs).Draw(t, "definition")
				}
				m, err := s.DefineMailbox(ctx, u.ID, name, def)
				if err != nil {
					t.Fatalf("DefineMailbox(%s, %q): %v", name, def, err)
				}
				sm.redefined[m.ID] = true
				t.Logf("DEFINE %s %q: uidvalidity %d", name, def, m.UIDValidity)
			},
		}
		// A short sequence per check (t.Repeat's 30 steps on average would make
		// the default 100 checks too slow for make test); -rapid.checks for more.
		names := slices.Sorted(maps.Keys(actions))
		for range rapid.IntRange(1, 15).Draw(t, "steps") {
			actions[rapid.SampledFrom(names).Draw(t, "action")](t)
			sm.check(t)
		}
		// Keep the shared database small: the user's messages go.
		for _, name := range sm.folders {
			snap, err := s.Select(ctx, u.ID, name, true)
			if err != nil {
				t.Fatal(err)
			}
			if us := snap.UIDs; len(us) > 0 {
				s.StoreFlags(ctx, snap.Mailbox.Box(), us, store.FlagsAdd, store.Flags{Deleted: true})
				s.Expunge(ctx, snap.Mailbox.Box(), nil)
			}
		}
	})
}

// flagsByUID is a mailbox's flags by UID.
func flagsByUID(ctx context.Context, t *rapid.T, s *store.Store, u store.User, name string) map[uint32]store.Flags {
	snap, err := s.Select(ctx, u.ID, name, true)
	if err != nil {
		t.Fatal(err)
	}
	out := map[uint32]store.Flags{}
	for i, uid := range snap.UIDs {
		out[uid] = snap.Flags[i]
	}
	return out
}

// flagOp is +FLAGS (add) or -FLAGS of one system flag named in the STORE.
func flagOp(cur, named, add bool) bool {
	if !named {
		return cur
	}
	return add
}
