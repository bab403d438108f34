package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"decimail/fixtures"
	"decimail/server/imapd"
	"decimail/server/metrics"
	"decimail/server/pgrun"
	"decimail/server/store"
)

// listenFlags are the daemon addresses; "" disables a listener.
type listenFlags struct {
	imap, imaps                 string
	smtp, submission            string
	certFile, keyFile, hostname string
	pprof                       string
	admin                       string // /metrics and /healthz (metrics.go)
	logFormat                   string
}

func (l *listenFlags) register(fs *flag.FlagSet, imap, imaps, smtp, sub, admin string) {
	fs.StringVar(&l.imap, "imap", imap, "IMAP listen address (STARTTLS when a certificate is set); empty disables")
	fs.StringVar(&l.imaps, "imaps", imaps, "IMAP over implicit TLS listen address; empty disables")
	fs.StringVar(&l.smtp, "smtp", smtp, "SMTP (MX) listen address; empty disables")
	fs.StringVar(&l.submission, "submission", sub, "SMTP submission listen address; empty disables")
	fs.StringVar(&l.certFile, "tls-cert", "", "TLS certificate (PEM)")
	fs.StringVar(&l.keyFile, "tls-key", "", "TLS key (PEM)")
	host, _ := os.Hostname()
	fs.StringVar(&l.hostname, "hostname", host, "host name for greetings and Received: lines")
	fs.StringVar(&l.pprof, "pprof", "", "serve Go's net/http/pprof on this loopback address (diagnostics, e.g. 127.0.0.1:6060); empty disables")
	fs.StringVar(&l.admin, "admin", admin, "serve /metrics (Prometheus) and /healthz on this address, e.g. 127.0.0.1:9150; empty disables")
	fs.StringVar(&l.logFormat, "log-format", "text", "log lines as text (key=value) or json")
}

// servePprof exposes net/http/pprof on a loopback address: profiles show
// where a running server spends its time (bench/ANALYSIS.md), and they are
// nobody else's business, so other addresses are refused.
func servePprof(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("pprof: %w", err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("pprof: %s is not a loopback address", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("pprof: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	slog.Info("listening", "daemon", "pprof", "addr", ln.Addr().String())
	go http.Serve(ln, mux)
	return nil
}

func init() {
	var lf listenFlags
	register(&command{name: "serve", help: "run the daemons on $DECIMAIL_DATABASE_URL",
		flags: func(fs *flag.FlagSet) { lf.register(fs, ":143", "", ":25", ":587", "") },
		run: func(ctx context.Context, _ *flag.FlagSet, _ []string) error {
			if err := setLogFormat(lf.logFormat); err != nil {
				return err
			}
			s, err := openStore(ctx)
			if err != nil {
				return err
			}
			defer s.Close()
			var tlsCfg *tls.Config
			if lf.certFile != "" {
				cert, err := tls.LoadX509KeyPair(lf.certFile, lf.keyFile)
				if err != nil {
					return err
				}
				tlsCfg = &tls.Config{Certificates: []tls.Certificate{cert}}
			}
			return runDaemons(ctx, s, lf, tlsCfg, nil)
		}})

	var dlf listenFlags
	register(&command{name: "dev", help: "private Postgres under -var DIR (./var), demo account, daemons on loopback (make run)",
		flags: func(fs *flag.FlagSet) {
			dlf.register(fs, "127.0.0.1:1143", "127.0.0.1:1993", "127.0.0.1:2525", "127.0.0.1:2587", "127.0.0.1:9150")
		},
		run: func(ctx context.Context, _ *flag.FlagSet, _ []string) error {
			if err := setLogFormat(dlf.logFormat); err != nil {
				return err
			}
			return runDev(ctx, dlf, varDir)
		}})
}

// runDev starts (or reuses) the private cluster under dir, provisions the
// demo account once, and serves until interrupted.
func runDev(ctx context.Context, lf listenFlags, dir string) error {
	defer takeTerminal()() // Ctrl-C to decimail alone: `make run` exits 0
	log := slog.Default()
	dsn := os.Getenv("DECIMAIL_DATABASE_URL")
	if dsn == "" {
		inst, err := pgrun.Start(ctx, pgrun.Options{Dir: filepath.Join(dir, "pg"), NoContainers: true, Durable: true, Log: log})
		if err != nil {
			return err
		}
		defer inst.Stop()
		dsn = inst.DSN
		if err := os.WriteFile(filepath.Join(dir, "dsn"), []byte(dsn+"\n"), 0o600); err != nil {
			return err
		}
		defer os.Remove(filepath.Join(dir, "dsn"))
	}
	spool, _ := filepath.Abs(filepath.Join(dir, "spool"))
	s, err := store.Open(ctx, dsn, store.Options{SpoolDir: spool, Log: log})
	if err != nil {
		return err
	}
	defer s.Close()
	if err := provisionDemo(ctx, s); err != nil {
		return err
	}
	tlsCfg, err := devCertificate(dir)
	if err != nil {
		return err
	}
	banner := func() {
		fmt.Printf(`
Decimail is running (Ctrl-C stops it). Demo account: user "demo", password "demo", address demo@example.test

  IMAP        %s  (plain or STARTTLS; self-signed certificate)
  IMAPS       %s
  SMTP (MX)   %s
  Submission  %s  (AUTH PLAIN as demo/demo)
  Metrics     %s  (/metrics, /healthz)

  mutt:         mutt -f imap://demo:demo@%s/INBOX
  Thunderbird:  Account Settings > Add Mail Account > "Configure manually":
                incoming IMAP, server %s, port %s, connection security None,
                authentication "Normal password", user name demo (password demo);
                outgoing SMTP, server %s, port %s, None, "Normal password", demo
  curl:         curl -u demo:demo imap://%s/INBOX -X 'UID SEARCH ALL'
  send a mail:  swaks --server %s --to demo@example.test
  admin:        go run ./server/cmd/decimail -h   (e.g. mailbox list demo)

`, lf.imap, lf.imaps, lf.smtp, lf.submission, orOff(lf.admin), lf.imap, host(lf.imap), port(lf.imap),
			host(lf.submission), port(lf.submission), lf.imap, lf.smtp)
	}
	return runDaemons(ctx, s, lf, tlsCfg, banner)
}

func host(addr string) string { h, _, _ := net.SplitHostPort(addr); return h }
func port(addr string) string { _, p, _ := net.SplitHostPort(addr); return p }

// provisionDemo creates the demo account with the sample corpus once.
func provisionDemo(ctx context.Context, s *store.Store) error {
	u, err := s.CreateUser(ctx, "demo", "demo")
	if errors.Is(err, store.ErrExists) {
		return nil
	} else if err != nil {
		return err
	}
	if err := s.AddAddress(ctx, "demo@example.test", "demo"); err != nil {
		return err
	}
	for _, v := range []struct{ name, def string }{
		{"Views/Go list", `HEADER List-Id golang-nuts`},
		{"Views/From alice", `FROM alice`},
		{"Views/Large", `LARGER 50000`},
		{"Views/Unread and flagged", `UNSEEN FLAGGED`},
	} {
		if _, err := s.DefineMailbox(ctx, u.ID, v.name, v.def); err != nil {
			return fmt.Errorf("view %s: %w", v.name, err)
		}
	}
	if err := fixtures.LoadSeed(ctx, s, u.ID); err != nil {
		return err
	}
	slog.Info("created demo account with the sample corpus", "user", "demo")
	return nil
}

// runDaemons starts every configured listener and blocks until ctx ends.
func runDaemons(ctx context.Context, s *store.Store, lf listenFlags, tlsCfg *tls.Config, ready func()) error {
	log := slog.Default()
	if lf.pprof != "" {
		if err := servePprof(lf.pprof); err != nil {
			return err
		}
	}
	cfg, err := imapConfig(ctx, s, lf.hostname, tlsCfg)
	if err != nil {
		return err
	}
	srv := imapd.New(cfg, s, log.With("daemon", "imap"))
	m := metrics.New(s)
	m.WatchIMAP(srv)
	// Subscribed before the listeners start: no change after them is missed.
	changed, unsubscribe := s.Notifier().SubscribeConfig()
	defer unsubscribe()
	go reloadIMAP(ctx, s, srv, changed, lf.hostname, tlsCfg)
	errc := make(chan error, 8)
	serve := func(addr string, fn func(net.Listener) error, what string) error {
		if addr == "" {
			return nil
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		log.Info("listening", "daemon", what, "addr", ln.Addr().String())
		go func() { errc <- fn(ln) }()
		return nil
	}
	if err := serve(lf.imap, srv.Serve, "imap"); err != nil {
		return err
	}
	if tlsCfg != nil {
		if err := serve(lf.imaps, srv.ServeTLS, "imaps"); err != nil {
			return err
		}
	}
	stopSMTP, err := startSMTP(ctx, s, lf, tlsCfg, serve, m)
	if err != nil {
		return err
	}
	if lf.admin != "" {
		stopAdmin, err := serveAdmin(lf.admin, m.Handler())
		if err != nil {
			stopSMTP()
			return err
		}
		defer stopAdmin()
	}
	if ready != nil {
		ready()
	}
	select {
	case <-ctx.Done():
	case err := <-errc:
		if err != nil && !errors.Is(err, imapd.ErrServerClosed) {
			log.Error("listener failed", "err", err)
		}
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	srv.Shutdown(sctx)
	stopSMTP()
	return nil
}

// imapConfig builds the IMAP configuration from flags and the configuration
// table: imapd_log_imap (true/false), imapd_disable (comma-separated
// capabilities), imapd_disable:<user> (per user), imapd_allow_plaintext,
// imapd_max_list_pattern (bytes; negative: no limit), imapd_sent_dedup_window
// (a duration; negative: off).
func imapConfig(ctx context.Context, s *store.Store, hostname string, tlsCfg *tls.Config) (imapd.Config, error) {
	var readErr error
	get := func(k string) string {
		v, err := s.Config(ctx, k, "")
		if err != nil && readErr == nil {
			readErr = fmt.Errorf("configuration %s: %w", k, err)
		}
		return v
	}
	cfg := imapd.Config{Hostname: hostname, TLS: tlsCfg, Version: "0.1",
		LogIMAP: get("imapd_log_imap") == "true", AllowPlaintext: get("imapd_allow_plaintext") == "true",
		Disabled: capSet(get("imapd_disable"))}
	if v := get("imapd_max_list_pattern"); v != "" {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n == 0 {
			return cfg, fmt.Errorf("configuration imapd_max_list_pattern = %q: want a non-zero integer (negative: no limit)", v)
		}
		cfg.MaxListPattern = n
	}
	if v := get("imapd_sent_dedup_window"); v != "" {
		d, err := time.ParseDuration(strings.TrimSpace(v))
		if err != nil || d == 0 {
			return cfg, fmt.Errorf("configuration imapd_sent_dedup_window = %q: want a non-zero duration such as 10m (negative: off)", v)
		}
		cfg.SentDedupWindow = d
	}
	cfg.PerUserDisabled = func(user string) map[string]bool {
		v, _ := s.Config(context.Background(), "imapd_disable:"+user, "")
		return capSet(v)
	}
	return cfg, readErr
}

// reloadIMAP re-reads the IMAP settings after every change of the
// configuration table (store.ConfigChannel) until ctx ends: the keys marked
// live in store.Settings take effect for new connections without restart.
// A value that does not parse is logged and the settings stay as they were.
func reloadIMAP(ctx context.Context, s *store.Store, srv *imapd.Server, changed <-chan struct{}, hostname string, tlsCfg *tls.Config) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-changed:
		}
		cfg, err := imapConfig(ctx, s, hostname, tlsCfg)
		if ctx.Err() != nil {
			return
		} else if err != nil {
			slog.Error("configuration changed, not reloaded", "daemon", "imap", "err", err)
			continue
		}
		srv.Reload(cfg)
		slog.Info("configuration reloaded", "daemon", "imap")
	}
}

func capSet(list string) map[string]bool {
	m := map[string]bool{}
	for _, c := range strings.Split(list, ",") {
		if c = strings.ToUpper(strings.TrimSpace(c)); c != "" {
			m[c] = true
		}
	}
	return m
}

// devCertificate returns a self-signed certificate for localhost kept in dir.
func devCertificate(dir string) (*tls.Config, error) {
	certFile, keyFile := filepath.Join(dir, "dev-cert.pem"), filepath.Join(dir, "dev-key.pem")
	if cert, err := tls.LoadX509KeyPair(certFile, keyFile); err == nil {
		return &tls.Config{Certificates: []tls.Certificate{cert}}, nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "localhost"},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().AddDate(5, 0, 0),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	os.MkdirAll(dir, 0o700)
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}}, nil
}
