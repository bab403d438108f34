// Package imapd is Decimail's IMAP server: its own command reader and
// response writer (wire_*.go), the connection loop and dispatcher
// (conn.go, dispatch.go), and one file per command family.
//
// Invariants:
//   - One goroutine per connection reads and executes commands in order
//     (pipelined commands are simply read one after the other).
//   - Everything written to a connection goes through its Writer while
//     holding the Writer's lock. Only the command goroutine writes (IDLE
//     sends its updates from there too) and takes it with w.Lock; IDLE's
//     reader goroutine only flushes, taking the Mutex itself (flushReader).
//     So after a handler's panic the core knows whether the handler still
//     holds the lock (Conn.call). The core flushes once per command, after
//     the tagged reply.
//   - Per-state allow-lists are checked in one place, dispatch.execute.
//   - Credentials never reach a log line: the conversation log redacts
//     LOGIN and AUTHENTICATE arguments and never logs SASL responses.
package imapd

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"decimail/internal/rawio"
	"decimail/server/store"
)

// ErrServerClosed is returned by Serve after Close or Shutdown.
var ErrServerClosed = errors.New("imapd: server closed")

// authenticator is the part of the store LOGIN/AUTHENTICATE need; tests of
// the wire layer substitute a fake, everything else uses *store.Store.
type authenticator interface {
	Authenticate(ctx context.Context, name, password string) (store.User, error)
}

// Server is one IMAP server instance.
type Server struct {
	cfg  Config
	live atomic.Pointer[Config] // set by Reload (live.go)
	st   *store.Store
	auth authenticator
	log  *slog.Logger
	// metrics, when set (SetMetrics, before Serve), receives every command.
	metrics Metrics

	ctx    context.Context // cancelled by Close: aborts store calls
	cancel context.CancelFunc

	sessions atomic.Uint64
	// refused counts connections refused over the per-address limit.
	refused  atomic.Uint64
	closing  atomic.Bool
	mu       sync.Mutex
	lns      map[net.Listener]struct{}
	conns    map[*Conn]struct{}
	perIP    map[string]int   // open connections per peer address
	memPerIP map[string]int64 // literal bytes in memory per peer address
	wg       sync.WaitGroup
	// hangupPolls counts the hangup watch's looks at a connection
	// (hangup_linux.go).
	hangupPolls atomic.Uint64

	orders  sharedOrders // SORT's orders shared between sessions (sortorder.go)
	threads threadCache  // THREAD REFERENCES threadings kept (threadstate.go)
}

// New creates a server; st may be nil only in wire-level tests.
func New(cfg Config, st *store.Store, log *slog.Logger) *Server {
	s := newServer(cfg, nil, log)
	s.st = st
	if st != nil {
		s.auth = st
	}
	return s
}

func newServer(cfg Config, auth authenticator, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{
		cfg: cfg.withDefaults(), auth: auth, log: log,
		ctx: ctx, cancel: cancel,
		lns: map[net.Listener]struct{}{}, conns: map[*Conn]struct{}{}, perIP: map[string]int{}, memPerIP: map[string]int64{},
	}
}

// Serve accepts plain connections (STARTTLS-capable when cfg.TLS is set).
// Its sessions read and write the socket with raw system calls
// (internal/rawio), as ServeTLS's do under TLS.
func (s *Server) Serve(ln net.Listener) error { return s.serve(rawio.Listener(ln), false) }

// ServeTLS accepts implicit-TLS connections (port 993); cfg.TLS is required.
func (s *Server) ServeTLS(ln net.Listener) error {
	if s.cfg.TLS == nil {
		return errors.New("imapd: ServeTLS without a TLS config")
	}
	return s.serve(tls.NewListener(rawio.Listener(ln), s.cfg.TLS), true)
}

func (s *Server) serve(ln net.Listener, isTLS bool) error {
	if !s.track(ln) {
		ln.Close()
		return ErrServerClosed
	}
	defer s.untrack(ln)
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.closing.Load() {
				return ErrServerClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// EMFILE and friends: back off and retry, like net/http.
			backoff = min(max(5*time.Millisecond, 2*backoff), time.Second)
			s.log.Warn("accept failed", "err", err, "retry", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		if !s.admit(nc) {
			s.refused.Add(1)
			// Over the per-address limit (DESIGN "Security": limits on
			// connections): a BYE explains it (rfc3501.txt:3746-3749: "not
			// willing to accept a connection from this client"). Not on
			// this goroutine: on IMAPS the write starts a TLS handshake,
			// and a silent client must not hold up the accept loop. The
			// deadline bounds the handshake's reads too.
			go func() {
				nc.SetDeadline(time.Now().Add(5 * time.Second))
				io.WriteString(nc, "* BYE [UNAVAILABLE] too many connections from your address\r\n")
				nc.Close()
			}()
			continue
		}
		c := newConn(s, nc, isTLS)
		if !s.addConn(c) {
			s.release(nc)
			nc.Close()
			continue
		}
		go c.serve()
	}
}

func (s *Server) track(ln net.Listener) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Load() {
		return false
	}
	s.lns[ln] = struct{}{}
	return true
}

func (s *Server) untrack(ln net.Listener) {
	s.mu.Lock()
	delete(s.lns, ln)
	s.mu.Unlock()
}

func (s *Server) addConn(c *Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Load() {
		return false
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	return true
}

func (s *Server) removeConn(c *Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.release(c.peer)
	s.wg.Done()
}

// admit counts a connection against its address's limit.
func (s *Server) admit(nc net.Conn) bool {
	ip := peerIP(nc)
	s.mu.Lock()
	defer s.mu.Unlock()
	if a, ok := nc.RemoteAddr().(*net.TCPAddr); ok && a.IP.IsLoopback() && !s.cfg.LimitLoopback {
		s.perIP[ip]++
		return true
	}
	if s.cfg.MaxConnsPerIP > 0 && s.perIP[ip] >= s.cfg.MaxConnsPerIP {
		return false
	}
	s.perIP[ip]++
	return true
}

func (s *Server) release(nc net.Conn) {
	if nc == nil {
		return
	}
	ip := peerIP(nc)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.perIP[ip]--; s.perIP[ip] <= 0 {
		delete(s.perIP, ip)
	}
}

// reserve counts n more literal bytes in memory against the connection's
// address (Config.MaxMemoryPerIP); false if that would exceed the budget.
func (c *Conn) reserve(n int64) bool {
	s := c.srv
	limited := s.cfg.MaxMemoryPerIP > 0 && (s.cfg.LimitLoopback || !c.isLoopback())
	s.mu.Lock()
	defer s.mu.Unlock()
	if limited && s.memPerIP[c.ip]+n > s.cfg.MaxMemoryPerIP {
		return false
	}
	s.memPerIP[c.ip] += n
	c.memHeld += n
	return true
}

// release gives back everything the connection reserved.
func (c *Conn) release() {
	if c.memHeld == 0 {
		return
	}
	s := c.srv
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.memPerIP[c.ip] -= c.memHeld; s.memPerIP[c.ip] <= 0 {
		delete(s.memPerIP, c.ip)
	}
	c.memHeld = 0
}

func peerIP(nc net.Conn) string {
	if a, ok := nc.RemoteAddr().(*net.TCPAddr); ok {
		return a.IP.String()
	}
	return nc.RemoteAddr().String()
}

// stopAccepting marks the server closing and closes its listeners.
func (s *Server) stopAccepting() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closing.Store(true)
	for ln := range s.lns {
		ln.Close()
	}
}

// Shutdown stops accepting, tells idle sessions "* BYE" at their next read
// and waits for the sessions to end or ctx to expire (then Close).
func (s *Server) Shutdown(ctx context.Context) error {
	s.stopAccepting()
	s.mu.Lock()
	for c := range s.conns {
		c.wake()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		s.cancel()
		return nil
	case <-ctx.Done():
		s.Close()
		return ctx.Err()
	}
}

// Close stops accepting and closes every connection at once.
func (s *Server) Close() error {
	s.stopAccepting()
	s.cancel()
	s.mu.Lock()
	for c := range s.conns {
		c.peer.Close() // not nc: STARTTLS replaces it on the session's goroutine
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}
