package store_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"

	"pgregory.net/rapid"

	"decimail/server/query"
	"decimail/server/store"
)

// candidateDefs are views of the form schema 0023 keeps candidates for
// (flag terms AND flag-free terms: query.SplitFlags), with a few that it
// does not (a folder term, a mixed OR, flags only) among them.
var candidateDefs = []string{
	"UNSEEN HEADER List-Id golang", "UNSEEN FROM alice", "FLAGGED SUBJECT golang", "UNSEEN UNDELETED LARGER 600",
	"OR SEEN FLAGGED NOT FROM bob", "UNKEYWORD $Work SINCE 26-Oct-2026 UNSEEN", "KEYWORD Junk TEXT café",
	"NOT SEEN NOT HEADER List-Id golang", "UNSEEN FOLDER INBOX", "OR UNSEEN FROM bob", "UNSEEN",
}

// TestPropertyViewCandidates (issue 15): views decided on a flag change
// from their candidates and the flags alone. Flag changes (+FLAGS and
// -FLAGS on whole mailboxes or some UIDs, FLAGS), deliveries, COPY,
// redefinitions and moves (to Trash and back) interleave; after each, every
// view's membership must equal its definition evaluated from scratch over
// all the user's messages (viewStoreMachine.check), and its candidates the
// flag-free part of its definition.
func TestPropertyViewCandidates(t *testing.T) { propertyViewCandidates(t, false) }

// TestPropertyViewsPending (issue 15): the same with every flag change
// leaving the views it would move messages in to their readers (no session
// follows them: pending.go). Before each check one reader, drawn from
// those that must catch up (LIST-STATUS, STATUS, SELECT, a poll,
// HIGHESTMODSEQ, QRESYNC's tombstones), reads a view; what STATUS and
// SELECT return must be the view's definition over the messages now, and
// after LIST-STATUS no view may be left pending. The check then finds every
// view's membership and counters exact and its UIDs never reused.
func TestPropertyViewsPending(t *testing.T) { propertyViewCandidates(t, true) }

func propertyViewCandidates(t *testing.T, pending bool) {
	s, _ := newStore(t)
	ctx := context.Background()
	join := flagsJoin(ctx, t, s)
	if pending {
		s.SetDeferViewsFrom(1)
	}
	run, wasPending := 0, 0
	defer func() {
		if pending && !t.Failed() && wasPending == 0 {
			t.Errorf("no flag change left a view pending in %d runs", run)
		}
	}()
	rapid.Check(t, func(t *rapid.T) {
		run++
		u, err := s.CreateUser(ctx, fmt.Sprintf("cand%d", run), "pw")
		if err != nil {
			t.Fatal(err)
		}
		sm := &viewStoreMachine{ctx: ctx, s: s, u: u, flagsJoin: join, track: map[int64]*mbTrack{}, redefined: map[int64]bool{},
			folders: []string{"INBOX", "Archive", "Trash", "Junk"}}
		for i := range 3 {
			name := fmt.Sprintf("Cand%d", i)
			def := rapid.SampledFrom(candidateDefs).Draw(t, name)
			if _, err := s.CreateMailbox(ctx, u.ID, name, def, ""); err != nil {
				t.Fatalf("create %s %q: %v", name, def, err)
			}
			sm.views = append(sm.views, name)
		}
		check := func(t *rapid.T) {
			if pending {
				wasPending += sm.observePending(t, append(append([]string{}, sm.views...), "Unread", "Flagged"))
			}
			sm.check(t)
			sm.checkCandidates(t)
		}
		check(t)
		anyMailbox := func() []string {
			return append(append([]string{}, sm.folders...), append(sm.views, "All Mail", "Flagged", "Unread")...)
		}
		targets := func(t *rapid.T, name string) []uint32 {
			if rapid.Bool().Draw(t, "1:*") {
				all := slices.Sorted(maps.Values(sm.track[sm.mailboxID(t, name)].members))
				return append(all, 1<<32-1)
			}
			return sm.uidsOf(t, name)
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
				t.Logf("deliver %s flags %v into %s: message %d", what, f.Names(), to, d.MessageID)
			},
			"add/remove flags": func(t *rapid.T) {
				name := rapid.SampledFrom(anyMailbox()).Draw(t, "mailbox")
				uids := targets(t, name)
				add := rapid.Bool().Draw(t, "add")
				f, _ := store.ParseFlags(rapid.SliceOfNDistinct(rapid.SampledFrom([]string{`\Seen`, `\Flagged`, `\Deleted`, "$Work", "Junk"}),
					1, 2, func(s string) string { return s }).Draw(t, "flags"))
				ch, _, _, err := s.AddRemoveFlags(ctx, sm.box(t, name), uids, add, f)
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("STORE %s %v %s %v: %d changed", name, uids, map[bool]string{true: "+FLAGS", false: "-FLAGS"}[add], f.Names(), len(ch))
			},
			"store flags": func(t *rapid.T) {
				name := rapid.SampledFrom(anyMailbox()).Draw(t, "mailbox")
				uids := targets(t, name)
				f := drawStoreFlags(t, "flags")
				if _, err := s.StoreFlags(ctx, sm.box(t, name), uids, store.FlagsSet, f); err != nil {
					t.Fatal(err)
				}
				t.Logf("STORE %s %v FLAGS %v", name, uids, f.Names())
			},
			"copy": func(t *rapid.T) {
				from := rapid.SampledFrom(anyMailbox()).Draw(t, "from")
				to := rapid.SampledFrom(sm.folders).Draw(t, "to")
				c, err := s.Copy(ctx, sm.box(t, from), sm.uidsOf(t, from), to)
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("COPY %s %v -> %s %v", from, c.Src, to, c.Dst)
			},
			"move": func(t *rapid.T) {
				from := rapid.SampledFrom(anyMailbox()).Draw(t, "from")
				to := rapid.SampledFrom(append([]string{"Trash"}, sm.folders...)).Draw(t, "to")
				c, err := s.Move(ctx, sm.box(t, from), sm.uidsOf(t, from), to)
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("MOVE %s %v -> %s %v", from, c.Src, to, c.Dst)
			},
			"expunge": func(t *rapid.T) {
				name := rapid.SampledFrom(anyMailbox()).Draw(t, "mailbox")
				gone, err := s.Expunge(ctx, sm.box(t, name), nil)
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("EXPUNGE %s: %v", name, gone)
			},
			"define": func(t *rapid.T) {
				name := rapid.SampledFrom(append(sm.views, "Unread")).Draw(t, "view")
				def := rapid.SampledFrom(candidateDefs).Draw(t, "definition")
				m, err := s.DefineMailbox(ctx, u.ID, name, def)
				if err != nil {
					t.Fatalf("DefineMailbox(%s, %q): %v", name, def, err)
				}
				sm.redefined[m.ID] = true
				t.Logf("DEFINE %s %q", name, def)
			},
		}
		names := slices.Sorted(maps.Keys(actions))
		for range rapid.IntRange(1, 20).Draw(t, "steps") {
			actions[rapid.SampledFrom(names).Draw(t, "action")](t)
			check(t)
		}
	})
}

// observePending reads one of views through a reader that must bring
// pending views up to date first, checks what STATUS and SELECT return
// against the view's definition, then lists the mailboxes (which catches
// up the rest) and requires that no view is left pending. It returns how
// many views were pending before.
func (sm *viewStoreMachine) observePending(t *rapid.T, views []string) int {
	ctx, s := sm.ctx, sm.s
	var before int
	if err := s.Pool().QueryRow(ctx, `SELECT count(*) FROM mailboxes WHERE user_id = $1 AND flags_pending IS NOT NULL`,
		sm.u.ID).Scan(&before); err != nil {
		t.Fatal(err)
	}
	name := rapid.SampledFrom(views).Draw(t, "observed view")
	want := func() []int64 { // the view's definition over the messages now
		m, err := s.Mailbox(ctx, sm.u.ID, name)
		if err != nil {
			t.Fatal(err)
		}
		def, err := query.ParseDefinition(m.Definition)
		if err != nil {
			t.Fatal(err)
		}
		var ids []int64
		for id, msg := range sm.userMsgs(t) {
			if query.Eval(query.ViewNode(def), msg, 0, 0) {
				ids = append(ids, id)
			}
		}
		slices.Sort(ids)
		return ids
	}
	box := sm.box(t, name)
	reader := rapid.SampledFrom([]string{"status", "select", "changes", "highestmodseq", "vanished", "list"}).Draw(t, "reader")
	var err error
	switch reader {
	case "status":
		var sts map[string]store.MailboxStatus
		if sts, err = s.Statuses(ctx, sm.u.ID, []string{name}); err == nil {
			if w := want(); sts[name].Messages != len(w) {
				t.Fatalf("STATUS %s after a pending change: MESSAGES %d, the definition matches %d", name, sts[name].Messages, len(w))
			}
		}
	case "select":
		var snap *store.Snapshot
		if snap, err = s.Select(ctx, sm.u.ID, name, rapid.Bool().Draw(t, "read-only")); err == nil {
			if got, w := slices.Sorted(slices.Values(snap.IDs)), want(); !slices.Equal(got, w) {
				t.Fatalf("SELECT %s after a pending change: messages %v, the definition matches %v", name, got, w)
			}
		}
	case "changes":
		_, err = s.ChangesSince(ctx, box, 0, false)
	case "highestmodseq":
		_, err = s.HighestModSeq(ctx, box)
	case "vanished":
		_, err = s.Vanished(ctx, box, 0)
	case "list":
		_, err = s.Mailboxes(ctx, sm.u.ID)
	}
	if err != nil {
		t.Fatalf("%s of %s: %v", reader, name, err)
	}
	var stillPending bool
	if err := s.Pool().QueryRow(ctx, `SELECT flags_pending IS NOT NULL FROM mailboxes WHERE id = $1`, box.ID()).Scan(&stillPending); err != nil {
		t.Fatal(err)
	}
	if stillPending {
		t.Fatalf("%s of %s left it pending", reader, name)
	}
	sm.mailboxes(t) // LIST-STATUS: catches up every view
	var after int
	if err := s.Pool().QueryRow(ctx, `SELECT count(*) FROM mailboxes WHERE user_id = $1 AND flags_pending IS NOT NULL`,
		sm.u.ID).Scan(&after); err != nil {
		t.Fatal(err)
	}
	if after > 0 {
		t.Fatalf("%d views still pending after LIST-STATUS", after)
	}
	if before > 0 {
		t.Logf("  %d views were pending; %s of %s", before, reader, name)
	}
	return before
}

// checkCandidates: a view's candidates are the user's messages the
// flag-free part of its definition matches, when it splits, else none.
func (sm *viewStoreMachine) checkCandidates(t *rapid.T) {
	msgs := sm.userMsgs(t)
	rows, err := sm.s.Pool().Query(sm.ctx, `SELECT b.id, b.name, b.definition,
			array(SELECT c.message_id FROM view_candidates c WHERE c.mailbox_id = b.id ORDER BY 1)
		FROM mailboxes b WHERE b.user_id = $1 AND b.definition IS NOT NULL`, sm.u.ID)
	if err != nil {
		t.Fatal(err)
	}
	type view struct {
		id        int64
		name, def string
		cands     []int64
	}
	var views []view
	for rows.Next() {
		var v view
		if err := rows.Scan(&v.id, &v.name, &v.def, &v.cands); err != nil {
			t.Fatal(err)
		}
		views = append(views, v)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for _, v := range views {
		n, err := query.ParseDefinition(v.def)
		if err != nil {
			t.Fatal(err)
		}
		var want []int64
		if _, rest, ok := query.SplitFlags(n); ok {
			for id, m := range msgs {
				if query.Eval(rest, m, 0, 0) {
					want = append(want, id)
				}
			}
		}
		slices.Sort(want)
		if !slices.Equal(v.cands, want) {
			t.Fatalf("view %s (%s): candidates %v, want %v", v.name, v.def, v.cands, want)
		}
	}
	// No rows of messages or mailboxes that are gone.
	var stray int
	if err := sm.s.Pool().QueryRow(sm.ctx, `SELECT count(*) FROM view_candidates c
		WHERE NOT EXISTS (SELECT 1 FROM messages m WHERE m.id = c.message_id)
			OR NOT EXISTS (SELECT 1 FROM mailboxes b WHERE b.id = c.mailbox_id)`).Scan(&stray); err != nil {
		t.Fatal(err)
	}
	if stray > 0 {
		t.Fatalf("%d candidate rows of deleted messages or mailboxes", stray)
	}
}
