package imapd

// Property test of the session View (issue 6, part 1): a rapid state machine
// drives a simulated mailbox store (UIDs, flags, modseqs, tombstones, \Recent
// claims — the same Changes store.ChangesSince computes) and one session's
// View through random appends, expunges (including of messages the session
// never heard of), external flag changes, the session's own STORE (View.Told)
// and polls with and without EXPUNGE allowed. A naive reference model of what
// the client believes (seq→UID list, known flags) is updated only from the
// unilateral responses the View emits, and must agree with the store after
// every poll (RFC 3501 §7.4.1 EXPUNGE, §7.3.1 EXISTS, §5.5 no EXPUNGE during
// FETCH/STORE/SEARCH, §6.4.8 "n:*").
//
// Held messages (issue 14): the session's own STORE may take messages out
// of the mailbox (a view they stop matching); those stay in the client's
// view, with current flags (other sessions may change them: the store
// reports their changes at the held UIDs, ChangesSinceHeld), and their
// EXPUNGE waits for a sync point (NOOP, CHECK, IDLE, EXPUNGE: Release).

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"pgregory.net/rapid"

	"decimail/server/store"
)

// simMsg is one membership row of the simulated store.
type simMsg struct {
	flags  store.Flags
	modseq int64
	recent bool // not yet claimed by a session
}

// viewMachine is the simulated store, the View under test and the model of
// the client's beliefs.
type viewMachine struct {
	// simulated store: one mailbox
	modseq  int64
	uidnext uint32
	present map[uint32]*simMsg
	tombs   map[uint32]int64   // mailbox_expunges: uid -> modseq
	left    map[uint32]*simMsg // messages the session's own STORE took out of the mailbox, by their old UID
	claim   bool               // read-write session (SELECT), claims \Recent

	v *View

	// what the View has read from the store (as of its last Apply)
	read     map[uint32]simMsg
	readLeft map[uint32]simMsg // of left messages the View holds

	// the client: what it was told
	client   []uint32               // sequence number n is client[n-1]
	known    map[uint32]store.Flags // flags the client believes
	knownMod map[uint32]int64       // modseq of that knowledge
	mine     map[uint32]bool        // \Recent claimed by this session
	held     map[uint32]bool        // left by the session's own STORE, no sync point since
}

var (
	simFlagNames = []string{`\Seen`, `\Answered`, `\Flagged`, `\Deleted`, `\Draft`, "$Work", "Junk"}
	simFlagsGen  = rapid.SliceOfDistinct(rapid.SampledFrom(simFlagNames), func(s string) string { return s })
	flagOpNames  = map[store.FlagOp]string{store.FlagsSet: "FLAGS", store.FlagsAdd: "+FLAGS", store.FlagsDel: "-FLAGS"}
)

func drawFlags(t *rapid.T, label string) store.Flags {
	f, _ := store.ParseFlags(simFlagsGen.Draw(t, label))
	return f
}

// sameFlags compares flag sets (keywords as case-insensitive sets).
func sameFlags(a, b store.Flags) bool {
	return flagKey(a) == flagKey(b)
}

func flagKey(f store.Flags) string {
	names := f.Names()
	for i := range names {
		names[i] = strings.ToLower(names[i])
	}
	sort.Strings(names)
	return strings.Join(slices.Compact(names), " ")
}

// applyOp is STORE's flag arithmetic (FLAGS, +FLAGS, -FLAGS: rfc3501.txt:3257-3278).
func applyOp(cur store.Flags, op store.FlagOp, g store.Flags) store.Flags {
	has := func(ks []string, k string) bool {
		return slices.ContainsFunc(ks, func(x string) bool { return strings.EqualFold(x, k) })
	}
	switch op {
	case store.FlagsSet:
		return store.Flags{Seen: g.Seen, Answered: g.Answered, Flagged: g.Flagged, Deleted: g.Deleted, Draft: g.Draft,
			Keywords: slices.Clone(g.Keywords)}
	case store.FlagsAdd:
		r := store.Flags{Seen: cur.Seen || g.Seen, Answered: cur.Answered || g.Answered, Flagged: cur.Flagged || g.Flagged,
			Deleted: cur.Deleted || g.Deleted, Draft: cur.Draft || g.Draft, Keywords: slices.Clone(cur.Keywords)}
		for _, k := range g.Keywords {
			if !has(r.Keywords, k) {
				r.Keywords = append(r.Keywords, k)
			}
		}
		return r
	default:
		r := store.Flags{Seen: cur.Seen && !g.Seen, Answered: cur.Answered && !g.Answered, Flagged: cur.Flagged && !g.Flagged,
			Deleted: cur.Deleted && !g.Deleted, Draft: cur.Draft && !g.Draft}
		for _, k := range cur.Keywords {
			if !has(g.Keywords, k) {
				r.Keywords = append(r.Keywords, k)
			}
		}
		return r
	}
}

func sortedKeys[V any](m map[uint32]V) []uint32 {
	return slices.Sorted(maps.Keys(m))
}

// changesSince is store.ChangesSinceHeld on the simulated store: held are
// the messages the View holds (View.Held).
func (m *viewMachine) changesSince(since int64, held store.Held) *store.Changes {
	ch := &store.Changes{UIDValidity: 1, ModSeq: since}
	for _, u := range held.UIDs {
		if msg := m.left[u]; msg != nil && msg.modseq > since {
			ch.Changed = append(ch.Changed, store.Change{UID: u, MessageID: simID(u), Flags: msg.flags, ModSeq: msg.modseq})
			ch.ModSeq = max(ch.ModSeq, msg.modseq)
		}
	}
	for _, u := range sortedKeys(m.present) {
		msg := m.present[u]
		if msg.modseq <= since {
			continue
		}
		c := store.Change{UID: u, MessageID: simID(u), Flags: msg.flags, ModSeq: msg.modseq}
		c.Flags.Keywords = slices.Clone(msg.flags.Keywords)
		if m.claim && msg.recent {
			msg.recent, c.Recent = false, true
		}
		ch.Changed = append(ch.Changed, c)
		ch.ModSeq = max(ch.ModSeq, msg.modseq)
	}
	for _, u := range sortedKeys(m.tombs) {
		if ms := m.tombs[u]; ms > since {
			ch.Expunged = append(ch.Expunged, u)
			ch.ModSeq = max(ch.ModSeq, ms)
		}
	}
	return ch
}

// simID is the message id of the simulated message first seen at uid.
func simID(u uint32) int64 { return 1000 + int64(u) }

func (m *viewMachine) snapshotRead() {
	m.read = map[uint32]simMsg{}
	for u, msg := range m.present {
		m.read[u] = *msg
	}
	m.readLeft = map[uint32]simMsg{}
	for _, u := range m.v.Held().UIDs {
		if msg := m.left[u]; msg != nil {
			m.readLeft[u] = *msg
		}
	}
}

// deliver appends one message with a fresh UID (above every UID ever used).
func (m *viewMachine) deliver(f store.Flags) uint32 {
	u := m.uidnext
	m.uidnext++
	m.modseq++
	m.present[u] = &simMsg{flags: f, modseq: m.modseq, recent: true}
	delete(m.tombs, u)
	return u
}

func (m *viewMachine) expunge(u uint32) {
	delete(m.present, u)
	m.modseq++
	m.tombs[u] = m.modseq
}

// storeFlags is store.StoreFlags: every targeted message still present is
// returned, changed ones with a new modseq.
func (m *viewMachine) storeFlags(uids []uint32, op store.FlagOp, f store.Flags) []store.FlagChange {
	var out []store.FlagChange
	for _, u := range uids {
		msg := m.present[u]
		if msg == nil {
			continue
		}
		nf := applyOp(msg.flags, op, f)
		if !sameFlags(nf, msg.flags) {
			m.modseq++
			msg.flags, msg.modseq = nf, m.modseq
		}
		out = append(out, store.FlagChange{UID: u, Flags: msg.flags, ModSeq: msg.modseq})
	}
	return out
}

func (m *viewMachine) init(t *rapid.T) {
	m.present, m.tombs, m.left, m.held = map[uint32]*simMsg{}, map[uint32]int64{}, map[uint32]*simMsg{}, map[uint32]bool{}
	m.uidnext = 1
	m.claim = rapid.Bool().Draw(t, "read-write (SELECT, not EXAMINE)")
	for range rapid.IntRange(0, 5).Draw(t, "messages before SELECT") {
		m.deliver(drawFlags(t, "initial flags"))
	}
	for _, u := range m.drawSubset(t, sortedKeys(m.present), "expunged before SELECT") {
		m.expunge(u)
	}
	// store.Select
	uids := sortedKeys(m.present)
	var recent []uint32
	for _, u := range uids {
		if m.present[u].recent && m.claim {
			m.present[u].recent = false
			recent = append(recent, u)
		}
	}
	m.v = NewView(uids, recent, m.modseq)
	var fl []store.Flags
	for _, u := range uids {
		fl = append(fl, m.present[u].flags)
	}
	m.v.KeepFlags(fl)
	var ids []int64
	for _, u := range uids {
		ids = append(ids, simID(u))
	}
	m.v.KeepIDs(ids)
	m.snapshotRead()
	m.client = slices.Clone(uids)
	m.known, m.knownMod, m.mine = map[uint32]store.Flags{}, map[uint32]int64{}, map[uint32]bool{}
	for _, u := range uids {
		m.known[u], m.knownMod[u] = m.present[u].flags, m.present[u].modseq
	}
	for _, u := range recent {
		m.mine[u] = true
	}
	t.Logf("SELECT: uids %v recent %v modseq %d", uids, recent, m.modseq)
}

func (m *viewMachine) drawSubset(t *rapid.T, xs []uint32, label string) []uint32 {
	if len(xs) == 0 {
		return nil
	}
	s := rapid.SliceOfDistinct(rapid.SampledFrom(xs), func(u uint32) uint32 { return u }).Draw(t, label)
	slices.Sort(s)
	return s
}

// poll is Conn.pollSelected with a fresh read: ChangesSince, Apply, Flush.
func (m *viewMachine) poll(t *rapid.T, allowExpunge bool) {
	ch := m.changesSince(m.v.ModSeq(), m.v.Held())
	for _, c := range ch.Changed {
		if c.Recent {
			m.mine[c.UID] = true
		}
	}
	m.v.Apply(ch)
	m.snapshotRead()
	m.flush(t, allowExpunge, true)
	// Right after a read, the flags the view keeps (FETCH FLAGS answers
	// from them) are the store's, for every message still in the store.
	for _, u := range m.v.UIDs() {
		p, ok := m.present[u]
		if !ok && m.held[u] {
			p, ok = m.left[u], true // a held message's flags stay current
		}
		if !ok {
			continue
		}
		got, kept := m.v.Flags(u)
		if !kept || !sameFlags(got, p.flags) {
			t.Fatalf("uid %d: the view keeps flags %v (kept %v), the store has %v", u, got.Names(), kept, p.flags.Names())
		}
	}
}

func fmtUpdates(ups []Update) string {
	var out []string
	for _, up := range ups {
		switch up.Kind {
		case UpdExpunge:
			out = append(out, fmt.Sprintf("* %d EXPUNGE (uid %d)", up.N, up.UID))
		case UpdExists:
			out = append(out, fmt.Sprintf("* %d EXISTS", up.N))
		case UpdRecent:
			out = append(out, fmt.Sprintf("* %d RECENT", up.N))
		case UpdFlags:
			out = append(out, fmt.Sprintf("* %d FETCH (FLAGS (%s)) (uid %d)", up.N, strings.Join(up.Flags.Names(), " "), up.UID))
		}
	}
	return "[" + strings.Join(out, "; ") + "]"
}

// flush sends the View's pending updates to the model client and checks them.
// complete says the View has just read the store, so nothing may stay pending.
func (m *viewMachine) flush(t *rapid.T, allowExpunge, complete bool) {
	before := slices.Clone(m.client)
	ups := m.v.Flush(allowExpunge)
	var log []string
	fetched := map[uint32]bool{}
	for _, up := range ups {
		switch up.Kind {
		case UpdExpunge:
			log = append(log, fmt.Sprintf("* %d EXPUNGE (uid %d)", up.N, up.UID))
			if !allowExpunge {
				t.Fatalf("EXPUNGE %d sent while EXPUNGE is not allowed (rfc3501.txt:4053); updates %s", up.N, fmtUpdates(ups)) // not during FETCH, STORE or SEARCH
			}
			if up.N < 1 || int(up.N) > len(m.client) {
				t.Fatalf("EXPUNGE %d outside the client's view of %d messages (rfc3501.txt:4019-4028); updates %s", up.N, len(m.client), fmtUpdates(ups)) // the EXPUNGE response
			}
			u := m.client[up.N-1]
			if u != up.UID {
				t.Fatalf("EXPUNGE %d: the client has uid %d there, the View meant %d", up.N, u, up.UID)
			}
			if m.held[u] {
				t.Fatalf("EXPUNGE %d (uid %d): the session's own STORE took it out, no sync point since (README \"Own changes in a view\")", up.N, u)
			}
			if _, ok := m.read[u]; ok {
				t.Fatalf("EXPUNGE %d (uid %d) of a message still in the store", up.N, u)
			}
			m.client = slices.Delete(m.client, int(up.N-1), int(up.N))
			delete(m.known, u)
			delete(m.knownMod, u)
			delete(m.mine, u)
		case UpdExists:
			log = append(log, fmt.Sprintf("* %d EXISTS", up.N))
			if int(up.N) < len(m.client) {
				t.Fatalf("EXISTS %d below the %d messages the client knows", up.N, len(m.client))
			}
			var add []uint32
			for _, u := range sortedKeys(m.read) {
				if !slices.Contains(m.client, u) {
					add = append(add, u)
				}
			}
			if len(m.client)+len(add) != int(up.N) {
				t.Fatalf("EXISTS %d, but the client had %d and the store has %d more: %v", up.N, len(m.client), len(add), add)
			}
			if len(m.client) > 0 && len(add) > 0 && add[0] < m.client[len(m.client)-1] {
				t.Fatalf("new uid %d below the client's last uid %d", add[0], m.client[len(m.client)-1])
			}
			m.client = append(m.client, add...)
			for _, u := range add { // the client FETCHes what it needs
				m.known[u], m.knownMod[u] = m.read[u].flags, m.read[u].modseq
			}
		case UpdRecent:
			log = append(log, fmt.Sprintf("* %d RECENT", up.N))
			n := 0
			for _, u := range m.client {
				if m.mine[u] {
					n++
				}
			}
			if int(up.N) != n {
				t.Fatalf("RECENT %d, but %d messages of the view are \\Recent for this session", up.N, n)
			}
		case UpdFlags:
			log = append(log, fmt.Sprintf("* %d FETCH (FLAGS (%s)) (uid %d)", up.N, strings.Join(up.Flags.Names(), " "), up.UID))
			if up.N < 1 || int(up.N) > len(m.client) {
				t.Fatalf("FETCH %d outside the client's view of %d messages", up.N, len(m.client))
			}
			u := m.client[up.N-1]
			if u != up.UID {
				t.Fatalf("FETCH %d: the client has uid %d there, the View meant %d", up.N, u, up.UID)
			}
			msg, ok := m.read[u]
			if !ok && m.held[u] {
				msg, ok = m.readLeft[u]
			}
			if !ok {
				t.Fatalf("FETCH FLAGS for uid %d, which is not in the store", u)
			}
			if fetched[u] {
				t.Fatalf("FETCH FLAGS for uid %d twice in one flush: %s", u, fmtUpdates(ups))
			}
			fetched[u] = true
			if !sameFlags(up.Flags, msg.flags) {
				t.Fatalf("FETCH %d FLAGS (%s), but the store has (%s)", up.N, flagKey(up.Flags), flagKey(msg.flags))
			}
			if msg.modseq <= m.knownMod[u] {
				t.Fatalf("FETCH FLAGS for uid %d repeats what the client knows (modseq %d, client knows %d)", u, msg.modseq, m.knownMod[u])
			}
			m.known[u], m.knownMod[u] = up.Flags, msg.modseq
		}
	}
	t.Logf("flush(allowExpunge=%v): %v", allowExpunge, log)

	if !slices.Equal(m.client, m.v.UIDs()) {
		t.Fatalf("client's seq->uid %v, View's %v", m.client, m.v.UIDs())
	}
	if !allowExpunge && !slices.Equal(m.client[:min(len(before), len(m.client))], before) {
		t.Fatalf("sequence numbers moved without EXPUNGE: before %v after %v", before, m.client)
	}
	if !complete {
		return
	}
	// Nothing lost: the client now agrees with the store, held messages
	// included.
	want := sortedKeys(m.read)
	for u := range m.held {
		if slices.Contains(m.client, u) {
			want = append(want, u)
		}
	}
	slices.Sort(want)
	if !allowExpunge {
		want = slices.Clone(before)
		for _, u := range sortedKeys(m.read) {
			if !slices.Contains(before, u) {
				want = append(want, u)
			}
		}
	}
	if !slices.Equal(m.client, want) {
		t.Fatalf("client's view %v, want %v (store %v, allowExpunge %v)", m.client, want, sortedKeys(m.read), allowExpunge)
	}
	for _, u := range m.client {
		msg, ok := m.read[u]
		if !ok && m.held[u] {
			msg, ok = m.readLeft[u]
		}
		if !ok {
			continue // expunged, announcement pending
		}
		if m.knownMod[u] < msg.modseq || !sameFlags(m.known[u], msg.flags) {
			t.Fatalf("flag update of uid %d lost: client believes (%s)@%d, store has (%s)@%d",
				u, flagKey(m.known[u]), m.knownMod[u], flagKey(msg.flags), msg.modseq)
		}
	}
}

// drawNum draws a set number: 0 is "*".
func drawNum(t *rapid.T, hi uint32, label string) uint32 {
	return rapid.Uint32Range(0, hi).Draw(t, label)
}

func setString(rs [][2]uint32) string {
	var b strings.Builder
	for i, r := range rs {
		writeRange := func(x uint32) {
			if x == 0 {
				b.WriteByte('*')
			} else {
				fmt.Fprint(&b, x)
			}
		}
		if i > 0 {
			b.WriteByte(',')
		}
		writeRange(r[0])
		if r[1] != r[0] {
			b.WriteByte(':')
			writeRange(r[1])
		}
	}
	return b.String()
}

func drawRanges(t *rapid.T, hi uint32, label string) [][2]uint32 {
	n := rapid.IntRange(1, 3).Draw(t, label+" ranges")
	rs := make([][2]uint32, n)
	for i := range rs {
		rs[i] = [2]uint32{drawNum(t, hi, label), drawNum(t, hi, label)}
	}
	t.Logf("%s %s", label, setString(rs))
	return rs
}

// resolveModel is the naive semantics of "*" ("represents the largest number in
// use", rfc3501.txt:5002; "559:* always includes the UID of the last message",
// rfc3501.txt:3379-3386) over the client's view.
func resolveModel(view []uint32, rs [][2]uint32, uid bool) ([]uint32, bool) {
	n := uint32(len(view))
	star := n
	if uid {
		star = 0
		if n > 0 {
			star = view[n-1]
		}
	}
	in := map[uint32]bool{}
	for _, r := range rs {
		lo, hi := r[0], r[1]
		if lo == 0 {
			lo = star
		}
		if hi == 0 {
			hi = star
		}
		if lo > hi {
			lo, hi = hi, lo
		}
		if uid {
			for _, u := range view {
				if lo <= u && u <= hi {
					in[u] = true
				}
			}
			continue
		}
		if lo < 1 || hi > n {
			return nil, false
		}
		for i := lo; i <= hi; i++ {
			in[view[i-1]] = true
		}
	}
	return sortedKeys(in), true
}

func TestPropertyViewModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		m := &viewMachine{}
		m.init(t)
		t.Repeat(map[string]func(*rapid.T){
			"deliver": func(t *rapid.T) {
				for range rapid.IntRange(1, 3).Draw(t, "count") {
					u := m.deliver(drawFlags(t, "flags"))
					t.Logf("store: deliver uid %d", u)
				}
			},
			"expunge": func(t *rapid.T) {
				// Any subset, including messages the session has not been told of.
				gone := m.drawSubset(t, sortedKeys(m.present), "expunge uids")
				for _, u := range gone {
					m.expunge(u)
				}
				t.Logf("store: expunge %v", gone)
			},
			"reenter": func(t *rapid.T) {
				// A message leaves a query mailbox and matches again: new UID.
				us := sortedKeys(m.present)
				if len(us) == 0 {
					t.Skip("empty")
				}
				u := rapid.SampledFrom(us).Draw(t, "uid")
				f := m.present[u].flags
				m.expunge(u)
				nu := m.deliver(f)
				t.Logf("store: uid %d leaves and re-enters as %d", u, nu)
			},
			"external STORE": func(t *rapid.T) {
				us := m.drawSubset(t, sortedKeys(m.present), "uids")
				op := rapid.SampledFrom([]store.FlagOp{store.FlagsSet, store.FlagsAdd, store.FlagsDel}).Draw(t, "op")
				f := drawFlags(t, "flags")
				m.storeFlags(us, op, f)
				t.Logf("store: another session STORE %v %s (%s)", us, flagOpNames[op], flagKey(f))
			},
			"own STORE": func(t *rapid.T) {
				// storecmd.go: resolve in the client's view, (poll first for
				// .SILENT +/-FLAGS), StoreFlags, Told, FETCH; then the
				// post-command poll without EXPUNGE (STORE is in noExpunge).
				if len(m.client) == 0 {
					t.Skip("empty view")
				}
				rs := drawRanges(t, uint32(len(m.client)), "seq set")
				uids, err := m.v.Resolve(seqSetOf(rs))
				if _, ok := resolveModel(m.client, rs, false); !ok {
					if err == nil {
						t.Fatalf("Resolve(%s) accepted a sequence number outside 1..%d", setString(rs), len(m.client))
					}
					return
				}
				op := rapid.SampledFrom([]store.FlagOp{store.FlagsSet, store.FlagsAdd, store.FlagsDel}).Draw(t, "op")
				f := drawFlags(t, "flags")
				silent := rapid.Bool().Draw(t, "silent")
				t.Logf("session: STORE %s %s%s (%s) -> uids %v", setString(rs), flagOpNames[op], map[bool]string{true: ".SILENT"}[silent], flagKey(f), uids)
				if silent && op != store.FlagsSet {
					m.poll(t, false)
				}
				for _, ch := range m.storeFlags(uids, op, f) {
					if m.v.Seq(ch.UID) == 0 {
						continue
					}
					m.v.Told(ch.UID, ch.ModSeq)
					if silent {
						m.known[ch.UID] = applyOp(m.known[ch.UID], op, f)
					} else {
						m.known[ch.UID] = ch.Flags
					}
					m.knownMod[ch.UID] = max(m.knownMod[ch.UID], ch.ModSeq)
				}
				m.poll(t, false)
			},
			"own STORE leaving the view": func(t *rapid.T) {
				// STORE/UID STORE in a query mailbox (storecmd.go): the
				// changed messages that stop matching leave in the same
				// transaction; the View holds them (View.Own) and the
				// post-command poll (EXPUNGE allowed for UID STORE) must
				// not announce them. Some may be held already (STORE on a
				// held message changes it by id).
				var in []uint32
				for _, u := range m.client {
					if m.present[u] != nil || m.left[u] != nil && m.held[u] {
						in = append(in, u)
					}
				}
				uids := m.drawSubset(t, in, "uids")
				if len(uids) == 0 {
					t.Skip("nothing to change")
				}
				f := drawFlags(t, "flags")
				uidCmd := rapid.Bool().Draw(t, "UID STORE")
				var live []uint32
				for _, u := range uids {
					if m.present[u] != nil {
						live = append(live, u)
					}
				}
				leave := m.drawSubset(t, live, "leave the view")
				t.Logf("session: STORE %v +FLAGS (%s), %v leave the view", uids, flagKey(f), leave)
				var chs []store.FlagChange
				for _, u := range uids {
					msg := m.present[u]
					if msg == nil {
						msg = m.left[u]
					}
					nf := applyOp(msg.flags, store.FlagsAdd, f)
					if !sameFlags(nf, msg.flags) {
						m.modseq++
						msg.flags, msg.modseq = nf, m.modseq
					}
					chs = append(chs, store.FlagChange{UID: u, Flags: msg.flags, ModSeq: msg.modseq})
				}
				for _, u := range leave {
					m.left[u] = m.present[u]
					m.expunge(u)
				}
				for _, ch := range chs {
					m.v.Told(ch.UID, ch.ModSeq)
					m.v.SetFlags(ch.UID, ch.Flags)
					m.v.Own(ch.UID)
					m.known[ch.UID], m.knownMod[ch.UID] = ch.Flags, max(m.knownMod[ch.UID], ch.ModSeq)
				}
				for _, u := range leave {
					m.held[u] = true
				}
				m.poll(t, uidCmd)
			},
			"external STORE on a held message": func(t *rapid.T) {
				us := m.drawSubset(t, sortedKeys(m.held), "held uids")
				if len(us) == 0 {
					t.Skip("nothing held")
				}
				f := drawFlags(t, "flags")
				for _, u := range us {
					msg := m.left[u]
					nf := applyOp(msg.flags, store.FlagsSet, f)
					if !sameFlags(nf, msg.flags) {
						m.modseq++
						msg.flags, msg.modseq = nf, m.modseq
					}
				}
				t.Logf("store: another session STORE held %v FLAGS (%s)", us, flagKey(f))
			},
			"sync point": func(t *rapid.T) {
				// NOOP/CHECK/IDLE/EXPUNGE: held messages are released.
				m.v.Release(nil)
				clear(m.held)
				m.poll(t, true)
			},
			"poll": func(t *rapid.T) {
				// Any command but FETCH, STORE, SEARCH (and NOOP, CHECK,
				// IDLE, EXPUNGE: "sync point").
				m.poll(t, true)
			},
			"poll during FETCH/STORE/SEARCH": func(t *rapid.T) {
				m.poll(t, false)
			},
			"flush without reading": func(t *rapid.T) {
				// pollSelected without a notification: only pending updates.
				m.flush(t, rapid.Bool().Draw(t, "allowExpunge"), false)
			},
			"resolve seq set": func(t *rapid.T) {
				rs := drawRanges(t, uint32(len(m.client))+2, "seq set")
				got, err := m.v.Resolve(seqSetOf(rs))
				want, ok := resolveModel(m.client, rs, false)
				if ok != (err == nil) || ok && !slices.Equal(got, want) {
					t.Fatalf("Resolve(seq %s) over %v = %v, %v; want %v (valid %v)", setString(rs), m.client, got, err, want, ok)
				}
			},
			"resolve UID set": func(t *rapid.T) {
				rs := drawRanges(t, m.uidnext+2, "uid set")
				got, err := m.v.Resolve(uidSetOfRanges(rs))
				want, _ := resolveModel(m.client, rs, true)
				if err != nil || len(got)+len(want) > 0 && !slices.Equal(got, want) {
					t.Fatalf("Resolve(UID %s) over %v = %v, %v; want %v", setString(rs), m.client, got, err, want)
				}
			},
		})
	})
}

func seqSetOf(rs [][2]uint32) imap.SeqSet {
	s := make(imap.SeqSet, len(rs))
	for i, r := range rs {
		s[i] = imap.SeqRange{Start: r[0], Stop: r[1]}
	}
	return s
}

func uidSetOfRanges(rs [][2]uint32) imap.UIDSet {
	s := make(imap.UIDSet, len(rs))
	for i, r := range rs {
		s[i] = imap.UIDRange{Start: imap.UID(r[0]), Stop: imap.UID(r[1])}
	}
	return s
}
