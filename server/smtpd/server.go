// Package smtpd is Decimail's SMTP side, on github.com/emersion/go-smtp:
//
//   - the inbound (MX) listener spools DATA to a file as it arrives, then
//     stores one copy per local user and queues remote recipients (trusted
//     clients) in ONE transaction (store.DeliverIncoming), and answers 250
//     only after it committed; a failure stores nothing and is answered
//     451 4.3.0, so a client's retry never duplicates;
//   - the submission listener (RFC 6409) requires AUTH; an authenticated
//     session on either listener is a submission: the envelope sender and
//     the From: addresses must be the user's, auto addresses are rewritten
//     (Rewrite), and local copies, the queued copy and a \Seen copy in Sent
//     are one transaction;
//   - Relay sends the queue to a smart host, with retries and bounces;
//   - DeleteDaemon removes spool files of deleted messages.
//
// No open relay: a recipient that is not local is accepted only from an
// authenticated client or one in Config.TrustedNets (default: loopback).
//
// Each accepted connection gets its own go-smtp Server value (cheap), so that
// the conversation log (smtpd_log_conversation) and the session number are
// per connection; the connection is the only writer of its socket.
// Limits (Config): connections per address, message and header size,
// recipients, a total deadline for DATA, and failed AUTH per connection;
// failed logins across connections and processes are limited by the store
// (store.AuthPolicy). A client over a limit gets 452/552 (421 and a closed
// connection for timeouts and AUTH), logged once, never 451.
package smtpd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"

	"decimail/server/store"
)

// Config holds the listeners' settings. Zero values take the defaults below.
type Config struct {
	Hostname          string      // greeting and Received: "by"; default os.Hostname()
	TLS               *tls.Config // enables STARTTLS
	AllowInsecureAuth bool        // allow AUTH without TLS from any client
	// TrustedNets may relay without AUTH and AUTH without TLS. nil means
	// loopback only; an empty non-nil slice trusts nobody.
	TrustedNets     []netip.Prefix
	MaxMessageBytes int64         // default 50 MiB (smtpd_max_message_bytes)
	MaxRecipients   int           // default 100 (smtpd_max_recipients)
	MaxLineLength   int           // default 2000 (smtpd_max_line_length); RFC 5321 §4.5.3.1 minimum 1000
	ReadTimeout     time.Duration // default 5m (smtpd_read_timeout), per command, RFC 5321 §4.5.3.2
	// DataTimeout bounds the whole transfer of a message's data, plus one
	// second per DataMinRate bytes received (smtpd_data_timeout, default
	// 10m; smtpd_data_min_rate, default 32768 bytes/s): a 50 MiB message
	// may take up to 37 minutes, one arriving byte by byte 10.
	DataTimeout     time.Duration
	DataMinRate     int64
	MaxHeaderBytes  int64         // default 1 MiB (smtpd_max_header_bytes): the header section of a message
	WriteTimeout    time.Duration // default 5m (smtpd_write_timeout)
	MaxConnsPerIP   int           // default 20 (smtpd_max_conns_per_ip); over: 421 4.7.0
	MaxAuthFailures int           // per connection, default 3 (smtpd_max_auth_failures); then 421 4.7.0 and close
	// LogConversation logs every line of the conversation at Info level with
	// the session number, AUTH credentials and message data redacted
	// (smtpd_log_conversation).
	LogConversation bool
	// RelayHost is the relay's smart host (smtp_relay_host, as
	// RelayConfig.Host). Empty with RelayDirect off: a message queued for
	// remote recipients will bounce (Relay), and the submission logs a
	// warning saying so.
	RelayHost string
	// RelayDirect: the relay delivers to the recipients' mail exchangers
	// when there is no smart host (smtp_relay_direct; LoadConfig's default
	// true, the zero Config's false).
	RelayDirect bool
}

func (c *Config) defaults() {
	if c.Hostname == "" {
		c.Hostname, _ = os.Hostname()
		if c.Hostname == "" {
			c.Hostname = "localhost"
		}
	}
	if c.TrustedNets == nil {
		c.TrustedNets = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	}
	if c.MaxMessageBytes <= 0 {
		c.MaxMessageBytes = 50 << 20
	}
	if c.MaxRecipients <= 0 {
		c.MaxRecipients = 100
	}
	if c.MaxLineLength <= 0 {
		c.MaxLineLength = 2000
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = 5 * time.Minute
	}
	if c.DataTimeout <= 0 {
		c.DataTimeout = 10 * time.Minute
	}
	if c.DataMinRate <= 0 {
		c.DataMinRate = 32 << 10
	}
	if c.MaxHeaderBytes <= 0 {
		c.MaxHeaderBytes = 1 << 20
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 5 * time.Minute
	}
	if c.MaxConnsPerIP <= 0 {
		c.MaxConnsPerIP = 20
	}
	if c.MaxAuthFailures <= 0 {
		c.MaxAuthFailures = 3
	}
}

// LoadConfig overlays the configuration table's smtpd_* keys on base (keys
// absent from the table keep base's values): smtpd_hostname,
// smtpd_max_message_bytes, smtpd_max_recipients, smtpd_max_line_length,
// smtpd_read_timeout, smtpd_write_timeout, smtpd_data_timeout (Go
// durations), smtpd_data_min_rate, smtpd_max_header_bytes,
// smtpd_max_conns_per_ip, smtpd_max_auth_failures, smtpd_log_conversation (true/false),
// smtpd_allow_insecure_auth, smtpd_trusted_nets (comma-separated prefixes),
// and smtp_relay_host (the relay's key: RelayHost).
func LoadConfig(ctx context.Context, st *store.Store, base Config) (Config, error) {
	c := base
	get := func(key string) (string, bool, error) {
		v, err := st.Config(ctx, key, "\x00")
		return strings.TrimSpace(v), err == nil && v != "\x00", err
	}
	var errs []error
	str := func(key string, dst *string) {
		if v, ok, err := get(key); err != nil {
			errs = append(errs, err)
		} else if ok {
			*dst = v
		}
	}
	num := func(key string, set func(int64)) {
		v, ok, err := get(key)
		if err != nil || !ok {
			errs = append(errs, err)
			return
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", key, err))
			return
		}
		set(n)
	}
	dur := func(key string, dst *time.Duration) {
		v, ok, err := get(key)
		if err != nil || !ok {
			errs = append(errs, err)
			return
		}
		d, err := time.ParseDuration(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", key, err))
			return
		}
		*dst = d
	}
	boolean := func(key string, dst *bool) {
		v, ok, err := get(key)
		if err != nil || !ok {
			errs = append(errs, err)
			return
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", key, err))
			return
		}
		*dst = b
	}
	str("smtpd_hostname", &c.Hostname)
	str("smtp_relay_host", &c.RelayHost)
	c.RelayDirect = true
	boolean("smtp_relay_direct", &c.RelayDirect)
	num("smtpd_max_message_bytes", func(n int64) { c.MaxMessageBytes = n })
	num("smtpd_max_recipients", func(n int64) { c.MaxRecipients = int(n) })
	num("smtpd_max_line_length", func(n int64) { c.MaxLineLength = int(n) })
	num("smtpd_max_conns_per_ip", func(n int64) { c.MaxConnsPerIP = int(n) })
	num("smtpd_max_auth_failures", func(n int64) { c.MaxAuthFailures = int(n) })
	num("smtpd_data_min_rate", func(n int64) { c.DataMinRate = n })
	num("smtpd_max_header_bytes", func(n int64) { c.MaxHeaderBytes = n })
	dur("smtpd_data_timeout", &c.DataTimeout)
	dur("smtpd_read_timeout", &c.ReadTimeout)
	dur("smtpd_write_timeout", &c.WriteTimeout)
	boolean("smtpd_log_conversation", &c.LogConversation)
	boolean("smtpd_allow_insecure_auth", &c.AllowInsecureAuth)
	var nets string
	str("smtpd_trusted_nets", &nets)
	if nets != "" {
		c.TrustedNets = []netip.Prefix{}
		for _, f := range strings.Split(nets, ",") {
			if f = strings.TrimSpace(f); f == "" || f == "none" {
				continue
			}
			p, err := netip.ParsePrefix(f)
			if err != nil {
				errs = append(errs, fmt.Errorf("smtpd_trusted_nets: %w", err))
				continue
			}
			c.TrustedNets = append(c.TrustedNets, p)
		}
	}
	return c, errors.Join(errs...)
}

type kind int

const (
	kindMX kind = iota
	kindSubmission
)

func (k kind) String() string {
	if k == kindSubmission {
		return "submission"
	}
	return "mx"
}

// Server runs the MX and submission listeners. Safe for concurrent use.
type Server struct {
	cfg Config
	st  *store.Store
	log *slog.Logger

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	seq    atomic.Uint64 // session numbers
	// conns counts the open connections by listener kind (Conns);
	// metrics, when set (SetMetrics), receives every delivery.
	conns   [2]atomic.Int64
	metrics Metrics

	mu        sync.Mutex
	closed    bool
	listeners map[net.Listener]struct{}
	active    map[*smtp.Server]struct{}
	perIP     map[netip.Addr]int
}

// New returns a Server; it does not listen until ServeMX/ServeSubmission.
func New(cfg Config, st *store.Store, log *slog.Logger) *Server {
	cfg.defaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// Deliveries draw from their own connection pool: a full house of IMAP
	// sessions never makes a sender wait (store.Class).
	ctx, cancel := context.WithCancel(store.WithClass(context.Background(), store.ClassDelivery))
	return &Server{cfg: cfg, st: st, log: log, ctx: ctx, cancel: cancel,
		listeners: map[net.Listener]struct{}{}, active: map[*smtp.Server]struct{}{}, perIP: map[netip.Addr]int{}}
}

// Config returns the effective configuration (defaults applied).
func (s *Server) Config() Config { return s.cfg }

// ServeMX accepts inbound mail (port 25) on ln until Close.
func (s *Server) ServeMX(ln net.Listener) error { return s.serve(ln, kindMX) }

// ServeSubmission accepts submissions (port 587, AUTH required) on ln until Close.
func (s *Server) ServeSubmission(ln net.Listener) error { return s.serve(ln, kindSubmission) }

// Close stops the listeners and closes every connection.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	var errs []error
	for ln := range s.listeners {
		errs = append(errs, ln.Close())
	}
	active := make([]*smtp.Server, 0, len(s.active))
	for a := range s.active {
		active = append(active, a)
	}
	s.mu.Unlock()
	s.cancel()
	for _, a := range active {
		a.Close()
	}
	return errors.Join(errs...)
}

func (s *Server) serve(ln net.Listener, k kind) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return net.ErrClosed
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded) || isTemporary(err) {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.log.Warn("smtpd: accept", "err", err, "retry", delay)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		go s.handle(c, k)
	}
}

func isTemporary(err error) bool {
	t, ok := err.(interface{ Temporary() bool })
	return ok && t.Temporary()
}

func remoteIP(c net.Conn) netip.Addr {
	if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

func (s *Server) trusted(ip netip.Addr) bool {
	for _, p := range s.cfg.TrustedNets {
		if ip.IsValid() && p.Contains(ip) {
			return true
		}
	}
	return false
}

// handle runs one connection in its own go-smtp Server.
func (s *Server) handle(c net.Conn, k kind) {
	id := s.seq.Add(1)
	ip := remoteIP(c)
	log := s.log.With("session", id, "listener", k.String(), "remote", ip.String())
	s.mu.Lock()
	over := s.perIP[ip] >= s.cfg.MaxConnsPerIP
	if !over {
		s.perIP[ip]++
	}
	s.mu.Unlock()
	if over {
		// RFC 5321 §3.1: a server may refuse a connection with 421.
		log.Warn("smtpd: too many connections from address", "max", s.cfg.MaxConnsPerIP)
		c.SetWriteDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(c, "421 4.7.0 %s Too many connections from your address, try again later\r\n", s.cfg.Hostname)
		c.Close()
		return
	}
	defer func() {
		s.mu.Lock()
		if s.perIP[ip]--; s.perIP[ip] <= 0 {
			delete(s.perIP, ip)
		}
		s.mu.Unlock()
	}()
	log.Info("smtpd: connect")
	s.conns[k].Add(1)
	defer s.conns[k].Add(-1)
	start := time.Now()

	trusted := s.trusted(ip)
	oc := &oneConn{done: make(chan struct{})}
	nc := &notifyConn{Conn: c, oc: oc}
	oc.conn = nc
	srv := smtp.NewServer(smtp.BackendFunc(func(sc *smtp.Conn) (smtp.Session, error) {
		return &session{s: s, kind: k, conn: sc, nc: nc, log: log, id: id, ip: ip, trusted: trusted}, nil
	}))
	srv.Domain = s.cfg.Hostname
	srv.TLSConfig = s.cfg.TLS
	srv.AllowInsecureAuth = s.cfg.AllowInsecureAuth || trusted
	srv.MaxMessageBytes = s.cfg.MaxMessageBytes
	// Recipients are counted by session.Rcpt, which logs reaching the limit
	// (go-smtp would answer 452 without telling us).
	srv.MaxRecipients = 0
	srv.MaxLineLength = s.cfg.MaxLineLength
	srv.ReadTimeout = s.cfg.ReadTimeout
	srv.WriteTimeout = s.cfg.WriteTimeout
	srv.ErrorLog = errorLog{log}
	var cl *convLog
	if s.cfg.LogConversation {
		cl = newConvLog(log)
		srv.Debug = cl
	}

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		c.Close()
		return
	}
	s.active[srv] = struct{}{}
	s.mu.Unlock()
	srv.Serve(oc)
	s.mu.Lock()
	delete(s.active, srv)
	s.mu.Unlock()
	if cl != nil {
		cl.flush()
	}
	log.Info("smtpd: disconnect", "duration", time.Since(start).Round(time.Millisecond))
}

// oneConn is a net.Listener that yields one connection, then blocks until
// that connection is closed.
type oneConn struct {
	conn      net.Conn
	given     bool
	done      chan struct{}
	closeOnce sync.Once
	mu        sync.Mutex
}

func (o *oneConn) Accept() (net.Conn, error) {
	o.mu.Lock()
	given := o.given
	o.given = true
	o.mu.Unlock()
	if !given {
		return o.conn, nil
	}
	<-o.done
	return nil, net.ErrClosed
}

func (o *oneConn) Close() error {
	o.closeOnce.Do(func() { close(o.done) })
	return nil
}

func (o *oneConn) Addr() net.Addr { return o.conn.LocalAddr() }

// notifyConn ends the oneConn listener when the connection closes, and
// closes the connection after the reply being written when asked to
// (closeAfterReply: go-smtp writes a session's error reply and carries on).
type notifyConn struct {
	net.Conn
	oc        *oneConn
	closeNext atomic.Bool
}

// closeAfterReply closes the connection once the next reply is written.
func (c *notifyConn) closeAfterReply() { c.closeNext.Store(true) }

func (c *notifyConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if c.closeNext.Load() {
		c.Close()
	}
	return n, err
}

func (c *notifyConn) Close() error {
	err := c.Conn.Close()
	c.oc.Close()
	return err
}

// errorLog adapts go-smtp's error logger to slog.
type errorLog struct{ log *slog.Logger }

func (e errorLog) Printf(format string, v ...any) {
	e.log.Info("smtpd: " + strings.TrimSpace(fmt.Sprintf(format, v...)))
}
func (e errorLog) Println(v ...any) { e.log.Info("smtpd: " + strings.TrimSpace(fmt.Sprintln(v...))) }
