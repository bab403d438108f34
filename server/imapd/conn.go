package imapd

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"decimail/server/store"
)

// State is the connection state of RFC 3501 §3 (rfc3501.txt:687).
type State int

const (
	NotAuthenticated State = iota
	Authenticated
	Selected
	Logout
)

func (s State) String() string {
	return [...]string{"not authenticated", "authenticated", "selected", "logout"}[s]
}

// Conn is one client connection. Its fields are owned by the connection
// goroutine; only w (under its lock) is shared, with IDLE's reader
// goroutine, which flushes it before reading (flushReader).
type Conn struct {
	srv   *Server
	cfg   *Config  // the server's configuration when the connection began (Server.Reload)
	nc    net.Conn // raw or TLS
	peer  net.Conn // the accepted connection (per-address connection count)
	isTLS bool
	br    *bufio.Reader
	r     *reader
	w     *Writer
	id    uint64
	log   *slog.Logger
	ctx   context.Context // cancelled when the client goes away or the server closes
	// cancel cancels ctx: on disconnect (serve's end, watchHangup).
	cancel context.CancelFunc

	state    State
	user     store.User
	disabled map[string]bool // capabilities switched off (config + per user)
	notify   *notifyState    // NOTIFY SET in effect (notify.go)
	ip       string          // the peer's address (per-address limits)
	memHeld  int64           // literal bytes reserved against ip (reserve)
	authFail int             // failed LOGIN/AUTHENTICATE attempts

	// Hooks set by the selection code (select.go). poll is called after
	// every command while it is set, before the tagged reply, to send
	// unilateral updates (RFC 3501 §5.2, rfc3501.txt:1138); allowExpunge is false during
	// FETCH, STORE and SEARCH (rfc3501.txt:4053). onUnselect is called
	// when the selection ends (SELECT of another mailbox, CLOSE, UNSELECT,
	// LOGOUT, disconnect): it must release the session view. Conn.Unselect
	// clears both.
	poll       func(allowExpunge bool) error
	onUnselect func()
	sel        *selection // the selected mailbox (select.go); nil unless Selected

	// afterReply, when set by a handler, runs after its tagged reply has
	// been flushed (STARTTLS starts the handshake there).
	afterReply func() error
	// statusAhead: STATUS answers read ahead for pipelined STATUS commands
	// (mbstatus.go), by normalised name; any other command drops them.
	statusAhead map[string]store.MailboxStatus
	// condstore: the client sent a CONDSTORE enabling command (condstore.go).
	condstore bool
	// qresync: the client sent ENABLE QRESYNC (qresync.go); implies condstore.
	qresync bool
	// sentModSeq: the highest MODSEQ the current command sent (qresync.go
	// delayedVanished).
	sentModSeq int64
	// seqCriteria: the current command's search criteria named message
	// sequence numbers (a UID SEARCH, SORT or THREAD: no VANISHED then).
	seqCriteria bool
	// rev2: the client sent ENABLE IMAP4rev2 (rev2.go).
	rev2 bool
}

func newConn(s *Server, nc net.Conn, isTLS bool) *Conn {
	c := &Conn{srv: s, cfg: s.config(), nc: nc, peer: nc, isTLS: isTLS}
	c.ctx, c.cancel = context.WithCancel(s.ctx)
	c.id = s.sessions.Add(1)
	c.ip = peerIP(nc)
	c.log = s.log.With("session", c.id)
	c.disabled = map[string]bool{}
	for k, v := range c.cfg.Disabled {
		c.disabled[strings.ToUpper(k)] = v
	}
	c.setStream(nc)
	return c
}

// setStream (re)builds the buffered reader and writer on nc; after
// STARTTLS the old read buffer is thrown away (rfc3501.txt:5117ff).
func (c *Conn) setStream(nc net.Conn) {
	c.nc = nc
	c.br = bufio.NewReaderSize(flushReader{c, nc}, 16<<10)
	var logf func(string)
	if c.cfg.LogIMAP {
		logf = func(line string) { c.log.Debug("S: " + line) }
	}
	dw := deadlineWriter{nc, c.srv.cfg.WriteTimeout}
	if c.w == nil {
		c.w = newWriter(dw, logf)
	} else {
		c.w.reset(dw)
	}
	c.setReader(c.br)
}

// setReader reads the commands from br: the buffered socket, or the
// decompressed stream after COMPRESS (compress.go).
func (c *Conn) setReader(br *bufio.Reader) {
	c.br = br
	c.r = newReader(c.br, c.srv.cfg.limits(), c.continueLiteral)
	c.r.mem = c
	if st := c.srv.st; st != nil {
		c.r.spool = st.NewIncoming // APPEND messages stream to disk
	}
}

// flushReader sends the pending responses before every read from the
// socket. bufio reads the socket only when its buffer is empty, i.e. when
// the session would wait for the client: so responses to pipelined commands
// (a client's 200 STATUS at start-up) leave in a few large writes instead of
// one per command, and a client never waits for a response it is owed.
type flushReader struct {
	c  *Conn
	nc net.Conn
}

func (f flushReader) Read(p []byte) (int, error) {
	if w := f.c.w; w != nil {
		w.Mutex.Lock() // not w.Lock: this may run on IDLE's reader goroutine
		err := w.Flush()
		w.Mutex.Unlock()
		if err != nil {
			return 0, err
		}
	}
	return f.nc.Read(p)
}

type deadlineWriter struct {
	nc net.Conn
	d  time.Duration
}

func (w deadlineWriter) Write(p []byte) (int, error) {
	w.nc.SetWriteDeadline(time.Now().Add(w.d))
	return w.nc.Write(p)
}

// User returns the logged-in user (zero before authentication).
func (c *Conn) User() store.User { return c.user }

// State returns the connection state.
func (c *Conn) State() State { return c.state }

// SetState changes the state (select.go sets Selected).
func (c *Conn) SetState(s State) { c.state = s }

// Log returns the session logger (attrs session, and user once known).
func (c *Conn) Log() *slog.Logger { return c.log }

// Ctx is the context for store calls; cancelled when the client goes away
// (also during a command, see watchHangup) or the server closes.
func (c *Conn) Ctx() context.Context { return c.ctx }

// Store returns the server's store.
func (c *Conn) Store() *store.Store { return c.srv.st }

// Config returns the server configuration.
func (c *Conn) Config() *Config { return c.cfg }

// Writer returns the response writer; lock it around a response.
func (c *Conn) Writer() *Writer { return c.w }

// OK makes a handler's tagged OK carry a response code and text, e.g.
// return c.OK("READ-WRITE", "SELECT completed").
func (c *Conn) OK(code, text string) error { return &Status{Kind: "OK", Code: code, Text: text} }

// Untagged writes one whole untagged line under the write lock:
// c.Untagged("%d EXISTS", n). The core flushes at the end of the command.
func (c *Conn) Untagged(format string, args ...any) {
	c.w.Lock()
	c.w.Line(format, args...)
	c.w.Unlock()
}

// Continue sends a continuation request "+ text" and flushes.
func (c *Conn) Continue(text string) error {
	c.w.Lock()
	defer c.w.Unlock()
	c.w.Continue(text)
	return wrapConnError(c.w.Flush())
}

// Flush sends what is buffered (IDLE after its updates).
func (c *Conn) Flush() error {
	c.w.Lock()
	defer c.w.Unlock()
	return wrapConnError(c.w.Flush())
}

// ReadLine reads one raw client line (SASL responses, IDLE's "DONE"),
// under the autologout timer. It is never logged. Its errors are the
// command's outcome (lineFailed).
func (c *Conn) ReadLine() (string, error) {
	if err := c.setReadDeadline(); err != nil {
		return "", c.lineFailed(err)
	}
	l, err := c.r.ReadLine()
	if err != nil {
		return "", c.lineFailed(err)
	}
	return l, nil
}

// connError is a failure of the client connection met inside a command
// (reading IDLE's DONE or a SASL response, flushing a continuation
// request): there is no one left to answer, so the session ends without a
// reply and without a SERVERBUG, logged as a disconnect.
type connError struct{ err error }

func (e *connError) Error() string { return "client connection: " + e.err.Error() }
func (e *connError) Unwrap() error { return e.err }

func wrapConnError(err error) error {
	if err == nil {
		return nil
	}
	return &connError{err}
}

// lineFailed turns an error reading a command's own line into the
// command's outcome, as readFailed does between commands: an over-long
// line is the command's BAD [TOOBIG]; the autologout timer or a shutdown
// is a BYE ("BYE Autologout", rfc3501.txt:3767); anything else means the
// client is gone.
func (c *Conn) lineFailed(err error) error {
	var pe *ParseError
	var ne net.Error
	switch {
	case errors.As(err, &pe):
		return pe.Status
	case errors.Is(err, errShutdown):
		return Bye(CodeUnavailable, "Server shutting down")
	case errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded):
		if c.srv.closing.Load() {
			return Bye(CodeUnavailable, "Server shutting down")
		}
		return Bye("", "Autologout; idle for too long")
	}
	return &connError{err}
}

// Unselect ends the selected state: calls onUnselect, clears the hooks.
func (c *Conn) Unselect() {
	if c.onUnselect != nil {
		c.onUnselect()
	}
	c.onUnselect, c.poll = nil, nil
	if c.state == Selected {
		c.state = Authenticated
	}
}

func (c *Conn) continueLiteral() error { return c.Continue("Ready for literal data") }

// errShutdown is returned by setReadDeadline when the server is closing.
var errShutdown = errors.New("server shutting down")

// setReadDeadline arms the autologout timer (rfc3501.txt:1185) or reports
// a shutdown. Shutdown sets closing before waking conns, so either we see
// the flag here or its wake deadline lands after ours.
func (c *Conn) setReadDeadline() error {
	d := c.srv.cfg.IdleTimeout
	if c.state == NotAuthenticated {
		d = c.srv.cfg.PreAuthTimeout
	}
	c.nc.SetReadDeadline(time.Now().Add(d))
	if c.srv.closing.Load() {
		return errShutdown
	}
	return nil
}

// wake interrupts a blocked read so the session notices the shutdown. It
// runs on another goroutine: it uses peer, the accepted connection, which
// STARTTLS never replaces (nc it does).
func (c *Conn) wake() { c.peer.SetReadDeadline(time.Now()) }

// serve is the connection loop.
func (c *Conn) serve() {
	defer c.srv.removeConn(c)
	defer c.release()
	defer c.cancel()
	defer c.nc.Close()
	defer c.Unselect()
	defer c.notifyStop()
	c.log.Info("connected", "remote", c.nc.RemoteAddr().String(), "tls", c.isTLS)
	if tc, ok := c.nc.(*tls.Conn); ok {
		tc.SetDeadline(time.Now().Add(c.srv.cfg.PreAuthTimeout))
		if err := tc.HandshakeContext(c.ctx); err != nil {
			c.log.Info("TLS handshake failed", "err", err)
			return
		}
	}
	c.w.Lock()
	c.w.Line("OK [CAPABILITY %s] Decimail ready", c.capabilityString()) // "one of three possible greetings", rfc3501.txt:3650
	err := c.w.Flush()
	c.w.Unlock()
	for err == nil && c.state != Logout {
		err = c.step()
	}
	if err != nil && !errors.Is(err, errLogout) {
		c.log.Info("disconnected", "err", err)
	} else {
		c.log.Info("logged out")
	}
}

var errLogout = errors.New("logout")

// step reads and executes one command; an error ends the session.
func (c *Conn) step() error {
	if err := c.setReadDeadline(); err != nil {
		return c.bye(Bye(CodeUnavailable, "Server shutting down"))
	}
	c.r.preAuth = c.state == NotAuthenticated
	if c.notify != nil {
		if err := c.notifyWait(); err != nil {
			var st *Status
			if errors.As(err, &st) && st.Kind == "BYE" {
				return c.bye(st)
			}
			return c.readFailed(err)
		}
	}
	cmd, err := c.r.ReadCommand()
	if err != nil {
		return c.readFailed(err)
	}
	c.logCommand(cmd)
	err = c.execute(cmd)
	cmd.Close()
	if err != nil {
		return err
	}
	if c.afterReply == nil && c.state != Logout {
		return nil // flushed before the next read from the socket (flushReader)
	}
	c.w.Lock()
	err = c.w.Flush()
	c.w.Unlock()
	if err == nil && c.afterReply != nil {
		f := c.afterReply
		c.afterReply = nil
		err = f()
	}
	return err
}

func (c *Conn) readFailed(err error) error {
	var pe *ParseError
	var ne net.Error
	switch {
	case errors.As(err, &pe) && pe.Status.Kind == "BYE":
		return c.bye(pe.Status)
	case errors.As(err, &pe):
		c.w.Lock()
		defer c.w.Unlock()
		if pe.Tag != "" {
			c.w.Tagged(pe.Tag, pe.Status)
		} else {
			c.w.Untagged() // rfc3501.txt:3687: untagged BAD, command unknown ("The untagged form indicates a protocol-level error")
			c.w.status(pe.Status)
			c.w.CRLF()
		}
		return c.w.Flush()
	case errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded):
		if c.srv.closing.Load() {
			return c.bye(Bye(CodeUnavailable, "Server shutting down"))
		}
		return c.bye(Bye("", "Autologout; idle for too long")) // rfc3501.txt:3767
	}
	return err
}

// bye sends "* BYE" and ends the session (rfc3501.txt:3726-3734).
func (c *Conn) bye(st *Status) error {
	c.w.Lock()
	c.w.Bye(st)
	c.w.Flush()
	c.w.Unlock()
	c.state = Logout
	return errLogout
}

func (c *Conn) logCommand(cmd *Command) {
	if !c.cfg.LogIMAP {
		return
	}
	c.log.Debug("C: " + formatCommand(cmd, true))
}

// isLoopback reports whether the peer is on this machine.
func (c *Conn) isLoopback() bool {
	switch a := c.nc.RemoteAddr().(type) {
	case *net.TCPAddr:
		return a.IP.IsLoopback()
	case *net.UnixAddr:
		return true
	}
	return false
}

// plaintextOK: passwords may be sent in the clear on TLS, loopback, or
// when configured (rfc3501.txt:1704-1713: "some other mechanism that protects
// the session from password snooping").
func (c *Conn) plaintextOK() bool {
	return c.isTLS || c.cfg.AllowPlaintext || c.isLoopback()
}
