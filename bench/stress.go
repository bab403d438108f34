package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"

	"decimail/internal/dovecot"
	"decimail/internal/imaptest"
)

// The "many sessions on one account" line (issue 13): Sessions concurrent
// sessions of one user log in at once, select one mailbox of ~1,000 messages
// and each runs, for Duration, commands one at a time as real clients send
// them, picked uniformly at random from StressKinds. Ours runs as production
// does (Durable: fsync and synchronous_commit on, `decimail serve` as its
// own process, bcrypt of the default cost); Dovecot with a BLF-CRYPT
// password of the same cost.

// StressMailbox is the mailbox the sessions share.
const StressMailbox = "Stress"

// StressKinds are the commands of the mix, in report order. FETCH, STORE
// and SEARCH name messages by UID or, one time in two, by sequence number
// (numbers the session's state checker knows are valid): during those
// the server must not send EXPUNGE (rfc3501.txt:4053), which only the
// sequence-number forms can show.
var StressKinds = []string{"SELECT", "FETCH", "STORE", "APPEND", "EXPUNGE", "SEARCH"}

// StressConfig says what one run of the line does.
type StressConfig struct {
	Sessions int           // concurrent sessions (50)
	Duration time.Duration // of the command phase (60 s)
	Messages int           // corpus messages loaded into Stress (1,000)
	Seed     uint64        // corpus seed
	// Diagnose, if set, samples Postgres and profiles `decimail serve`
	// during our run (stress_diag.go) and writes what it found to Log.
	Diagnose *StressDiagnosis
	// OursOnly skips Dovecot (while working on ours; the line's figures
	// always come from runs of both).
	OursOnly bool
	// SetupSQL runs on our loaded database before the server starts (e.g.
	// dropping an index a server built from an older commit does not know,
	// for a before/after comparison with DECIMAIL_BENCH_SERVE_BIN).
	SetupSQL []string
	Log      func(format string, args ...any)
}

func (c *StressConfig) defaults() {
	if c.Sessions <= 0 {
		c.Sessions = 50
	}
	if c.Duration <= 0 {
		c.Duration = 60 * time.Second
	}
	if c.Messages <= 0 {
		c.Messages = 1000
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.Log == nil {
		c.Log = func(string, ...any) {}
	}
}

// StressResult is one server's run.
type StressResult struct {
	Commands int                  // completed in the command phase (the \Deleted STORE before EXPUNGE included)
	Elapsed  time.Duration        // of the command phase
	Lat      map[string][]float64 // kind -> per-command latencies in ms, sorted
	Login    []float64            // LOGIN latencies of the concurrent logins, ms, sorted
	Errors   int                  // NO, BAD and disconnects
	ErrText  []string             // the first few
	CPU      float64              // server CPU seconds (every process of it) in the command phase

	// ExpungeIssued counts tagged NO [EXPUNGEISSUED] (not errors: a
	// sequence number naming a message another session expunged,
	// rfc5530.txt:202-205 "Someone else has issued an EXPUNGE").
	ExpungeIssued int
	// State are the protocol-state errors the sessions' checkers found
	// (imaptest.State), by class; StateText the first few.
	State     map[string]int
	StateText []string
}

// StateErrors is the number of protocol-state errors of every class.
func (r *StressResult) StateErrors() int {
	n := 0
	for _, v := range r.State {
		n += v
	}
	return n
}

// Rate is commands per second.
func (r *StressResult) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Commands) / r.Elapsed.Seconds()
}

// stressMsg is the APPENDed message (~600 octets), unique by Message-ID.
func stressMsg(session, n int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: Stress Sender <stress%d@example.com>\r\nTo: u@bench.test\r\n", session)
	fmt.Fprintf(&b, "Subject: stress %d/%d\r\nDate: Mon, 2 Nov 2026 10:%02d:%02d +0000\r\n", session, n, n/60%60, n%60)
	fmt.Fprintf(&b, "Message-ID: <stress-%d-%d-%d@example.com>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n", session, n, time.Now().UnixNano())
	for range 6 {
		b.WriteString("A small message appended by the many-sessions benchmark, one of many.\r\n")
	}
	return b.Bytes()
}

// liveUIDs are the mailbox's messages as the sessions know them: seeded by
// UID SEARCH ALL, grown by APPENDUID, shrunk by the sessions' own EXPUNGEs.
// The UIDs a command names are drawn from it, as a client names messages it
// has listed: the mailbox stays near its size (APPEND and EXPUNGE balance),
// and commands reach messages, not the gaps between them.
type liveUIDs struct {
	mu   sync.Mutex
	uids []uint32
	at   map[uint32]int // index in uids
}

func (l *liveUIDs) add(u uint32) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.at[u]; !ok {
		l.at[u] = len(l.uids)
		l.uids = append(l.uids, u)
	}
}

// pick returns a random live UID (0 if none); take also removes it.
func (l *liveUIDs) pick(r *rand.Rand, take bool) uint32 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.uids) == 0 {
		return 0
	}
	i := r.IntN(len(l.uids))
	u := l.uids[i]
	if take {
		last := l.uids[len(l.uids)-1]
		l.uids[i], l.at[last] = last, i
		l.uids = l.uids[:len(l.uids)-1]
		delete(l.at, u)
	}
	return u
}

func (l *liveUIDs) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.uids)
}

// stressSession is one client of the line.
type stressSession struct {
	id   int
	c    *imaptest.Client
	rng  *rand.Rand
	live *liveUIDs
	plus bool // LITERAL+
	n    int

	lat      map[string][]float64
	commands int
	errs     []string
	dead     bool
	expIss   int
	st       imaptest.State // the session's protocol state, checked
}

var appendUIDCode = []byte("[APPENDUID ")

// noteAppend adds the UID of an APPEND's "[APPENDUID validity uid]".
func (s *stressSession) noteAppend(line []byte) {
	if u, ok := appendUIDOf(line); ok {
		s.live.add(u)
	}
}

// appendUIDOf is the UID of a tagged line's "[APPENDUID validity uid]"
// (one message appended).
func appendUIDOf(line []byte) (uint32, bool) {
	i := bytes.Index(line, appendUIDCode)
	if i < 0 {
		return 0, false
	}
	f := bytes.Fields(line[i+len(appendUIDCode):])
	if len(f) < 2 {
		return 0, false
	}
	u, err := strconv.ParseUint(string(bytes.TrimRight(f[1], "]")), 10, 32)
	return uint32(u), err == nil
}

// do sends cmd and reads to its tagged response, passing untagged ones to
// fn; it returns the tagged line. A NO or BAD is an error (counted); a
// broken connection ends the session.
func (s *stressSession) do(cmd string, fn func(*imaptest.Raw)) ([]byte, error) {
	if s.dead {
		return nil, errors.New("disconnected")
	}
	tag := s.c.Queue(cmd)
	if err := s.c.Flush(); err != nil {
		s.fail(cmd, err, true)
		return nil, err
	}
	s.st.Begin(cmd)
	for {
		r, err := s.c.ReadRaw()
		if err != nil {
			s.fail(cmd, err, true)
			return nil, err
		}
		if !r.Tagged(tag) {
			s.st.ObserveRaw(r)
			if fn != nil {
				fn(r)
			}
			continue
		}
		line := r.Line()
		st := line[len(tag)+1:]
		if !bytes.HasPrefix(st, []byte("OK")) {
			s.st.End(string(bytes.Fields(st)[0]))
			err := fmt.Errorf("%s", line)
			if bytes.Contains(st, []byte("[EXPUNGEISSUED]")) {
				s.expIss++
				return nil, err
			}
			s.fail(cmd, err, false)
			return nil, err
		}
		s.st.End("OK")
		return bytes.Clone(line), nil
	}
}

func (s *stressSession) fail(cmd string, err error, dead bool) {
	if len(cmd) > 60 {
		cmd = cmd[:60] + "…"
	}
	s.errs = append(s.errs, fmt.Sprintf("session %d: %q: %v", s.id, cmd, err))
	if dead {
		s.dead = true
		s.c.Close()
	}
}

func (s *stressSession) timed(kind, cmd string, fn func(*imaptest.Raw)) []byte {
	t0 := time.Now()
	line, err := s.do(cmd, fn)
	s.commands++
	if err == nil {
		s.lat[kind] = append(s.lat[kind], float64(time.Since(t0))/float64(time.Millisecond))
	}
	return line
}

// uidRange is the range of n UIDs from a random live one.
func (s *stressSession) uidRange(n int) string {
	lo := max(s.live.pick(s.rng, false), 1)
	if n == 1 {
		return strconv.Itoa(int(lo))
	}
	return fmt.Sprintf("%d:%d", lo, int(lo)+n-1)
}

// seqRange is, one time in two, a range of up to n sequence numbers the
// session has (its state checker's count), else "".
func (s *stressSession) seqRange(n int) string {
	have := s.st.Len()
	if have == 0 || s.rng.IntN(2) == 0 {
		return ""
	}
	lo := 1 + s.rng.IntN(have)
	hi := min(lo+n-1, have)
	if hi == lo {
		return strconv.Itoa(lo)
	}
	return fmt.Sprintf("%d:%d", lo, hi)
}

func (s *stressSession) selectBox() {
	s.timed("SELECT", "SELECT "+StressMailbox, nil)
}

var stressFlags = []string{`\Seen`, `\Flagged`, `$Foo`}

// step runs one command of the mix.
func (s *stressSession) step() {
	switch kind := StressKinds[s.rng.IntN(len(StressKinds))]; kind {
	case "SELECT":
		s.selectBox()
	case "FETCH":
		if set := s.seqRange(20); set != "" {
			s.timed(kind, "FETCH "+set+" (UID FLAGS RFC822.SIZE ENVELOPE)", nil)
			return
		}
		s.timed(kind, "UID FETCH "+s.uidRange(20)+" (UID FLAGS RFC822.SIZE ENVELOPE)", nil)
	case "STORE":
		op := "+"
		if s.rng.IntN(2) == 0 {
			op = "-"
		}
		args := " " + op + "FLAGS (" + stressFlags[s.rng.IntN(len(stressFlags))] + ")"
		if set := s.seqRange(1 + s.rng.IntN(5)); set != "" {
			s.timed(kind, "STORE "+set+args, nil)
			return
		}
		s.timed(kind, "UID STORE "+s.uidRange(1+s.rng.IntN(5))+args, nil)
	case "APPEND":
		s.n++
		msg := stressMsg(s.id, s.n)
		if !s.plus {
			// Synchronising literal: Stream waits for the continuation.
			t0 := time.Now()
			s.st.Begin("APPEND")
			err := s.c.Stream(fmt.Sprintf("APPEND %s {%d}\r\n%s", StressMailbox, len(msg), msg), s.st.ObserveRaw)
			s.st.End(map[bool]string{true: "OK", false: "NO"}[err == nil])
			s.commands++
			if err != nil {
				var se *imaptest.StatusError
				s.fail("APPEND", err, !errors.As(err, &se))
				return
			}
			s.lat[kind] = append(s.lat[kind], float64(time.Since(t0))/float64(time.Millisecond))
			return
		}
		if line := s.timed(kind, fmt.Sprintf("APPEND %s {%d+}\r\n%s", StressMailbox, len(msg), msg), nil); line != nil {
			s.noteAppend(line)
		}
	case "EXPUNGE":
		// A message of the mailbox, no longer drawn by the others.
		u := max(s.live.pick(s.rng, true), 1)
		s.do(fmt.Sprintf(`UID STORE %d +FLAGS.SILENT (\Deleted)`, u), nil)
		s.commands++
		s.timed(kind, "EXPUNGE", nil)
	case "SEARCH":
		if s.rng.IntN(2) == 0 {
			s.timed(kind, "SEARCH UNSEEN", nil)
			return
		}
		s.timed(kind, "UID SEARCH UNSEEN", nil)
	}
}

// RunStress runs the line against t (whose StressMailbox is loaded); cpu,
// when not nil, reads the server's CPU seconds (before and after the
// command phase).
func RunStress(t *Target, cfg StressConfig, cpu func() float64) (*StressResult, error) {
	cfg.defaults()
	n := cfg.Sessions
	live := &liveUIDs{at: map[uint32]int{}}
	sessions := make([]*stressSession, n)
	for i := range n {
		c, err := imaptest.Dial(t.Addr)
		if err != nil {
			for _, s := range sessions[:i] {
				s.c.Close()
			}
			return nil, fmt.Errorf("connect %d: %w", i, err)
		}
		c.Timeout = 0
		c.Conn().SetDeadline(time.Now().Add(cfg.Duration + 5*time.Minute))
		sessions[i] = &stressSession{id: i, c: c, rng: rand.New(rand.NewPCG(uint64(i), cfg.Seed)), live: live,
			lat: map[string][]float64{}}
	}
	defer func() {
		for _, s := range sessions {
			s.c.Close()
		}
	}()
	// Phase 1: every session logs in at once (timed), then selects.
	login := make([]float64, n)
	var wg sync.WaitGroup
	for i, s := range sessions {
		wg.Go(func() {
			t0 := time.Now()
			if _, err := s.do("LOGIN "+imaptest.Quote(t.User)+" "+imaptest.Quote(t.Pass), nil); err != nil {
				s.dead = true
				return
			}
			login[i] = float64(time.Since(t0)) / float64(time.Millisecond)
			if !s.c.Caps["LITERAL+"] {
				s.do("CAPABILITY", nil)
			}
			s.plus = s.c.Caps["LITERAL+"]
			s.do("SELECT "+StressMailbox, nil)
		})
	}
	wg.Wait()
	res := &StressResult{Lat: map[string][]float64{}}
	for i, s := range sessions {
		if !s.dead && len(s.errs) == 0 {
			res.Login = append(res.Login, login[i])
		}
	}
	slices.Sort(res.Login)
	// The messages the sessions start from.
	if s := sessions[0]; !s.dead {
		s.do("UID SEARCH ALL", func(r *imaptest.Raw) {
			if bytes.HasPrefix(r.Bytes, []byte("* SEARCH")) {
				for _, f := range bytes.Fields(r.Bytes)[2:] {
					if u, err := strconv.ParseUint(string(f), 10, 32); err == nil {
						live.add(uint32(u))
					}
				}
			}
		})
	}
	if live.len() == 0 {
		return nil, errors.New("UID SEARCH ALL found no messages to work on")
	}
	// Phase 2: the mix, from the same moment in every session.
	var cpu0 float64
	if cpu != nil {
		cpu0 = cpu()
	}
	t0 := time.Now()
	deadline := t0.Add(cfg.Duration)
	for _, s := range sessions {
		wg.Go(func() {
			for !s.dead && time.Now().Before(deadline) {
				s.step()
			}
		})
	}
	wg.Wait()
	res.Elapsed = time.Since(t0)
	if cpu != nil {
		res.CPU = cpu() - cpu0
	}
	for _, s := range sessions {
		res.Commands += s.commands
		for k, v := range s.lat {
			res.Lat[k] = append(res.Lat[k], v...)
		}
		res.Errors += len(s.errs)
		for _, e := range s.errs {
			if len(res.ErrText) < 5 {
				res.ErrText = append(res.ErrText, e)
			}
		}
		res.ExpungeIssued += s.expIss
		for k, v := range s.st.Errors {
			if res.State == nil {
				res.State = map[string]int{}
			}
			res.State[k] += v
		}
		for _, e := range s.st.Samples {
			if len(res.StateText) < 5 {
				res.StateText = append(res.StateText, fmt.Sprintf("session %d: %s", s.id, e))
			}
		}
	}
	for _, v := range res.Lat {
		slices.Sort(v)
	}
	return res, nil
}

// StressLineName is the line's name in the table.
func StressLineName(cfg StressConfig) string {
	cfg.defaults()
	return fmt.Sprintf("%d sessions, random command mix on one mailbox (%d messages), %v", cfg.Sessions, cfg.Messages, cfg.Duration)
}

// StressRows turns both servers' results into table rows.
func StressRows(cfg StressConfig, ours, dov *StressResult, oursErr, dovErr error) []Row {
	name := StressLineName(cfg)
	var rows []Row
	add := func(r Row, o, d func(*StressResult) float64) {
		if ours != nil {
			r.Ours = o(ours)
		}
		r.OursErr = errString(oursErr)
		if dov != nil {
			r.Dovecot = d(dov)
		}
		r.DovecotErr = errString(dovErr)
		rows = append(rows, r)
	}
	rate := func(r *StressResult) float64 { return r.Rate() }
	add(Row{Name: name + ": commands/s", Stat: "rate", Unit: "cmd/s", Goal: "ratio ≥ 1.0"}, rate, rate)
	for _, k := range StressKinds {
		for _, st := range []string{"p50", "p99"} {
			p := 50.0
			goal := ""
			if st == "p99" {
				p, goal = 99, "ratio ≤ 2.0"
			}
			f := func(r *StressResult) float64 { return percentile(r.Lat[k], p) }
			add(Row{Name: fmt.Sprintf("%s: %s (%s)", name, k, st), Stat: st, Unit: "ms", Goal: goal}, f, f)
		}
	}
	for _, st := range []string{"p50", "p99"} {
		p := 50.0
		if st == "p99" {
			p = 99
		}
		f := func(r *StressResult) float64 { return percentile(r.Login, p) }
		add(Row{Name: fmt.Sprintf("%s: LOGIN of the %d at once, bcrypt cost %d (%s)", name, cfg.Sessions, bcrypt.DefaultCost, st), Stat: st, Unit: "ms"}, f, f)
	}
	errs := func(r *StressResult) float64 { return float64(r.Errors) }
	add(Row{Name: name + ": errors (NO, BAD, disconnects)", Stat: "count", Unit: "errors", Goal: "= 0"}, errs, errs)
	state := func(r *StressResult) float64 { return float64(r.StateErrors()) }
	add(Row{Name: name + ": protocol-state errors (each session's imaptest.State)", Stat: "count", Unit: "errors", Goal: "= 0"}, state, state)
	return rows
}

// StressNotes are the line's notes: CPU per command, command counts, errors.
func StressNotes(cfg StressConfig, ours, dov *StressResult) []string {
	var notes []string
	desc := func(who string, r *StressResult) string {
		if r == nil {
			return ""
		}
		s := fmt.Sprintf("%s: %d commands in %v, server CPU %.1f s (%.2f ms per command)", who, r.Commands,
			r.Elapsed.Round(time.Millisecond), r.CPU, r.CPU/float64(max(r.Commands, 1))*1000)
		for _, k := range StressKinds {
			s += fmt.Sprintf(", %s %d", k, len(r.Lat[k]))
		}
		for _, e := range r.ErrText {
			s += "; error: " + e
		}
		if r.ExpungeIssued > 0 {
			s += fmt.Sprintf("; %d NO [EXPUNGEISSUED] (not errors)", r.ExpungeIssued)
		}
		s += fmt.Sprintf("; protocol-state errors %d", r.StateErrors())
		for _, k := range slices.Sorted(maps.Keys(r.State)) {
			s += fmt.Sprintf(", %s %d", k, r.State[k])
		}
		for _, e := range r.StateText {
			s += "; state error: " + e
		}
		return s
	}
	n := fmt.Sprintf("Many sessions (%s): ", StressLineName(cfg))
	n += fmt.Sprintf("Decimail's failed-login allowances (auth_addr_free, auth_user_free) are raised to %d for this line: "+
		"the limiter counts a login as failed until it succeeds, so with the defaults (10 per address, 20 per account) "+
		"40 of the 50 concurrent logins from 127.0.0.1 were refused, and with the first raised, the logins beyond the "+
		"20th waited 1-8 s (LOGIN p50 8.6 s). ", stressAuthFree(cfg))
	if d := desc("Decimail (`decimail serve` + its Postgres)", ours); d != "" {
		n += d + ". "
	}
	if d := desc("Dovecot (all its processes)", dov); d != "" {
		n += d + "."
	}
	return append(notes, n)
}

// stressAuthFree is the failed-login allowance of the line's account and
// address (see CompareStress).
func stressAuthFree(cfg StressConfig) int { return max(100, 2*cfg.Sessions) }

// stressDovecot starts a private Dovecot whose account has a BLF-CRYPT
// password of bcrypt's default cost (what Decimail stores), so that both
// servers' logins cost the same.
func stressDovecot() (*Dovecot, error) {
	h, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.DefaultCost)
	if err != nil {
		return nil, err
	}
	o := dovecotOptions
	o.Name = "decimail-stress"
	o.Accounts = []dovecot.Account{{User: "u", Pass: "pw", Hash: "{BLF-CRYPT}" + string(h)}}
	srv, err := dovecot.Start(o)
	if err != nil {
		return nil, err
	}
	d := &Dovecot{Dir: srv.Dir, srv: srv}
	d.Addr, d.NotifyAddr, d.Name, d.User, d.Pass = srv.Addr, srv.Addr, "dovecot", "u", "pw"
	d.Target.Stop = d.Close
	return d, nil
}

// createAndLoad creates the mailbox over IMAP and appends msgs to it.
func createAndLoad(t *Target, mailbox string, msgs []Message) error {
	c, err := Login(t.Addr, t.User, t.Pass)
	if err != nil {
		return err
	}
	err = c.Stream("CREATE "+mailbox, nil)
	c.Logout()
	if err != nil {
		return err
	}
	return LoadIMAP(t.Addr, t.User, t.Pass, mailbox, msgs)
}

// CompareStress is the line side by side: ours on a durable cluster of its
// own (started, loaded, served and stopped here), then Dovecot (a private
// instance of its own); both loaded with the same corpus slice in Stress.
// The servers run one after the other, never at once.
func CompareStress(ctx context.Context, cfg StressConfig) ([]Row, []string, error) {
	cfg.defaults()
	msgs := Corpus(cfg.Messages, cfg.Seed)
	var ours, dov *StressResult
	var oursErr, dovErr error

	settings := []string(nil)
	if cfg.Diagnose != nil {
		settings = cfg.Diagnose.settings()
	}
	// The failed-login limiter (store.AuthPolicy) counts every attempt as
	// failed until it succeeds: with its default allowances, 40 of the 50
	// concurrent logins from 127.0.0.1 were refused ("Too many failed
	// logins", auth_addr_free 10; none had failed), and with that one
	// raised, the logins beyond the 20th waited 1, 2, 4, 8 s
	// (auth_user_free 20): LOGIN p50 8.6 s. The line measures the server
	// under load, not the limiter: both allowances are raised above the
	// number of sessions (StressNotes says so).
	free := strconv.Itoa(stressAuthFree(cfg))
	cfgTable := map[string]string{"auth_addr_free": free, "auth_user_free": free}
	d, err := StartDurable(ctx, DurableOptions{Settings: settings, Config: cfgTable})
	if err != nil {
		return nil, nil, fmt.Errorf("durable cluster: %w", err)
	}
	defer d.Close()
	t0 := time.Now()
	if err := d.LoadFolder(ctx, StressMailbox, msgs); err != nil {
		return nil, nil, fmt.Errorf("load ours: %w", err)
	}
	cfg.Log("stress: decimail: %d messages delivered into %s in %v (durable cluster)", len(msgs), StressMailbox, time.Since(t0).Round(time.Millisecond))
	for _, q := range cfg.SetupSQL {
		if _, err := d.Store.Pool().Exec(ctx, q); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", q, err)
		}
	}
	var args []string
	if cfg.Diagnose != nil {
		var err error
		if cfg.Diagnose.pprofAddr, err = freeLoopback(); err != nil {
			return nil, nil, err
		}
		if cfg.Diagnose.adminAddr, err = freeLoopback(); err != nil {
			return nil, nil, err
		}
		args = append(args, "-pprof", cfg.Diagnose.pprofAddr, "-admin", cfg.Diagnose.adminAddr)
	}
	p, err := d.Serve(ctx, args...)
	if err != nil {
		return nil, nil, err
	}
	pm, err := d.PostmasterPID(ctx)
	if err != nil {
		return nil, nil, err
	}
	oursCPU := func() float64 { return ProcessTreeCPU(p.PID()) + ProcessTreeCPU(pm) }
	var stopDiag func()
	if cfg.Diagnose != nil {
		stopDiag = cfg.Diagnose.start(ctx, d, cfg)
	}
	ours, oursErr = RunStress(&p.Target, cfg, oursCPU)
	if stopDiag != nil {
		stopDiag()
	}
	if ours != nil {
		cfg.Log("stress: decimail: %.0f cmd/s, %d errors %v, %d protocol-state errors %v %v", ours.Rate(), ours.Errors, ours.ErrText,
			ours.StateErrors(), ours.State, ours.StateText)
	}
	if oursErr != nil || (ours != nil && ours.Errors > 0) {
		cfg.Log("decimail serve log:\n%s", p.Log())
	}
	if cfg.Diagnose != nil {
		// The whole log (with DECIMAIL_SQL_TRACE=1: every statement).
		cfg.Diagnose.keepLog(p, cfg.Log)
	}
	p.Close()
	d.Close()

	if cfg.OursOnly {
		dovErr = errors.New("not measured (OursOnly)")
	} else if DovecotVersion() == "" {
		dovErr = errors.New("dovecot is not installed")
	} else if dv, err := stressDovecot(); err != nil {
		dovErr = err
	} else {
		defer dv.Close()
		t0 = time.Now()
		if dovErr = createAndLoad(&dv.Target, StressMailbox, msgs); dovErr == nil {
			cfg.Log("stress: dovecot: %d messages appended into %s in %v", len(msgs), StressMailbox, time.Since(t0).Round(time.Millisecond))
			dov, dovErr = RunStress(&dv.Target, cfg, func() float64 { return ProcessTreeCPU(dv.srv.PID()) })
			if dov != nil {
				cfg.Log("stress: dovecot: %.0f cmd/s, %d errors %v, %d protocol-state errors %v %v", dov.Rate(), dov.Errors, dov.ErrText,
					dov.StateErrors(), dov.State, dov.StateText)
			}
		}
	}
	return StressRows(cfg, ours, dov, oursErr, dovErr), StressNotes(cfg, ours, dov), nil
}
