package imapd

// FuzzServer: whole IMAP sessions, over real sockets, against one server on
// a real Postgres database (one per fuzz process, reused by every input).
//
// An input is a starting state (its first octet) and the octets the client
// then sends, unmodified. Each input checks:
//
//  1. no panic and no SERVERBUG: no status line carries [SERVERBUG]
//     (rfc5530.txt:231) and the server logs nothing at ERROR level (a
//     recovered handler panic, a failed command, a failed poll);
//  2. no untagged BAD for a command whose tag the server's own reader reads
//     ("the associated command can not be
//     determined", rfc3501.txt:3687): the client re-reads what it sent with ReadCommand
//     in lock step with the responses (fuzz_model_test.go), so every
//     completion is matched to its command;
//  3. no data of another user: user "eve" has mail, mailboxes, keywords and
//     a view carrying fuzzMarker; no response to "u" may contain it (unless
//     the input itself does);
//  4. the server keeps answering: once the server has read everything and
//     waits (trackConn), the probe finishes whatever is pending (a command
//     line, a literal, IDLE's DONE) and sends "zz NOOP", which must be
//     answered; a new connection must LOGIN and NOOP; and the session must
//     end when the client goes away.
//
// The first octet: the low 6 bits modulo fzStates pick the state; bit 6
// has "another session" change u's INBOX once the state is reached (a
// delivery, an expunge, flag changes: the session learns of them by
// notification, in the middle of the input); the high bit closes the
// connection abruptly after the input instead of probing (the new
// connection still checks the server). The APPEND states take the
// literal's size from the second octet: the rest of the input is the
// literal and what follows it.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"decimail/conformance"
	"decimail/server/pgrun"
	"decimail/server/store"
)

// Starting states of FuzzServer.
const (
	fzNotAuth       = iota // greeting read
	fzAuth                 // LOGIN done
	fzSelected             // SELECT INBOX
	fzExamined             // EXAMINE INBOX
	fzView                 // SELECT of a query mailbox
	fzIdle                 // IDLE in INBOX, "+ idling" read
	fzIdleAuth             // IDLE in the authenticated state
	fzAppend               // APPEND INBOX {n}, "+" read (INBOX selected)
	fzAppendNonSync        // APPEND Drafts {n+} sent (LITERAL+)
	fzAuthenticate         // AUTHENTICATE PLAIN, "+ " read
	fzTLS                  // after STARTTLS and the handshake
	fzTLSSelected          // after STARTTLS, LOGIN and SELECT INBOX
	fzStates
)

// fuzzMarker is in everything of eve's; user u must never see it.
const fuzzMarker = "EVE-SECRET-7f3a"

const (
	fzMaxInput = 16 << 10
	fzDeadline = 5 * time.Second
)

// fuzzLimits are the server's limits in FuzzServer: small, so the fuzzer
// reaches them; literal limits equal, so the client's model of the reader
// does not depend on the session's state.
var fuzzLimits = Limits{MaxLine: 2048, MaxLiteral: 4096, MaxAppend: 4096}

func FuzzServer(f *testing.F) {
	for _, s := range fuzzServerSeeds(f) {
		f.Add(s)
	}
	if fuzzCoordinator() {
		// The coordinator only hands inputs to the workers: no server.
		f.Fuzz(func(*testing.T, []byte) {})
		return
	}
	w := newFuzzWorld(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		w.run(t, data)
	})
}

// fuzzCoordinator reports whether this process coordinates fuzzing workers
// (go test -fuzz) rather than running inputs itself.
func fuzzCoordinator() bool {
	fz, wk := flag.Lookup("test.fuzz"), flag.Lookup("test.fuzzworker")
	return fz != nil && fz.Value.String() != "" && (wk == nil || wk.Value.String() != "true")
}

// fuzzWorld is the server, the store and the fixture a fuzz process reuses.
type fuzzWorld struct {
	st      *store.Store
	cfg     Config
	log     *slog.Logger
	srv     *Server   // the current server
	servers []*Server // all started, the current one last
	addr    string
	logs    *logSink
	msgs    map[string][]byte // fixture messages by file name

	pristine string // fingerprint of u as built

	mu    sync.Mutex
	peers map[string]*trackConn // the server's side of each connection, by client address
}

func newFuzzWorld(tb testing.TB) *fuzzWorld {
	ctx := context.Background()
	w := &fuzzWorld{logs: &logSink{}, msgs: map[string][]byte{}, peers: map[string]*trackConn{}}
	log := slog.New(slog.NewTextHandler(w.logs, &slog.HandlerOptions{Level: slog.LevelError}))
	st, err := store.Open(ctx, pgrun.TestDB(tb), store.Options{PasswordCost: bcrypt.MinCost, Log: log,
		// The world lives through many inputs, whose failed logins add up:
		// the failed-login limiter (tested in store) must not lock it out.
		Auth: store.AuthPolicy{AddrFree: 1 << 30, UserFree: 1 << 30}})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(st.Close)
	w.st = st
	files, _ := filepath.Glob("../../scenarios/fixtures/messages/*.eml")
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			tb.Fatal(err)
		}
		w.msgs[filepath.Base(name)] = b
	}
	w.makeEve(tb)
	w.cfg = Config{
		TLS:              selfSignedTLS(tb),
		AuthFailDelay:    time.Millisecond,
		MaxLine:          fuzzLimits.MaxLine,
		MaxLiteral:       fuzzLimits.MaxLiteral,
		MaxAppendLiteral: fuzzLimits.MaxAppend,
		Disabled:         map[string]bool{"XTEST": true},
	}
	w.log = log
	if err := w.startServer(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		for _, srv := range w.servers {
			closeWithin(srv, fzDeadline)
		}
	})
	return w
}

// startServer starts a server on the store (again, after a session hung:
// inputs after it must not fail for it).
func (w *fuzzWorld) startServer() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	w.srv = New(w.cfg, w.st, w.log)
	w.servers = append(w.servers, w.srv)
	w.addr = ln.Addr().String()
	go w.srv.Serve(trackListener{ln, w})
	return nil
}

// closeWithin closes a server, not waiting longer than d for sessions
// that hang (a failure already reported).
func closeWithin(srv *Server, d time.Duration) {
	done := make(chan struct{})
	go func() { srv.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
	}
}

// makeEve creates the other user, whose data must never reach u: mail in
// folders and a view, a keyword, subscriptions, and a message sharing its
// Message-ID with one of u's.
func (w *fuzzWorld) makeEve(tb testing.TB) {
	ctx := context.Background()
	eve, err := w.st.CreateUser(ctx, "eve", "eve-pw-"+fuzzMarker+"-unguessable")
	if err != nil {
		tb.Fatal(err)
	}
	msg := func(id string) []byte {
		return []byte("From: " + fuzzMarker + " <eve-" + fuzzMarker + "@example.org>\r\nTo: eve@example.test\r\n" +
			"Subject: " + fuzzMarker + " subject\r\nDate: Mon, 2 Nov 2026 10:00:00 +0100\r\nMessage-ID: " + id +
			"\r\nReferences: <kickoff-1@example.test>\r\n\r\nbody " + fuzzMarker + "\r\n")
	}
	folder := fuzzMarker + "-folder"
	if _, err := w.st.CreateMailbox(ctx, eve.ID, folder, "", ""); err != nil {
		tb.Fatal(err)
	}
	kw := store.Flags{Flagged: true, Keywords: []string{fuzzMarker + "-kw", "work"}}
	for _, d := range []struct{ mb, id string }{{"INBOX", "<kickoff-1@example.test>"}, {"INBOX", "<eve-1@example.org>"}, {folder, "<eve-2@example.org>"}, {"Archive", "<eve-3@example.org>"}} {
		if _, err := w.st.Deliver(ctx, eve.ID, msg(d.id), store.DeliverOptions{Mailbox: d.mb, Flags: kw}); err != nil {
			tb.Fatal(err)
		}
	}
	if _, err := w.st.DefineMailbox(ctx, eve.ID, fuzzMarker+"-view", "SUBJECT "+fuzzMarker); err != nil {
		tb.Fatal(err)
	}
	if _, err := w.st.DefineMailbox(ctx, eve.ID, "Work", "KEYWORD "+fuzzMarker+"-kw"); err != nil {
		tb.Fatal(err)
	}
	if err := w.st.Subscribe(ctx, eve.ID, fuzzMarker+"-sub"); err != nil {
		tb.Fatal(err)
	}
}

// buildUser creates a user with u's fixture: INBOX as
// scenarios/fixtures/basic.fix, more folders and a view "Work".
func (w *fuzzWorld) buildUser(ctx context.Context, name string) error {
	u, err := w.st.CreateUser(ctx, name, "pw")
	if err != nil {
		return err
	}
	for _, mb := range []string{"Lists", "Lists/golang"} {
		if _, err := w.st.CreateMailbox(ctx, u.ID, mb, "", ""); err != nil {
			return err
		}
	}
	day := time.Date(2025, 6, 2, 9, 0, 0, 0, time.UTC)
	for i, m := range []struct {
		mb, file string
		flags    store.Flags
	}{
		{"INBOX", "plain.eml", store.Flags{Seen: true}},
		{"INBOX", "reply.eml", store.Flags{}},
		{"INBOX", "alternative.eml", store.Flags{Flagged: true}},
		{"INBOX", "attachment.eml", store.Flags{Seen: true, Answered: true}},
		{"INBOX", "forward.eml", store.Flags{Keywords: []string{"$Forwarded", "work"}}},
		{"Archive", "encoded.eml", store.Flags{Seen: true}},
		{"Lists/golang", "list.eml", store.Flags{}},
	} {
		o := store.DeliverOptions{Mailbox: m.mb, Flags: m.flags, InternalDate: day.AddDate(0, 0, i)}
		if _, err := w.st.Deliver(ctx, u.ID, w.msgs[m.file], o); err != nil {
			return err
		}
	}
	_, err = w.st.DefineMailbox(ctx, u.ID, "Work", "OR KEYWORD work FLAGGED")
	return err
}

// resetUser makes u the fixture again, so no input depends on what an
// earlier one did. When u's rows are as the fixture left them (fingerprint;
// a SELECT claiming \Recent is enough to differ) nothing is done;
// otherwise u is deleted and built again.
//
// This runs inside the input, not ahead in the background: coverage is
// counted for the whole process, and work that overlaps inputs by chance
// makes inputs look new to the fuzzer. The texts are indexed here for the
// same reason (the store's indexer would do it during some later input);
// messages an input appends stay unindexed, so SEARCH meets both kinds.
func (w *fuzzWorld) resetUser(t *testing.T) {
	ctx := context.Background()
	if w.pristine != "" && w.fingerprint(t) == w.pristine {
		return
	}
	if err := w.st.DeleteUser(ctx, "u"); err != nil && !errors.Is(err, store.ErrNoUser) {
		t.Fatal(err)
	}
	if err := w.buildUser(ctx, "u"); err != nil {
		t.Fatalf("building the fixture: %v", err)
	}
	if _, err := w.st.IndexTexts(ctx); err != nil {
		t.Fatal(err)
	}
	w.pristine = w.fingerprint(t)
}

// fingerprint digests every row of u's, whole rows as text, so a column
// added to the schema is covered too.
func (w *fuzzWorld) fingerprint(t *testing.T) string {
	var fp string
	err := w.st.Pool().QueryRow(context.Background(), `
		WITH u AS (SELECT * FROM users WHERE name = 'u')
		SELECT md5(concat_ws('|',
			(SELECT string_agg(x::text, ',') FROM u x),
			(SELECT string_agg(x::text, ',' ORDER BY x.id) FROM mailboxes x JOIN u ON x.user_id = u.id),
			(SELECT string_agg(x::text, ',' ORDER BY x.name) FROM subscriptions x JOIN u ON x.user_id = u.id),
			(SELECT string_agg(x::text, ',' ORDER BY x.message_id) FROM message_flags x JOIN u ON x.user_id = u.id),
			(SELECT string_agg(x::text, ',' ORDER BY x.message_id) FROM message_texts x
				JOIN messages m ON m.id = x.message_id JOIN u ON m.user_id = u.id),
			(SELECT string_agg(x.id::text, ',' ORDER BY x.id) FROM messages x JOIN u ON x.user_id = u.id),
			(SELECT string_agg(x::text, ',' ORDER BY x.mailbox_id, x.uid) FROM mailbox_messages x
				JOIN mailboxes m ON m.id = x.mailbox_id JOIN u ON m.user_id = u.id),
			(SELECT string_agg(x::text, ',' ORDER BY x.mailbox_id, x.modseq) FROM mailbox_expunges x
				JOIN mailboxes m ON m.id = x.mailbox_id JOIN u ON m.user_id = u.id),
			(SELECT string_agg(x::text, ',' ORDER BY x.address) FROM addresses x JOIN u ON x.user_id = u.id)))`).Scan(&fp)
	if err != nil {
		t.Fatal(err)
	}
	return fp
}

// run is one input.
func (w *fuzzWorld) run(t *testing.T, data []byte) {
	if w.waitSessions() != nil {
		// A session of an earlier input hangs (reported there): this
		// input gets a server of its own.
		closeWithin(w.srv, 0)
		if err := w.startServer(); err != nil {
			t.Fatal(err)
		}
	}
	w.logs.take()
	w.resetUser(t)
	state, other, abrupt := int(data[0]&0x3f)%fzStates, data[0]&0x40 != 0, data[0]&0x80 != 0
	data = data[1:]
	lit := 0
	if state == fzAppend || state == fzAppendNonSync {
		if len(data) > 0 {
			lit, data = int(data[0]), data[1:]
		}
	}
	if len(data) > fzMaxInput {
		data = data[:fzMaxInput]
	}

	s := w.dial(t)
	defer s.close()
	s.setup(state, lit)
	if other {
		w.elsewhere(t)
	}
	failed := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("state %d: %s\n%s", state, fmt.Sprintf(format, args...), s.transcript())
	}
	s.send(data)
	if abrupt {
		if err := s.check(); err != nil {
			failed("%v", err)
		}
	} else if err := s.probe(); err != nil {
		failed("%v", err)
	}
	if err := w.alive(t); err != nil {
		failed("a new connection: %v", err)
	}
	s.close()
	if err := w.waitSessions(); err != nil {
		failed("%v", err)
	}
	if l := w.logs.take(); l != "" {
		failed("the server logged errors:\n%s", l)
	}
	all := s.received()
	if os.Getenv("DECIMAIL_FUZZ_TRACE") != "" {
		t.Logf("state %d:\n%s", state, s.transcript())
	}
	for _, l := range all {
		if isServerBug(l) {
			failed("SERVERBUG: %q", l)
		}
	}
	// The marker is ASCII: compare ASCII-upper-cased, which keeps offsets
	// (strings.ToUpper rewrites invalid UTF-8 and changes lengths).
	marker := asciiUpper(fuzzMarker)
	if !strings.Contains(asciiUpper(string(data)), marker) {
		got := strings.Join(all, "\n")
		if i := strings.Index(asciiUpper(got), marker); i >= 0 {
			failed("another user's data leaked: %q", got[max(0, i-200):i+len(fuzzMarker)])
		}
	}
}

func asciiUpper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

// elsewhere changes u's INBOX as another session would: a delivery, an
// expunge, flag changes. It returns once the notification is out, so the
// fuzzed session has it pending before its input arrives.
func (w *fuzzWorld) elsewhere(t *testing.T) {
	ctx := context.Background()
	u, err := w.st.UserByName(ctx, "u")
	if err != nil {
		t.Fatal(err)
	}
	mb, err := w.st.Mailbox(ctx, u.ID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	sub := w.st.Notifier().Subscribe(u.ID, mb.ID, w.st.Notifier().Gen())
	defer sub.Close()
	if _, err := w.st.Deliver(ctx, u.ID, w.msgs["small.eml"], store.DeliverOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.st.StoreFlags(ctx, mb.Box(), []uint32{2}, store.FlagsAdd, store.Flags{Deleted: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.st.Expunge(ctx, mb.Box(), []uint32{2}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.st.StoreFlags(ctx, mb.Box(), []uint32{3, 5}, store.FlagsAdd, store.Flags{Seen: true, Keywords: []string{"$Junk"}}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-sub.C:
	case <-time.After(fzDeadline):
		t.Fatal("no notification of the changes")
	}
}

// waitSessions waits until the server has no session left.
func (w *fuzzWorld) waitSessions() error {
	deadline := time.Now().Add(fzDeadline)
	for {
		w.srv.mu.Lock()
		n := len(w.srv.conns)
		w.srv.mu.Unlock()
		if n == 0 {
			w.mu.Lock()
			clear(w.peers)
			w.mu.Unlock()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d session(s) still running %v after the client closed", n, fzDeadline)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// alive checks that a new connection gets a greeting and answers LOGIN and NOOP.
func (w *fuzzWorld) alive(t *testing.T) error {
	nc, err := net.DialTimeout("tcp", w.addr, fzDeadline)
	if err != nil {
		return err
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(fzDeadline))
	br := bufio.NewReader(nc)
	if l, err := readResp(br); err != nil || !strings.HasPrefix(l, "* OK ") {
		return fmt.Errorf("greeting %q, %v", l, err)
	}
	for _, cmd := range []string{"a LOGIN u pw", "b NOOP", "c LOGOUT"} {
		if _, err := io.WriteString(nc, cmd+"\r\n"); err != nil {
			return err
		}
		for {
			l, err := readResp(br)
			if err != nil {
				return fmt.Errorf("%s: %v", cmd, err)
			}
			if strings.HasPrefix(l, cmd[:2]) {
				if !strings.HasPrefix(l, cmd[:2]+"OK ") {
					return fmt.Errorf("%s: %q", cmd, l)
				}
				break
			}
		}
	}
	return nil
}

// fzSession is the fuzzed connection, client side.
type fzSession struct {
	t    *testing.T
	w    *fuzzWorld
	raw  *trackConn // the client's TCP connection
	peer *trackConn // the server's side of it
	nc   net.Conn   // raw, or TLS over raw
	br   *bufio.Reader

	mu    sync.Mutex
	lines []string      // every response line, literals folded in
	done  chan struct{} // closed when the connection is closed
	sent  []byte        // everything sent, for failure reports

	in   []byte // sent since the model started
	base int    // index of the first line the model sees
}

func (w *fuzzWorld) dial(t *testing.T) *fzSession {
	t.Helper()
	nc, err := net.DialTimeout("tcp", w.addr, fzDeadline)
	if err != nil {
		t.Fatal(err)
	}
	raw := &trackConn{Conn: nc}
	s := &fzSession{t: t, w: w, raw: raw, nc: raw, br: bufio.NewReader(raw), done: make(chan struct{})}
	if l := s.syncLine(); !strings.HasPrefix(l, "* OK ") {
		t.Fatalf("greeting %q", l)
	}
	// The greeting is written after Accept returned: the peer is known.
	w.mu.Lock()
	s.peer = w.peers[nc.LocalAddr().String()]
	w.mu.Unlock()
	if s.peer == nil {
		t.Fatal("server side of the connection not found")
	}
	return s
}

// syncLine reads one response during setup (before the reader goroutine runs).
func (s *fzSession) syncLine() string {
	s.t.Helper()
	s.nc.SetReadDeadline(time.Now().Add(fzDeadline))
	defer s.nc.SetReadDeadline(time.Time{})
	l, err := readResp(s.br)
	if err != nil {
		s.t.Fatalf("setup: read: %v (after %q)", err, s.lines)
	}
	s.lines = append(s.lines, l)
	return l
}

// do runs a setup command that must succeed.
func (s *fzSession) do(tag, cmd string) {
	s.t.Helper()
	s.write(tag + " " + cmd + "\r\n")
	for {
		if l := s.syncLine(); strings.HasPrefix(l, tag+" ") {
			if !strings.HasPrefix(l, tag+" OK") {
				s.t.Fatalf("setup: %s: %q", cmd, l)
			}
			return
		}
	}
}

func (s *fzSession) write(b string) {
	s.t.Helper()
	s.sent = append(s.sent, b...)
	s.nc.SetWriteDeadline(time.Now().Add(fzDeadline))
	if _, err := io.WriteString(s.nc, b); err != nil {
		s.t.Fatalf("setup: write: %v", err)
	}
}

// setup brings the session to its starting state and starts the model
// there (with the command whose middle the input starts in, if any).
func (s *fzSession) setup(state, lit int) {
	s.t.Helper()
	switch state {
	case fzTLS, fzTLSSelected:
		s.do("S", "STARTTLS")
		tc := tls.Client(s.raw, &tls.Config{InsecureSkipVerify: true})
		tc.SetDeadline(time.Now().Add(fzDeadline))
		if err := tc.Handshake(); err != nil {
			s.t.Fatalf("setup: TLS handshake: %v", err)
		}
		tc.SetDeadline(time.Time{})
		s.nc, s.br = tc, bufio.NewReader(tc)
	}
	switch state {
	case fzNotAuth, fzTLS, fzAuthenticate:
	default:
		s.do("L", "LOGIN u pw")
	}
	switch state {
	case fzSelected, fzIdle, fzAppend, fzTLSSelected:
		s.do("S", "SELECT INBOX")
	case fzExamined:
		s.do("S", "EXAMINE INBOX")
	case fzView:
		s.do("S", "SELECT Work")
	}
	s.base = len(s.lines)
	tail, cont := "", false
	switch state {
	case fzIdle, fzIdleAuth:
		tail, cont = "I IDLE\r\n", true
	case fzAppend:
		tail, cont = "A APPEND INBOX (\\Seen) {"+strconv.Itoa(lit)+"}\r\n", true
	case fzAppendNonSync:
		tail = "A APPEND Drafts (\\Draft) {" + strconv.Itoa(lit) + "+}\r\n"
	case fzAuthenticate:
		tail, cont = "A AUTHENTICATE PLAIN\r\n", true
	}
	s.in = append(s.in, tail...)
	if tail != "" {
		s.write(tail)
	}
	if cont {
		if l := s.syncLine(); !strings.HasPrefix(l, "+") {
			s.t.Fatalf("setup: %q: %q", tail, l)
		}
	}
	go s.readLoop()
}

func (s *fzSession) readLoop() {
	defer close(s.done)
	for {
		l, err := readResp(s.br)
		if l != "" || err == nil {
			s.mu.Lock()
			s.lines = append(s.lines, l)
			s.mu.Unlock()
		}
		if err != nil {
			return
		}
	}
}

// literalRe finds the literal a response line announces at its end.
var literalRe = regexp.MustCompile(`\{(\d+)\+?\}$`)

// readResp reads one response line without its CRLF, with the literals it
// announces folded in.
func readResp(br *bufio.Reader) (string, error) {
	var b strings.Builder
	for {
		l, err := br.ReadString('\n')
		b.WriteString(strings.TrimSuffix(l, "\r\n"))
		if err != nil {
			return b.String(), err
		}
		l = strings.TrimSuffix(l, "\r\n")
		m := literalRe.FindStringSubmatch(l)
		if m == nil || strings.HasSuffix(l, "+}") {
			return b.String(), nil
		}
		n, _ := strconv.Atoi(m[1])
		buf := make([]byte, n)
		if _, err := io.ReadFull(br, buf); err != nil {
			return b.String(), err
		}
		b.WriteString("\r\n")
		b.Write(buf)
	}
}

// send writes fuzz or probe octets. A closed connection is not an error
// (the server may have said BYE); a write that cannot complete is.
func (s *fzSession) send(b []byte) {
	s.t.Helper()
	s.in = append(s.in, b...)
	s.sent = append(s.sent, b...)
	if len(b) == 0 {
		return
	}
	s.nc.SetWriteDeadline(time.Now().Add(fzDeadline))
	if _, err := s.nc.Write(b); err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		s.t.Fatalf("the server stopped reading: %v\n%s", err, s.transcript())
	}
}

func (s *fzSession) closed() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

var errConnClosed = errors.New("connection closed")

// settle waits until the server waits for input, having read all the
// client sent, and the client has read all the server wrote; or until the
// connection is closed (errConnClosed).
func (s *fzSession) settle() error {
	deadline := time.Now().Add(fzDeadline)
	var last [4]int64
	stable := 0
	for {
		if s.closed() {
			return errConnClosed
		}
		cur := [4]int64{s.peer.rd.Load(), s.raw.wr.Load(), s.raw.rd.Load(), s.peer.wr.Load()}
		if s.peer.reading.Load() > 0 && s.raw.reading.Load() > 0 && cur[0] == cur[1] && cur[2] == cur[3] && cur == last {
			if stable++; stable >= 2 {
				return nil
			}
		} else {
			stable = 0
		}
		last = cur
		if time.Now().After(deadline) {
			return fmt.Errorf("after %v the server neither waits for input nor closes the connection (read %d of %d octets, wrote %d, client read %d)",
				fzDeadline, cur[0], cur[1], cur[3], cur[2])
		}
		time.Sleep(50 * time.Microsecond)
	}
}

// model replays the session so far (fuzz_model_test.go).
func (s *fzSession) model() (modelState, error) {
	closed := s.closed()
	s.mu.Lock()
	lines := slices.Clone(s.lines[s.base:])
	s.mu.Unlock()
	return replay(s.in, lines, fuzzLimits, closed)
}

// check waits for the server to process the input and replays it.
func (s *fzSession) check() error {
	if err := s.settle(); err != nil && err != errConnClosed {
		return err
	}
	_, err := s.model()
	return err
}

// probe finishes what the input left pending and checks that "zz NOOP"
// is answered, unless the server closes the connection.
func (s *fzSession) probe() error {
	probed := false
	for range 10 {
		if err := s.settle(); err == errConnClosed {
			_, err := s.model()
			return err
		} else if err != nil {
			return err
		}
		m, err := s.model()
		if err != nil {
			return err
		}
		switch m.pending {
		case pendBoundary:
			if probed {
				return nil
			}
			probed = true
			s.send([]byte("zz NOOP\r\n"))
		case pendCommand:
			s.send(bytes.Repeat([]byte{'\n'}, m.complete))
		case pendRawLine:
			if m.rawEmpty {
				s.send([]byte("DONE\r\n"))
			} else {
				s.send(bytes.Repeat([]byte{'\n'}, m.complete))
			}
		case pendTLS:
			return nil // the server waits for a handshake
		case pendClosed:
			select {
			case <-s.done:
				return nil
			case <-time.After(fzDeadline):
				return fmt.Errorf("BYE, but the connection is still open after %v", fzDeadline)
			}
		}
	}
	return errors.New("the probe found no command boundary in 10 rounds")
}

func (s *fzSession) close() {
	s.nc.Close()
	s.raw.Close()
}

func (s *fzSession) received() []string {
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.lines)
}

// transcript renders the session for a failure report.
func (s *fzSession) transcript() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "client sent %q\nserver:\n", clip(string(s.sent), 4000))
	for i, l := range s.lines {
		if i == 200 {
			fmt.Fprintf(&b, "  ... %d more\n", len(s.lines)-i)
			break
		}
		fmt.Fprintf(&b, "  %q\n", clip(l, 300))
	}
	return b.String()
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// trackListener hands the server trackConns and records them by peer.
type trackListener struct {
	net.Listener
	w *fuzzWorld
}

func (l trackListener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := &trackConn{Conn: nc}
	l.w.mu.Lock()
	l.w.peers[nc.RemoteAddr().String()] = tc
	l.w.mu.Unlock()
	return tc, nil
}

// trackConn counts the octets read and written and says whether a Read is
// blocked. A Read's octets are counted after reading is cleared, so
// "reading, and read all that was sent" means waiting for more input.
type trackConn struct {
	net.Conn
	rd, wr  atomic.Int64
	reading atomic.Int32
}

func (c *trackConn) Read(p []byte) (int, error) {
	c.reading.Add(1)
	n, err := c.Conn.Read(p)
	c.reading.Add(-1)
	c.rd.Add(int64(n))
	return n, err
}

func (c *trackConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.wr.Add(int64(n))
	return n, err
}

// logSink collects the server's log output (ERROR level and above).
type logSink struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logSink) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logSink) take() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.b.String()
	l.b.Reset()
	return s
}

// fuzzServerSeeds: the client side of every scenario and captured client
// transcript, plus a few inputs per state.
func fuzzServerSeeds(tb testing.TB) [][]byte {
	var seeds [][]byte
	add := func(state int, stream string) {
		if len(stream) <= fzMaxInput {
			seeds = append(seeds, append([]byte{byte(state)}, stream...))
		}
	}
	plain := base64.StdEncoding.EncodeToString([]byte("\x00u\x00pw"))
	files, _ := filepath.Glob("../../scenarios/*/*/*.scn")
	more, _ := filepath.Glob("../../scenarios/*/*/*/*.scn")
	files = append(files, more...)
	if len(files) == 0 {
		tb.Fatal("no scenarios")
	}
	vars := strings.NewReplacer("$user", "u", "$pass", "pw", "$plain", plain)
	for _, name := range files {
		sc, err := conformance.ParseFile(name, "../../scenarios/fixtures/messages")
		if err != nil {
			tb.Fatalf("%s: %v", name, err)
		}
		streams := map[string]*strings.Builder{}
		for _, st := range sc.Steps {
			if st.Kind != conformance.StepSend {
				continue
			}
			b := streams[st.Conn]
			if b == nil {
				b = &strings.Builder{}
				streams[st.Conn] = b
			}
			for _, p := range st.Send {
				b.Write(p.Raw)
				b.WriteString(vars.Replace(p.Text))
			}
		}
		state := fzAuth
		if !sc.Login {
			state = fzNotAuth
		}
		for _, b := range streams {
			add(state, b.String())
		}
	}
	creds := strings.NewReplacer(
		base64.StdEncoding.EncodeToString([]byte("\x00testuser\x00pass")), plain,
		base64.StdEncoding.EncodeToString([]byte("testuser\x00testuser\x00pass")), base64.StdEncoding.EncodeToString([]byte("u\x00u\x00pw")),
		`"testuser" "pass"`, `"u" "pw"`)
	for _, stream := range transcriptStreams(tb) {
		add(fzNotAuth, creds.Replace(stream))
	}
	msg := "From: a@example.com\r\nSubject: hi\r\n\r\nbody\r\n"
	for _, s := range []struct {
		state int
		in    string
	}{
		{fzNotAuth, "a CAPABILITY\r\nb LOGIN u pw\r\nc SELECT INBOX\r\nd FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (Subject)])\r\ne LOGOUT\r\n"},
		{fzNotAuth, "a AUTHENTICATE PLAIN " + plain + "\r\nb LIST \"\" *\r\n"},
		{fzNotAuth, "a LOGIN {1+}\r\nu {2}\r\npw\r\nb NOOP\r\n"},
		{fzAuth, "a LIST \"\" * RETURN (STATUS (MESSAGES UNSEEN SIZE) SPECIAL-USE)\r\nb STATUS INBOX (UIDNEXT MESSAGES)\r\nc STATUS Work (MESSAGES)\r\n"},
		{fzAuth, "a CREATE x/y\r\nb RENAME x z\r\nc LSUB \"\" *\r\nd DELETE z/y\r\ne SUBSCRIBE z\r\nf ENABLE CONDSTORE\r\ng NAMESPACE\r\nh ID NIL\r\n"},
		{fzAuth, "a ENABLE IMAP4rev2\r\nb CREATE \"Gr\xc3\xbc&e\"\r\nc LIST \"\" *\r\nd SELECT \"Gr\xc3\xbc&e\"\r\ne SEARCH ALL\r\n" +
			"f STATUS INBOX (RECENT DELETED)\r\ng SELECT INBOX\r\nh UID SEARCH NEW\r\ni FETCH 1:* FLAGS\r\n"},
		{fzAuth, "a APPEND INBOX (\\Seen $x) \" 2-Nov-2026 10:00:00 +0100\" {" + strconv.Itoa(len(msg)) + "+}\r\n" + msg + "\r\nb SELECT INBOX\r\n"},
		{fzSelected, "a FETCH 1:* (UID FLAGS ENVELOPE BODYSTRUCTURE RFC822.SIZE INTERNALDATE EMAILID THREADID)\r\nb FETCH 4 (BODY[1] BINARY.PEEK[2] BODY[]<0.10> BINARY.SIZE[2])\r\n"},
		{fzSelected, "a FETCH 1:* (BINARY[] BINARY.PEEK[1]<3.4> BINARY.SIZE[1.2])\r\nb UID FETCH 1:* BINARY[2]\r\n"},
		{fzAuth, "a APPEND INBOX CATENATE (URL \"/INBOX/;UID=1/;SECTION=1.MIME\" TEXT {3+}\r\nabc) (\\Seen) ~{3+}\r\na\x00c\r\n" +
			"b APPEND Work CATENATE (URL \"/Work;UIDVALIDITY=1/;UID=2/;PARTIAL=1.2\") CATENATE (URL \"/INBOX/;UID=1\")\r\n"},
		{fzSelected, "a STORE 1:3 +FLAGS (\\Deleted foo)\r\nb UID STORE 1:* -FLAGS.SILENT (\\Seen)\r\nc EXPUNGE\r\nd UID EXPUNGE 4\r\n"},
		{fzSelected, "a SEARCH OR FROM alice TEXT hello NOT (SEEN SINCE 1-Jun-2025)\r\nb UID SEARCH CHARSET UTF-8 SUBJECT \"\xc3\xa9\" 1:*\r\n"},
		{fzSelected, "a COPY 1:2 Archive\r\nb UID MOVE 3 Lists/golang\r\nc CHECK\r\nd CLOSE\r\n"},
		{fzSelected, "a SEARCH RETURN (SAVE MIN) UNSEEN\r\nb FETCH $ FLAGS\r\nc UID SEARCH RETURN (MIN MAX COUNT ALL) $ OR 1 UID 2:*\r\n" +
			"d UID STORE $ +FLAGS (\\Seen)\r\ne SEARCH RETURN (SAVE) CHARSET X ALL\r\nf MOVE $ Archive\r\ng SEARCH RETURN () NOT $\r\n"},
		{fzSelected, "a SORT (REVERSE DATE SUBJECT) UTF-8 ALL\r\nb UID SORT (FROM CC TO SIZE ARRIVAL) US-ASCII OR 1:2 $\r\n" +
			"c THREAD REFERENCES UTF-8 NOT DELETED\r\nd UID THREAD ORDEREDSUBJECT UTF-8 1:*\r\ne SORT (REVERSE) X ALL\r\n"},
		{fzView, "a THREAD REFERENCES UTF-8 ALL\r\nb SORT (SUBJECT) UTF-8 UNSEEN\r\n"},
		{fzSelected, "a FETCH 1:* (MODSEQ)\r\nb UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1)\r\nc STORE 1:2 (UNCHANGEDSINCE 5) +FLAGS.SILENT (x)\r\n" +
			"d SEARCH MODSEQ \"/flags/\\\\Seen\" all 1 UNSEEN\r\ne SEARCH RETURN (ALL) MODSEQ 1\r\nf STATUS INBOX (HIGHESTMODSEQ)\r\ng EXAMINE Work (CONDSTORE)\r\n"},
		{fzExamined, "a STORE 1 +FLAGS (\\Seen)\r\nb FETCH 1 BODY[]\r\nc UNSELECT\r\n"},
		{fzView, "a FETCH 1:* (UID FLAGS)\r\nb STORE 1 -FLAGS (\\Flagged)\r\nc NOOP\r\nd COPY 1 INBOX\r\ne EXPUNGE\r\n"},
		{fzIdle, "DONE\r\na NOOP\r\n"},
		{fzIdle, "done\r\na IDLE\r\nDONE\r\n"},
		{fzIdleAuth, "DONE\r\n"},
		{fzAppend, string(rune(len(msg))) + msg + "\r\na FETCH * (FLAGS)\r\n"},
		{fzAppend, "\x05abc"},
		{fzAppendNonSync, string(rune(len(msg))) + msg + " {3+}\r\nabc\r\n"},
		{fzAuthenticate, plain + "\r\na SELECT INBOX\r\n"},
		{fzAuthenticate, "*\r\n"},
		{fzTLS, "a LOGIN u pw\r\nb SELECT INBOX\r\nc FETCH 1 BODY[]\r\n"},
		{fzTLS, "a STARTTLS\r\n"},
		{fzTLSSelected, "a IDLE\r\nDONE\r\nb FETCH 1:* FLAGS\r\n"},
	} {
		add(s.state, s.in)
		add(s.state|0x40, s.in)
		add(s.state|0x80, s.in)
	}
	return seeds
}

// transcriptStreams returns the client side of each captured transcript
// (the imap-tap format of conformance/transcript.go: "C:" lines end in
// CRLF, "C~" in LF, "C=" in nothing).
func transcriptStreams(tb testing.TB) []string {
	files, _ := filepath.Glob("../../fixtures/transcripts/*/*.txt")
	if len(files) == 0 {
		tb.Fatal("no fixtures/transcripts")
	}
	var out []string
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			tb.Fatal(err)
		}
		var cli strings.Builder
		for _, line := range strings.Split(string(b), "\n") {
			if len(line) < 3 || line[0] != 'C' || line[2] != ' ' {
				continue
			}
			cli.WriteString(line[3:])
			switch line[1] {
			case ':':
				cli.WriteString("\r\n")
			case '~':
				cli.WriteString("\n")
			}
		}
		out = append(out, cli.String())
	}
	return out
}
