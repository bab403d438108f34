package smtpd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"decimail/server/store"
)

// RelayConfig configures the outbound relay. Zero values take defaults.
type RelayConfig struct {
	Host string // smart host "host:port" (smtp_relay_host); empty: direct delivery (Direct), else queued mail bounces (errNoRelay)
	// Direct: without a smart host, deliver to each recipient domain's mail
	// exchangers (smtp_relay_direct, default true; direct.go).
	Direct       *bool
	DirectPort   int           // smtp_relay_direct_port, default 25 (tests: another)
	Resolver     Resolver      // MX lookups, default net.DefaultResolver
	User         string        // smtp_relay_user; AUTH PLAIN when set
	Password     string        // smtp_relay_password
	Hostname     string        // our EHLO name, default os.Hostname()
	TLS          *tls.Config   // for STARTTLS (when offered); default ServerName = host
	GiveUp       time.Duration // smtp_relay_give_up, default 120h (5 days): then bounce
	RetryBase    time.Duration // smtp_relay_retry_base, default 1m; doubles per attempt
	RetryMax     time.Duration // smtp_relay_retry_max, default 4h
	PollInterval time.Duration // smtp_relay_poll, default 30s (LISTEN wakes earlier)
	Workers      int           // smtp_relay_workers, default 2 concurrent sends per process
	Timeout      time.Duration // per SMTP command, default 5m
	// Lease is how long a worker holds a claimed message (smtp_relay_lease,
	// default 30m); its SMTP session is cut off at half of it, so a message
	// is not sent twice unless a worker dies. A dead worker's messages wait
	// for their lease to end.
	Lease time.Duration
	// KeepIdle is how long a session with the smart host or an exchanger
	// stays open after a message for the next one to the same place
	// (reuse.go), default 30 s; negative: a session per message.
	KeepIdle time.Duration
	Now      func() time.Time
}

func (c *RelayConfig) defaults() {
	if c.Hostname == "" {
		c.Hostname, _ = os.Hostname()
		if c.Hostname == "" {
			c.Hostname = "localhost"
		}
	}
	if c.GiveUp <= 0 {
		c.GiveUp = 120 * time.Hour
	}
	if c.RetryBase <= 0 {
		c.RetryBase = time.Minute
	}
	if c.RetryMax <= 0 {
		c.RetryMax = 4 * time.Hour
	}
	if c.PollInterval <= 0 {
		c.PollInterval = 30 * time.Second
	}
	if c.Workers <= 0 {
		c.Workers = 2
	}
	if c.Timeout <= 0 {
		c.Timeout = 5 * time.Minute
	}
	if c.Lease <= 0 {
		c.Lease = 30 * time.Minute
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.KeepIdle == 0 {
		c.KeepIdle = 30 * time.Second
	}
	if c.Direct == nil {
		t := true
		c.Direct = &t
	}
	if c.DirectPort <= 0 {
		c.DirectPort = 25
	}
	if c.Resolver == nil {
		c.Resolver = net.DefaultResolver
	}
}

// LoadRelayConfig overlays the configuration table's smtp_relay_* keys on base.
func LoadRelayConfig(ctx context.Context, st *store.Store, base RelayConfig) (RelayConfig, error) {
	c := base
	var errs []error
	for _, k := range []struct {
		key string
		dst any
	}{
		{"smtp_relay_host", &c.Host}, {"smtp_relay_user", &c.User}, {"smtp_relay_password", &c.Password},
		{"smtp_relay_hostname", &c.Hostname},
		{"smtp_relay_give_up", &c.GiveUp}, {"smtp_relay_retry_base", &c.RetryBase}, {"smtp_relay_retry_max", &c.RetryMax},
		{"smtp_relay_poll", &c.PollInterval}, {"smtp_relay_workers", &c.Workers}, {"smtp_relay_lease", &c.Lease},
		{"smtp_relay_direct", &c.Direct}, {"smtp_relay_direct_port", &c.DirectPort},
	} {
		v, err := st.Config(ctx, k.key, "\x00")
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if v == "\x00" {
			continue
		}
		v = strings.TrimSpace(v)
		switch d := k.dst.(type) {
		case *string:
			*d = v
		case *time.Duration:
			if *d, err = time.ParseDuration(v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", k.key, err))
			}
		case *int:
			if _, err := fmt.Sscan(v, d); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", k.key, err))
			}
		case **bool:
			b, err := strconv.ParseBool(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", k.key, err))
			}
			*d = &b
		}
	}
	return c, errors.Join(errs...)
}

// Relay sends outbound_queue to the smart host. Workers in several processes
// share the queue: a worker leases a message (store.ClaimOutbound), talks
// to the smart host with no transaction open, and records the outcome
// (store.FinishOutbound). A message
// leaves the queue only after 250 for its recipients, or after a bounce:
// at once on 5xx, after GiveUp on 4xx and connection failures (retried with
// exponential backoff meanwhile). Without a smart host (Host empty) the
// message goes to the recipients' exchangers (Direct, direct.go); with
// that off too there is no way out: every queued message bounces at once
// (errNoRelay) rather than waiting for GiveUp.
type Relay struct {
	st  *store.Store
	cfg RelayConfig
	log *slog.Logger
	// idle, when set (tests: export_test.go), is called each time Run has
	// sent what was due and waits; listened reports that LISTEN was in place
	// before that pass began, so only a notification or PollInterval can
	// start the next one.
	idle func(listened bool)
	// conns are the sessions kept open between messages (reuse.go).
	conns idleConns
}

// NewRelay returns a relay; see LoadRelayConfig.
func NewRelay(st *store.Store, cfg RelayConfig, log *slog.Logger) *Relay {
	cfg.defaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Relay{st: st, cfg: cfg, log: log.With("component", "relay"), conns: idleConns{keep: cfg.KeepIdle}}
}

// Run sends due messages until ctx ends, waking on OutboundChannel
// notifications and every PollInterval.
func (r *Relay) Run(ctx context.Context) error {
	ctx = store.WithClass(ctx, store.ClassDelivery)
	if r.cfg.Host == "" && !*r.cfg.Direct {
		r.log.Warn("relay: smtp_relay_host not set and smtp_relay_direct off; mail to remote recipients is bounced to its sender")
	}
	listening, wake := make(chan struct{}, 1), make(chan struct{}, 1)
	go listen(ctx, r.st, store.OutboundChannel, listening, wake, r.log)
	listened := false
	for {
		if _, err := r.RunOnce(ctx); err != nil && ctx.Err() == nil {
			r.log.Error("relay", "err", err)
		}
		if r.idle != nil {
			r.idle(listened)
		}
		select {
		case <-ctx.Done():
			r.conns.closeAll()
			return nil
		case <-listening: // catch up on what was queued before LISTEN
			listened = true
		case <-wake:
		case <-time.After(r.cfg.PollInterval):
		}
	}
}

// RunOnce sends every message due now (Workers at a time) and returns how
// many it handled.
func (r *Relay) RunOnce(ctx context.Context) (int, error) {
	ctx = store.WithClass(ctx, store.ClassDelivery)
	var mu sync.Mutex
	n := 0
	var errs []error
	var wg sync.WaitGroup
	for range r.cfg.Workers {
		wg.Go(func() {
			for ctx.Err() == nil {
				m, err := r.st.ClaimOutbound(ctx, r.cfg.Now(), r.cfg.Lease)
				if err == nil && m != nil {
					err = r.st.FinishOutbound(ctx, m, r.attempt(ctx, m))
					if errors.Is(err, store.ErrLeaseLost) {
						r.log.Warn("relay: lease lost; another worker took the message over", "queue", m.ID)
					}
				}
				mu.Lock()
				if m != nil {
					n++
				}
				if err != nil {
					errs = append(errs, err)
				}
				mu.Unlock()
				if m == nil || err != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	return n, errors.Join(errs...)
}

// failure is why a recipient was not delivered.
type failure struct {
	rcpt string
	err  error
	perm bool
}

func classify(rcpt string, err error) failure {
	var se *smtp.SMTPError
	var le *localError
	perm := errors.As(err, &se) && se.Code >= 500 || errors.As(err, &le) && strings.HasPrefix(le.status, "5.")
	return failure{rcpt, err, perm}
}

func (r *Relay) attempt(ctx context.Context, m *store.OutboundMessage) store.OutboundResult {
	log := r.log.With("queue", m.ID, "from", m.MailFrom, "attempt", m.Attempts+1)
	fails := r.send(ctx, m)
	now := r.cfg.Now()
	var res store.OutboundResult
	var bounce, temp []failure
	for _, f := range fails {
		switch {
		case f.perm:
			bounce = append(bounce, f)
		case now.Sub(m.CreatedAt) >= r.cfg.GiveUp:
			f.err = fmt.Errorf("gave up after %s: %w", r.cfg.GiveUp, f.err)
			bounce = append(bounce, f)
		default:
			temp = append(temp, f)
		}
	}
	for _, f := range temp {
		res.Remaining = append(res.Remaining, f.rcpt)
		if res.LastError == "" {
			res.LastError = f.err.Error()
		}
	}
	if len(temp) > 0 {
		res.NextAttempt = now.Add(r.backoff(m.Attempts))
		log.Warn("relay: deferred", "rcpts", res.Remaining, "err", res.LastError, "next", res.NextAttempt)
	}
	if len(bounce) > 0 {
		if err := r.bounce(ctx, m, bounce); err != nil {
			// Keep them queued; the bounce is retried with the next attempt.
			log.Error("relay: cannot deliver bounce", "err", err)
			for _, f := range bounce {
				res.Remaining = append(res.Remaining, f.rcpt)
			}
			res.NextAttempt, res.LastError = now.Add(r.cfg.RetryBase), "bounce failed: "+err.Error()
		} else {
			log.Warn("relay: bounced", "rcpts", len(bounce), "err", bounce[0].err)
		}
	}
	if len(fails) == 0 {
		log.Info("relay: sent", "rcpts", m.RcptTo)
	}
	return res
}

func (r *Relay) backoff(attempts int) time.Duration {
	d := r.cfg.RetryBase
	for i := 0; i < attempts && d < r.cfg.RetryMax; i++ {
		d *= 2
	}
	return min(d, r.cfg.RetryMax)
}

// send tries the smart host once and returns the recipients not accepted.
func (r *Relay) send(ctx context.Context, m *store.OutboundMessage) []failure {
	all := func(err error) []failure {
		fs := make([]failure, len(m.RcptTo))
		for i, rc := range m.RcptTo {
			fs[i] = classify(rc, err)
		}
		return fs
	}
	data, err := r.sign(ctx, m.Data)
	if err != nil {
		return all(err) // retried: the key could not be read
	}
	if r.cfg.Host == "" {
		if *r.cfg.Direct {
			return r.sendDirect(ctx, m, data)
		}
		return all(errNoRelay)
	}
	dest := "relay " + r.cfg.User + "@" + r.cfg.Host
	c := r.conns.take(dest)
	if c == nil {
		if c, err = r.dial(ctx); err != nil {
			return all(err)
		}
		if r.cfg.User != "" {
			if err := c.Auth(sasl.NewPlainClient("", r.cfg.User, r.cfg.Password)); err != nil {
				c.Close()
				return all(fmt.Errorf("auth: %w", err))
			}
		}
	}
	c.begin(r.cfg.Lease)
	fails, connErr := r.transact(c, m.RcptTo, m.MailFrom, data)
	if connErr != nil {
		c.Close()
	} else {
		r.conns.put(dest, c)
	}
	return fails
}

// dial connects to the smart host, with STARTTLS when it is offered
// (RFC 3207). go-smtp can start TLS only on a fresh client, so when the
// first EHLO shows STARTTLS we reconnect and start TLS right away.
func (r *Relay) dial(ctx context.Context) (*relayConn, error) {
	d := net.Dialer{Timeout: 30 * time.Second}
	end := time.Now().Add(r.cfg.Lease / 2)
	conn, err := d.DialContext(ctx, "tcp", r.cfg.Host)
	if err != nil {
		return nil, err
	}
	ec := &endConn{Conn: conn, end: end}
	ec.SetDeadline(time.Time{})
	c := smtp.NewClient(ec)
	c.CommandTimeout, c.SubmissionTimeout = r.cfg.Timeout, 2*r.cfg.Timeout
	if err := c.Hello(r.cfg.Hostname); err != nil {
		c.Close()
		return nil, err
	}
	if ok, _ := c.Extension("STARTTLS"); !ok {
		return &relayConn{Client: c, ec: ec}, nil
	}
	c.Quit()
	tc := r.cfg.TLS
	if tc == nil {
		host, _, _ := net.SplitHostPort(r.cfg.Host)
		tc = &tls.Config{ServerName: host}
	}
	if conn, err = d.DialContext(ctx, "tcp", r.cfg.Host); err != nil {
		return nil, err
	}
	ec = &endConn{Conn: conn, end: end}
	ec.SetDeadline(time.Time{})
	if c, err = smtp.NewClientStartTLS(ec, tc); err != nil {
		return nil, fmt.Errorf("starttls: %w", err)
	}
	c.CommandTimeout, c.SubmissionTimeout = r.cfg.Timeout, 2*r.cfg.Timeout
	if err := c.Hello(r.cfg.Hostname); err != nil {
		c.Close()
		return nil, err
	}
	return &relayConn{Client: c, ec: ec}, nil
}

// endConn bounds a whole session: go-smtp's client sets a deadline per
// command and none while the message data is written; every deadline is
// clamped to end.
type endConn struct {
	net.Conn
	end time.Time
}

func (c *endConn) clamp(t time.Time) time.Time {
	if t.IsZero() || t.After(c.end) {
		return c.end
	}
	return t
}

func (c *endConn) SetDeadline(t time.Time) error      { return c.Conn.SetDeadline(c.clamp(t)) }
func (c *endConn) SetReadDeadline(t time.Time) error  { return c.Conn.SetReadDeadline(c.clamp(t)) }
func (c *endConn) SetWriteDeadline(t time.Time) error { return c.Conn.SetWriteDeadline(c.clamp(t)) }

// listen wakes wake on every notification of channel, on a dedicated
// connection (never a pooled one), reconnecting after errors. After each
// LISTEN it signals listening, for the caller to catch up on what was
// missed while not listening (it may be wake).
func listen(ctx context.Context, st *store.Store, channel string, listening, wake chan<- struct{}, log *slog.Logger) {
	for ctx.Err() == nil {
		err := func() error {
			conn, err := pgxConnect(ctx, st)
			if err != nil {
				return err
			}
			defer conn.Close(context.Background())
			if _, err := conn.Exec(ctx, "LISTEN "+channel); err != nil {
				return err
			}
			select {
			case listening <- struct{}{}:
			default:
			}
			for {
				if _, err := conn.WaitForNotification(ctx); err != nil {
					return err
				}
				select {
				case wake <- struct{}{}:
				default:
				}
			}
		}()
		if ctx.Err() != nil {
			return
		}
		log.Warn("listen: reconnecting", "channel", channel, "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}
