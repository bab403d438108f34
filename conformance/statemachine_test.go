package conformance

// TestStateMachineSessions (issue 6, item 2): an end-to-end state-machine
// property. Two imapd servers, each with its own store (its own pool and its
// own LISTEN connection: "two server processes" on one database), 2–4 raw
// IMAP sessions spread over them, and deliveries straight through the store.
// rapid draws a sequence of commands; each session keeps the picture of its
// mailbox that a client would build purely from the responses it received
// (sequence number -> UID and flags), and after every response the protocol
// invariants of RFC 3501 are checked against it. At a CHECK (the sync point)
// the picture must equal the store's membership and flags; NOOP reports
// every change but keeps the messages the session's own commands took out
// of a view (README "Own changes in a view").
//
// Runs: go test ./conformance -run StateMachine          (smDefaultChecks)
//       RAPID_CHECKS=1000 go test ./conformance -run StateMachine
// rapid prints the minimised action list of a failure, and each command with
// its responses is logged (t.Logf), so the failing run reads as a transcript.
// Every run talks to real servers, so minimisation is slow: give it time with
// RAPID_SHRINKTIME=3m when a failure's action list is still long.

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
	"pgregory.net/rapid"

	"decimail/internal/imaptest"
	"decimail/server/imapd"
	"decimail/server/pgrun"
	"decimail/server/store"
)

// smDefaultChecks is the number of rapid checks when neither RAPID_CHECKS nor
// -rapid.checks asks for another: every check talks to real servers on real
// Postgres, so rapid's default of 100 would be slow for `go test ./...`.
const smDefaultChecks = 50

// smMailboxes are the mailboxes a session may select: the folder INBOX and
// two query mailboxes every user has (DESIGN "Views users expect").
var smMailboxes = []string{"INBOX", "INBOX", "Unread", "All Mail"}

type smEnv struct {
	st   [2]*store.Store
	addr [2]string
	n    atomic.Int64 // users created (one per check)
}

func TestStateMachineSessions(t *testing.T) {
	ctx := context.Background()
	dsn := pgrun.TestDB(t)
	env := &smEnv{}
	for i := range env.st {
		st, err := store.Open(ctx, dsn, store.Options{PasswordCost: bcrypt.MinCost})
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := imapd.New(imapd.Config{AuthFailDelay: time.Millisecond}, st, nil)
		go srv.Serve(ln)
		env.st[i], env.addr[i] = st, ln.Addr().String()
		t.Cleanup(func() { srv.Close(); st.Close() })
	}
	if f := flag.Lookup("rapid.checks"); f != nil && !smFlagSet("rapid.checks") {
		if _, ok := os.LookupEnv("RAPID_CHECKS"); !ok {
			old := f.Value.String()
			f.Value.Set(strconv.Itoa(smDefaultChecks))
			defer f.Value.Set(old)
		}
	}
	rapid.Check(t, func(rt *rapid.T) { newSMModel(rt, env).run(rt) })
}

func smFlagSet(name string) bool {
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// smEntry is what a client knows of one sequence number.
type smEntry struct {
	uid        uint32   // 0: not learned yet
	flags      []string // sorted, without \Recent; valid if flagsKnown
	flagsKnown bool
	fresh      bool // announced by EXISTS after SELECT (so its UID is >= the SELECT's UIDNEXT)
}

// smConn is one raw session and the client's picture of its selected mailbox.
type smConn struct {
	name     string
	srv      int
	c        *Conn
	tag      int
	mailbox  string
	view     []smEntry
	validity uint32
	selNext  uint32 // UIDNEXT of the SELECT
}

type smModel struct {
	env    *smEnv
	user   string
	userID int64
	conns  []*smConn
	msgs   int
	// per mailbox name: the last UIDVALIDITY/UIDNEXT seen (SELECT, STATUS,
	// APPENDUID) and the largest UID ever learned.
	validity map[string]uint32
	uidNext  map[string]uint32
	maxUID   map[string]uint32
}

func newSMModel(t *rapid.T, env *smEnv) *smModel {
	ctx := context.Background()
	m := &smModel{env: env, validity: map[string]uint32{}, uidNext: map[string]uint32{}, maxUID: map[string]uint32{}}
	m.user = fmt.Sprintf("u%d", env.n.Add(1))
	u, err := env.st[0].CreateUser(ctx, m.user, "pw")
	if err != nil {
		t.Fatalf("create user: %v", err)
	}
	m.userID = u.ID
	n := rapid.IntRange(2, 4).Draw(t, "sessions")
	for i := range n {
		srv := i % 2 // both servers always have a session
		if i >= 2 {
			srv = rapid.IntRange(0, 1).Draw(t, fmt.Sprintf("c%d server", i+1))
		}
		box := rapid.SampledFrom(smMailboxes).Draw(t, fmt.Sprintf("c%d mailbox", i+1))
		c, err := Dial(fmt.Sprintf("c%d", i+1), env.addr[srv])
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		t.Cleanup(c.Close)
		if err := c.Login(m.user, "pw"); err != nil {
			t.Fatalf("login: %v", err)
		}
		sc := &smConn{name: c.name, srv: srv, c: c}
		m.conns = append(m.conns, sc)
		m.selectBox(t, sc, box)
	}
	return m
}

func (m *smModel) run(t *rapid.T) {
	t.Repeat(map[string]func(*rapid.T){
		"deliver":  m.actDeliver,
		"append":   m.actAppend,
		"store":    m.actStore,
		"expunge":  m.actExpunge,
		"closeSel": m.actCloseSelect,
		"move":     m.actMove,
		"noop":     m.actNoop,
		"idle":     m.actIdle,
		"fetch":    m.actFetch,
		"search":   m.actSearch,
		"status":   m.actStatus,
		"syncAll":  m.actSync,
		"":         func(*rapid.T) {},
	})
	m.actSync(t) // every check ends at a sync point
}

// ---- commands and responses ----

// cmdMode says which rules apply to the responses of a command.
type cmdMode struct {
	noExpunge bool // FETCH, STORE, SEARCH (rfc3501.txt:4053)
	seqFetch  bool // FETCH by sequence number: the UID at n must be the client's
	selecting bool // SELECT: the first EXISTS gives the initial view
	mayNo     bool // NO is a possible answer (checked by the caller)
}

// cmd sends one command, checks every response against the client's picture
// (updating it), and returns the untagged responses and the tagged one.
func (m *smModel) cmd(t *rapid.T, c *smConn, mode cmdMode, line string, lits ...[]byte) ([]*Resp, *Resp) {
	t.Helper()
	c.tag++
	tag := fmt.Sprintf("%s.%d", c.name, c.tag)
	t.Logf("%s@s%d[%s] > %s %s", c.name, c.srv, c.mailbox, tag, line)
	untagged, done, err := c.c.Command(tag, line, lits...)
	for _, r := range untagged {
		t.Logf("%s < %s", c.name, r.Raw)
	}
	if done != nil {
		t.Logf("%s < %s", c.name, done.Raw)
	}
	if done == nil {
		t.Fatalf("%s: %v", line, err)
	}
	initial := mode.selecting
	for _, r := range untagged {
		m.absorb(t, c, mode, r, &initial)
	}
	if done.Status == "NO" && len(done.Code) > 0 && strings.EqualFold(done.Code[0].S, "EXPUNGEISSUED") &&
		strings.Contains(strings.ToUpper(line), "FETCH") {
		// A FETCH of a message the client still has (its EXPUNGE not sent
		// yet) that another session deleted everywhere: the others are
		// served and the command is NO (RFC 2180 §4.1.2; EXPUNGEISSUED,
		// rfc5530.txt:202; issue 14).
		// Only right if the client may hold a message the mailbox no longer
		// has: a UID it no longer has, or one the client never learned.
		in := map[uint32]bool{}
		for _, u := range m.snapshot(t, c.mailbox).UIDs {
			in[u] = true
		}
		if !slices.ContainsFunc(c.view, func(e smEntry) bool { return !in[e.uid] }) {
			t.Fatalf("%s %s: %s, but every message the client has is in the mailbox", tag, line, done.Raw)
		}
		return untagged, done
	}
	if done.Status != "OK" && !(mode.mayNo && done.Status == "NO") {
		t.Fatalf("%s %s: %s", tag, line, done.Raw)
	}
	return untagged, done
}

func smNum(s string) (uint32, bool) {
	n, err := strconv.ParseUint(s, 10, 32)
	return uint32(n), err == nil
}

// absorb applies one untagged response to the client's picture, checking the
// invariants a client relies on.
func (m *smModel) absorb(t *rapid.T, c *smConn, mode cmdMode, r *Resp, initial *bool) {
	t.Helper()
	if r.Tag != "*" {
		t.Fatalf("%s: unexpected response %q", c.name, r.Raw)
	}
	if r.Status == "BYE" {
		t.Fatalf("%s: server said BYE: %s", c.name, r.Raw)
	}
	if r.Status != "" {
		if len(r.Code) >= 2 {
			n, ok := smNum(r.Code[1].S)
			switch strings.ToUpper(r.Code[0].S) {
			case "UIDVALIDITY":
				if ok {
					c.validity = n
					m.sawValidity(t, c.mailbox, n)
				}
			case "UIDNEXT":
				if ok {
					c.selNext = n
					m.sawUIDNext(t, c.mailbox, n)
				}
			}
		}
		return
	}
	if len(r.Data) < 2 {
		return
	}
	n, isNum := smNum(r.Data[0].S)
	if !isNum {
		return // FLAGS, SEARCH, STATUS, CAPABILITY...: the caller looks
	}
	switch strings.ToUpper(r.Data[1].S) {
	case "EXISTS":
		if int(n) < len(c.view) {
			t.Fatalf("%s: * %d EXISTS but the client has %d messages: EXISTS decreased without EXPUNGE (rfc3501.txt:1153-1156)", c.name, n, len(c.view))
		}
		for len(c.view) < int(n) {
			c.view = append(c.view, smEntry{fresh: !*initial})
		}
		*initial = false
	case "EXPUNGE":
		if mode.noExpunge {
			t.Fatalf("%s: * %d EXPUNGE during FETCH/STORE/SEARCH (rfc3501.txt:4053)", c.name, n)
		}
		if n < 1 || int(n) > len(c.view) {
			t.Fatalf("%s: * %d EXPUNGE but the client has %d messages (rfc3501.txt:4019-4028)", c.name, n, len(c.view))
		}
		c.view = slices.Delete(c.view, int(n-1), int(n))
	case "FETCH":
		if n < 1 || int(n) > len(c.view) {
			t.Fatalf("%s: * %d FETCH but the client has %d messages", c.name, n, len(c.view))
		}
		if len(r.Data) < 3 || r.Data[2].Kind != List {
			t.Fatalf("%s: malformed FETCH %q", c.name, r.Raw)
		}
		e := &c.view[n-1]
		items := r.Data[2].L
		for i := 0; i+1 < len(items); i += 2 {
			switch strings.ToUpper(items[i].S) {
			case "UID":
				u, ok := smNum(items[i+1].S)
				if !ok || u == 0 {
					t.Fatalf("%s: bad UID in %q", c.name, r.Raw)
				}
				if e.uid != 0 && e.uid != u {
					what := "FETCH"
					if mode.seqFetch {
						what = "FETCH by sequence number"
					}
					t.Fatalf("%s: %s: message %d is UID %d for the client, the server says UID %d", c.name, what, n, e.uid, u)
				}
				e.uid = u
				if e.fresh && u < c.selNext {
					t.Fatalf("%s: message %d (UID %d) arrived after SELECT but is below the SELECT's UIDNEXT %d (rfc3501.txt:473-476)", c.name, n, u, c.selNext) // "messages arriving after that time will have a UID greater than or equal to that value"
				}
				if !e.fresh && c.selNext != 0 && u >= c.selNext {
					t.Fatalf("%s: message %d (UID %d) was in the SELECT's EXISTS but is not below its UIDNEXT %d", c.name, n, u, c.selNext)
				}
				if u > m.maxUID[c.mailbox] {
					m.maxUID[c.mailbox] = u
				}
			case "FLAGS":
				if items[i+1].Kind != List {
					t.Fatalf("%s: bad FLAGS in %q", c.name, r.Raw)
				}
				e.flags, e.flagsKnown = smFlagList(items[i+1].L), true
			}
		}
	}
	// Known UIDs are strictly ascending in sequence order (rfc3501.txt:536-540:
	// the sequence number "MUST be ordered by ascending unique identifier").
	var last uint32
	for i, e := range c.view {
		if e.uid == 0 {
			continue
		}
		if e.uid <= last {
			t.Fatalf("%s: UIDs not ascending: message %d is UID %d after UID %d (rfc3501.txt:536-540)\nview: %s", c.name, i+1, e.uid, last, c.viewString()) // "ordered by ascending unique identifier"
		}
		last = e.uid
	}
}

func smFlagList(ts []Tok) []string {
	out := []string{}
	for _, f := range ts {
		if !strings.EqualFold(f.S, `\Recent`) {
			out = append(out, f.S)
		}
	}
	slices.Sort(out)
	return out
}

func (c *smConn) viewString() string {
	var b strings.Builder
	for i, e := range c.view {
		if i > 0 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "%d:", i+1)
		if e.uid == 0 {
			b.WriteString("?")
		} else {
			fmt.Fprint(&b, e.uid)
		}
		if e.flagsKnown {
			fmt.Fprintf(&b, "%v", e.flags)
		}
	}
	return "[" + b.String() + "]"
}

func (m *smModel) sawValidity(t *rapid.T, box string, v uint32) {
	if old, ok := m.validity[box]; ok && old != v {
		// Nothing in these actions redefines a mailbox.
		t.Fatalf("%s: UIDVALIDITY changed from %d to %d", box, old, v)
	}
	m.validity[box] = v
}

func (m *smModel) sawUIDNext(t *rapid.T, box string, n uint32) {
	if n < m.uidNext[box] {
		t.Fatalf("%s: UIDNEXT decreased from %d to %d within UIDVALIDITY %d (rfc3501.txt:459-466)", box, m.uidNext[box], n, m.validity[box]) // "the next unique identifier value MUST NOT change unless new messages are added"
	}
	if n <= m.maxUID[box] {
		t.Fatalf("%s: UIDNEXT %d but UID %d was already seen (rfc3501.txt:459-466)", box, n, m.maxUID[box]) // "The next unique identifier value is the predicted value that will be assigned to a new message"
	}
	m.uidNext[box] = n
}

func (m *smModel) selectBox(t *rapid.T, c *smConn, box string) {
	c.mailbox, c.view, c.selNext, c.validity = box, nil, 0, 0
	m.cmd(t, c, cmdMode{selecting: true}, "SELECT "+imaptest.Quote(box))
	if len(c.view) > 0 {
		m.cmd(t, c, cmdMode{noExpunge: true, seqFetch: true}, "FETCH 1:* (UID FLAGS)")
	}
}

// ---- drawing arguments ----

func (m *smModel) drawConn(t *rapid.T) *smConn {
	return m.conns[rapid.IntRange(0, len(m.conns)-1).Draw(t, "conn")]
}

func smDrawSeqSet(t *rapid.T, n int) string {
	if n == 0 {
		t.Skip("empty view")
	}
	return smDrawSet(t, n, "seq")
}

// drawUIDSet may name UIDs beyond the mailbox's (they match nothing).
func (m *smModel) drawUIDSet(t *rapid.T, c *smConn) string {
	return smDrawSet(t, int(m.maxUID[c.mailbox])+2, "uid")
}

// smDrawSet draws a set of numbers in 1..hi in one of the forms clients
// send: n, n:m, n:* or 1:*.
func smDrawSet(t *rapid.T, hi int, label string) string {
	lo := rapid.IntRange(1, hi).Draw(t, label)
	switch rapid.IntRange(0, 3).Draw(t, label+" form") {
	case 0:
		return strconv.Itoa(lo)
	case 1:
		return fmt.Sprintf("%d:%d", lo, rapid.IntRange(lo, hi).Draw(t, label+" hi"))
	case 2:
		return fmt.Sprintf("%d:*", lo)
	}
	return "1:*"
}

func (m *smModel) message() []byte {
	m.msgs++
	return fmt.Appendf(nil, "From: a@example.org\r\nTo: %s@example.org\r\nSubject: m%d\r\nMessage-ID: <m%d.%s@example.org>\r\n\r\nbody %d\r\n",
		m.user, m.msgs, m.msgs, m.user, m.msgs)
}

// ---- actions ----

func (m *smModel) actDeliver(t *rapid.T) {
	srv := rapid.IntRange(0, 1).Draw(t, "via store")
	f := store.Flags{Seen: rapid.Bool().Draw(t, "seen"), Flagged: rapid.Bool().Draw(t, "flagged")}
	d, err := m.env.st[srv].Deliver(context.Background(), m.userID, m.message(), store.DeliverOptions{Flags: f})
	if err != nil {
		t.Fatalf("deliver: %v", err)
	}
	t.Logf("deliver via store %d (seen=%v flagged=%v): INBOX UID %d", srv, f.Seen, f.Flagged, d.UID)
}

func (m *smModel) actAppend(t *rapid.T) {
	c := m.drawConn(t)
	flags := rapid.SampledFrom([]string{"", `\Seen`, `\Flagged`, `\Seen \Flagged`}).Draw(t, "flags")
	msg := m.message()
	_, done := m.cmd(t, c, cmdMode{}, fmt.Sprintf("APPEND INBOX (%s) {%d}", flags, len(msg)), msg)
	if len(done.Code) == 3 && strings.EqualFold(done.Code[0].S, "APPENDUID") {
		v, _ := smNum(done.Code[1].S)
		u, _ := smNum(done.Code[2].S)
		m.sawValidity(t, "INBOX", v)
		if u <= m.maxUID["INBOX"] || u < m.uidNext["INBOX"] {
			t.Fatalf("APPENDUID %d is not above UID %d / UIDNEXT %d seen before (rfc4315.txt)", u, m.maxUID["INBOX"], m.uidNext["INBOX"])
		}
		m.maxUID["INBOX"] = u
	}
}

func (m *smModel) actStore(t *rapid.T) {
	c := m.drawConn(t)
	byUID := rapid.Bool().Draw(t, "by uid")
	op := rapid.SampledFrom([]string{"+FLAGS", "-FLAGS"}).Draw(t, "op")
	flag := rapid.SampledFrom([]string{`\Seen`, `\Flagged`, `\Deleted`}).Draw(t, "flag")
	if byUID {
		m.cmd(t, c, cmdMode{mayNo: true}, fmt.Sprintf("UID STORE %s %s (%s)", m.drawUIDSet(t, c), op, flag))
	} else {
		_, done := m.cmd(t, c, cmdMode{noExpunge: true, mayNo: true}, fmt.Sprintf("STORE %s %s (%s)", smDrawSeqSet(t, len(c.view)), op, flag))
		m.checkNo(t, c, done)
	}
}

// checkNo accepts a NO to a command on sequence numbers only when the client's
// view holds a message the store no longer has in the mailbox (RFC 2180
// §4.1.1/§4.2.1 allow NO for an expunged message that is not yet announced).
func (m *smModel) checkNo(t *rapid.T, c *smConn, done *Resp) {
	if done.Status != "NO" {
		return
	}
	snap := m.snapshot(t, c.mailbox)
	if len(c.view) <= len(snap.UIDs) {
		ok := true
		for _, e := range c.view {
			if e.uid == 0 || !slices.Contains(snap.UIDs, e.uid) {
				ok = false
			}
		}
		if ok {
			t.Fatalf("%s: NO although every message in the client's view exists: %s", c.name, done.Raw)
		}
	}
}

func (m *smModel) actExpunge(t *rapid.T) {
	c := m.drawConn(t)
	// The messages this command removes: \Deleted in the store now (and,
	// for UID EXPUNGE, in the set). Each must be announced by an EXPUNGE
	// before the tagged OK (rfc3501.txt:2706-2709, rfc4315.txt:85-90).
	snap := m.snapshot(t, c.mailbox)
	fl := m.storeFlags(t, snap)
	line := "EXPUNGE"
	var set []uint32
	if rapid.Bool().Draw(t, "uid expunge") {
		s := m.drawUIDSet(t, c)
		line = "UID EXPUNGE " + s
		set = smExpandSet(s, snap.UIDs)
	} else {
		set = snap.UIDs
	}
	var gone []uint32
	for _, u := range set {
		if slices.Contains(fl[u], `\Deleted`) {
			gone = append(gone, u)
		}
	}
	m.cmd(t, c, cmdMode{}, line)
	m.checkGone(t, c, line, gone)
}

// checkGone: none of the UIDs may still be in the client's view.
func (m *smModel) checkGone(t *rapid.T, c *smConn, line string, gone []uint32) {
	for i, e := range c.view {
		if e.uid != 0 && slices.Contains(gone, e.uid) {
			t.Fatalf("%s: %s removed UID %d but sent no EXPUNGE for it: it is still message %d for the client %s", c.name, line, e.uid, i+1, c.viewString())
		}
	}
}

// smExpandSet lists the UIDs of have that a UID set (as drawUIDSet makes
// them, or a COPYUID set) names; "*" is the largest of have.
func smExpandSet(set string, have []uint32) []uint32 {
	var max uint32
	if len(have) > 0 {
		max = have[len(have)-1]
	}
	num := func(s string) uint32 {
		if s == "*" {
			return max
		}
		n, _ := smNum(s)
		return n
	}
	var out []uint32
	for _, r := range strings.Split(set, ",") {
		lo, hi, ok := strings.Cut(r, ":")
		a, b := num(lo), num(lo)
		if ok {
			b = num(hi)
		}
		if a > b {
			a, b = b, a
		}
		for _, u := range have {
			if u >= a && u <= b {
				out = append(out, u)
			}
		}
	}
	return out
}

func (m *smModel) actCloseSelect(t *rapid.T) {
	c := m.drawConn(t)
	box := rapid.SampledFrom(smMailboxes).Draw(t, "mailbox")
	m.cmd(t, c, cmdMode{}, "CLOSE")
	// CLOSE expunges silently (rfc3501.txt:2661-2664: "No untagged EXPUNGE
	// responses are sent"); the selection is gone.
	c.view = nil
	m.selectBox(t, c, box)
}

func (m *smModel) actMove(t *rapid.T) {
	c := m.drawConn(t)
	var untagged []*Resp
	var done *Resp
	line := ""
	if rapid.Bool().Draw(t, "by uid") {
		line = fmt.Sprintf("UID MOVE %s Trash", m.drawUIDSet(t, c))
		untagged, done = m.cmd(t, c, cmdMode{}, line)
	} else {
		line = fmt.Sprintf("MOVE %s Trash", smDrawSeqSet(t, len(c.view)))
		untagged, done = m.cmd(t, c, cmdMode{mayNo: true}, line)
		m.checkNo(t, c, done)
	}
	// The moved messages (COPYUID's source set) must have been announced
	// as expunged before the tagged OK (rfc6851.txt:263).
	for _, r := range append(untagged, done) {
		if len(r.Code) == 4 && strings.EqualFold(r.Code[0].S, "COPYUID") {
			var all []uint32
			for u := uint32(1); u <= m.maxUID[c.mailbox]; u++ {
				all = append(all, u)
			}
			m.checkGone(t, c, line, smExpandSet(r.Code[2].S, all))
		}
	}
}

func (m *smModel) actNoop(t *rapid.T) {
	c := m.drawConn(t)
	cmd := rapid.SampledFrom([]string{"NOOP", "CHECK"}).Draw(t, "poll")
	if cmd == "CHECK" {
		m.barrier(t)
	}
	m.cmd(t, c, cmdMode{}, cmd)
	if cmd == "CHECK" {
		m.checkSynced(t, c)
	}
}

func (m *smModel) actIdle(t *rapid.T) {
	c := m.drawConn(t)
	during := rapid.Bool().Draw(t, "deliver during idle")
	via := 0
	if during {
		via = rapid.IntRange(0, 1).Draw(t, "via store")
	}
	c.tag++
	tag := fmt.Sprintf("%s.%d", c.name, c.tag)
	t.Logf("%s@s%d[%s] > %s IDLE", c.name, c.srv, c.mailbox, tag)
	if err := c.c.Write([]byte(tag + " IDLE\r\n")); err != nil {
		t.Fatal(err)
	}
	mode := cmdMode{}
	initial := false
	next := func(d time.Duration) *Resp {
		r := c.c.Next(d)
		if r != nil {
			t.Logf("%s < %s", c.name, r.Raw)
			if r.EOF {
				t.Fatalf("%s: connection closed during IDLE: %s", c.name, r.Text)
			}
		}
		return r
	}
	for {
		r := next(DefaultTimeout)
		if r == nil {
			t.Fatalf("%s: no continuation for IDLE", c.name)
		}
		if r.Tag == "+" {
			break
		}
		if r.Tag != "*" {
			t.Fatalf("%s: IDLE: %s", c.name, r.Raw)
		}
		m.absorb(t, c, mode, r, &initial)
	}
	wantLen := -1
	if during {
		d, err := m.env.st[via].Deliver(context.Background(), m.userID, m.message(), store.DeliverOptions{})
		if err != nil {
			t.Fatalf("deliver: %v", err)
		}
		t.Logf("deliver via store %d during IDLE: INBOX UID %d", via, d.UID)
		wantLen = len(m.snapshot(t, c.mailbox).UIDs)
	}
	// Collect updates: a delivery during IDLE must be announced promptly
	// (rfc2177.txt:77-83: the server "is now free to send untagged EXISTS,
	// EXPUNGE, and other messages at any time"; an unseen message in INBOX is
	// in all of smMailboxes).
	deadline := time.Now().Add(30 * time.Millisecond)
	if during {
		deadline = time.Now().Add(3 * time.Second)
	}
	for time.Now().Before(deadline) {
		r := next(time.Until(deadline))
		if r == nil {
			break
		}
		if r.Tag != "*" {
			t.Fatalf("%s: during IDLE: %s", c.name, r.Raw)
		}
		m.absorb(t, c, mode, r, &initial)
		// At least: the session may still show messages its own commands
		// took out of a view (README "Own changes in a view").
		if during && len(r.Data) > 1 && strings.EqualFold(r.Data[1].S, "EXISTS") && len(c.view) >= wantLen {
			deadline = time.Now().Add(20 * time.Millisecond)
			during = false
		}
	}
	if during {
		t.Fatalf("%s: a delivery during IDLE was not announced within 3s (the client has %d messages, the store %d)", c.name, len(c.view), wantLen)
	}
	t.Logf("%s > DONE", c.name)
	if err := c.c.Write([]byte("DONE\r\n")); err != nil {
		t.Fatal(err)
	}
	for {
		r := next(DefaultTimeout)
		if r == nil {
			t.Fatalf("%s: no tagged reply after DONE", c.name)
		}
		if r.Tag == tag {
			if r.Status != "OK" {
				t.Fatalf("%s: IDLE: %s", c.name, r.Raw)
			}
			return
		}
		m.absorb(t, c, mode, r, &initial)
	}
}

func (m *smModel) actFetch(t *rapid.T) {
	c := m.drawConn(t)
	if rapid.Bool().Draw(t, "by uid") {
		m.cmd(t, c, cmdMode{}, fmt.Sprintf("UID FETCH %s (FLAGS)", m.drawUIDSet(t, c)))
	} else {
		_, done := m.cmd(t, c, cmdMode{noExpunge: true, seqFetch: true, mayNo: true}, fmt.Sprintf("FETCH %s (FLAGS UID)", smDrawSeqSet(t, len(c.view))))
		m.checkNo(t, c, done)
	}
}

func (m *smModel) actSearch(t *rapid.T) {
	c := m.drawConn(t)
	byUID := rapid.Bool().Draw(t, "by uid")
	key := rapid.SampledFrom([]string{"ALL", "UNSEEN", "DELETED"}).Draw(t, "criterion")
	// Expected result, when the client's view is known to equal the store's.
	var want []uint32
	clean := m.clean(t, c)
	if clean {
		snap := m.snapshot(t, c.mailbox)
		fl := m.storeFlags(t, snap)
		for i, u := range snap.UIDs {
			f := fl[u]
			hit := key == "ALL" || key == "UNSEEN" && !slices.Contains(f, `\Seen`) || key == "DELETED" && slices.Contains(f, `\Deleted`)
			if hit {
				if byUID {
					want = append(want, u)
				} else {
					want = append(want, uint32(i+1))
				}
			}
		}
	}
	line, mode := "SEARCH "+key, cmdMode{noExpunge: true}
	if byUID {
		line, mode = "UID SEARCH "+key, cmdMode{}
	}
	untagged, _ := m.cmd(t, c, mode, line)
	var got []uint32
	n := len(c.view)
	for _, r := range untagged {
		if r.Status != "" || len(r.Data) == 0 || !strings.EqualFold(r.Data[0].S, "SEARCH") {
			continue
		}
		for _, tk := range r.Data[1:] {
			v, ok := smNum(tk.S)
			if !ok {
				t.Fatalf("%s: bad SEARCH result %q", c.name, r.Raw)
			}
			if !byUID && (v < 1 || int(v) > n) {
				t.Fatalf("%s: SEARCH result %d outside the client's view of %d messages", c.name, v, n)
			}
			got = append(got, v)
		}
	}
	slices.Sort(got)
	if clean && !slices.Equal(got, want) {
		t.Fatalf("%s: %s = %v, the store says %v (view %s)", c.name, line, got, want, c.viewString())
	}
}

func (m *smModel) actStatus(t *rapid.T) {
	c := m.drawConn(t)
	box := rapid.SampledFrom([]string{"INBOX", "Trash", "Unread", "All Mail"}).Draw(t, "mailbox")
	// STATUS answers from the process's cache while the mailbox was not
	// signalled (store/statuscache.go): exact once the other process's
	// notifications have arrived.
	m.barrier(t)
	untagged, _ := m.cmd(t, c, cmdMode{}, fmt.Sprintf("STATUS %s (MESSAGES UIDNEXT UIDVALIDITY)", imaptest.Quote(box)))
	for _, r := range untagged {
		if r.Status != "" || len(r.Data) < 3 || !strings.EqualFold(r.Data[0].S, "STATUS") {
			continue
		}
		items := r.Data[2].L
		for i := 0; i+1 < len(items); i += 2 {
			if strings.EqualFold(items[i].S, "UIDVALIDITY") {
				v, _ := smNum(items[i+1].S)
				m.sawValidity(t, box, v)
			}
		}
		for i := 0; i+1 < len(items); i += 2 {
			v, _ := smNum(items[i+1].S)
			switch strings.ToUpper(items[i].S) {
			case "UIDNEXT":
				m.sawUIDNext(t, box, v)
			case "MESSAGES":
				if snap := m.snapshot(t, box); int(v) != len(snap.UIDs) {
					t.Fatalf("STATUS %s MESSAGES %d, the store has %d", box, v, len(snap.UIDs))
				}
			}
		}
	}
}

// barrier waits until both server processes have received the
// notifications of every change committed so far. A session reads the store
// only when its mailbox was signalled (issue 15); a change made through the
// other process is signalled through LISTEN, so a sync point shows it once
// that notification has arrived: the barrier waits for that, nothing more
// (a change through the same process is signalled before its command
// answers).
func (m *smModel) barrier(t *rapid.T) {
	for _, st := range m.env.st {
		if err := st.Barrier(context.Background()); err != nil {
			t.Fatalf("barrier: %v", err)
		}
	}
}

// actSync is the sync point: CHECK on every session, then each view must equal
// the store; then every session learns its whole view again by sequence
// number, which must agree with what it knew.
func (m *smModel) actSync(t *rapid.T) {
	m.barrier(t)
	for _, c := range m.conns {
		m.cmd(t, c, cmdMode{}, "CHECK")
	}
	for _, c := range m.conns {
		m.checkSynced(t, c)
	}
	for _, c := range m.conns {
		if len(c.view) > 0 {
			m.cmd(t, c, cmdMode{noExpunge: true, seqFetch: true}, "FETCH 1:* (UID FLAGS)")
		}
		m.checkSynced(t, c)
	}
}

// ---- the store's side ----

func (m *smModel) snapshot(t *rapid.T, box string) *store.Snapshot {
	snap, err := m.env.st[0].Select(context.Background(), m.userID, box, true)
	if err != nil {
		t.Fatalf("store select %s: %v", box, err)
	}
	return snap
}

func (m *smModel) storeFlags(t *rapid.T, snap *store.Snapshot) map[uint32][]string {
	out := map[uint32][]string{}
	if len(snap.UIDs) == 0 {
		return out
	}
	err := m.env.st[0].Fetch(context.Background(), snap.Mailbox.Box(), snap.UIDs, store.FetchCols{Flags: true}, func(r *store.FetchRow) error {
		f := []string{}
		for _, x := range []struct {
			on   bool
			name string
		}{{r.Flags.Seen, `\Seen`}, {r.Flags.Answered, `\Answered`}, {r.Flags.Flagged, `\Flagged`}, {r.Flags.Deleted, `\Deleted`}, {r.Flags.Draft, `\Draft`}} {
			if x.on {
				f = append(f, x.name)
			}
		}
		f = append(f, r.Flags.Keywords...)
		slices.Sort(f)
		out[r.UID] = f
		return nil
	})
	if err != nil {
		t.Fatalf("store fetch: %v", err)
	}
	return out
}

// checkSynced: right after a CHECK (which allows EXPUNGE and reads the store)
// the client's view must be the store's membership of the mailbox, and the
// flags the client was told must be the store's (rfc3501.txt:1145-1149: "A
// server MUST send mailbox size updates automatically"; an EXPUNGE may be
// withheld only during FETCH, STORE and SEARCH, rfc3501.txt:4053-4059, and
// CHECK is none of them; NOOP is not a sync point for the session's own
// changes in a view, README "Own changes in a view").
func (m *smModel) checkSynced(t *rapid.T, c *smConn) {
	snap := m.snapshot(t, c.mailbox)
	if snap.Mailbox.UIDValidity != c.validity {
		t.Fatalf("%s: UIDVALIDITY %d, the store has %d", c.name, c.validity, snap.Mailbox.UIDValidity)
	}
	if len(c.view) != len(snap.UIDs) {
		t.Fatalf("%s: after CHECK the client has %d messages, the store has %d in %s\nclient: %s\nstore:  %v", c.name, len(c.view), len(snap.UIDs), c.mailbox, c.viewString(), snap.UIDs)
	}
	fl := m.storeFlags(t, snap)
	for i, e := range c.view {
		u := snap.UIDs[i]
		if e.uid != 0 && e.uid != u {
			t.Fatalf("%s: after CHECK message %d is UID %d for the client, UID %d in the store\nclient: %s\nstore:  %v", c.name, i+1, e.uid, u, c.viewString(), snap.UIDs)
		}
		if e.flagsKnown && !slices.Equal(e.flags, fl[u]) {
			t.Fatalf("%s: after CHECK the client believes UID %d has flags %v, the store has %v (flag changes must be reported, DESIGN \"Notifications\")", c.name, u, e.flags, fl[u])
		}
	}
}

// clean reports whether the client knows every UID of its view and the view
// equals the store's membership (so a SEARCH result is fully predictable).
func (m *smModel) clean(t *rapid.T, c *smConn) bool {
	snap := m.snapshot(t, c.mailbox)
	if len(snap.UIDs) != len(c.view) {
		return false
	}
	for i, e := range c.view {
		if e.uid != snap.UIDs[i] {
			return false
		}
	}
	return true
}
