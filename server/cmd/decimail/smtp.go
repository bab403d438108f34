package main

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"sync"

	"decimail/server/smtpd"
	"decimail/server/store"
)

func init() {
	register(&command{name: "delete-daemon", help: "remove spool files of deleted messages (delete_log), per delete_retention",
		run: withStore(func(ctx context.Context, s *store.Store, _ []string) error {
			cfg, err := smtpd.LoadDeleteConfig(ctx, s, smtpd.DeleteConfig{})
			if err != nil {
				return err
			}
			return smtpd.NewDeleteDaemon(s, cfg, slog.Default().With("daemon", "delete")).Run(ctx)
		})})
	register(&command{name: "auto add", args: "USER ADDRESS TEMPLATE",
		help: "make ADDRESS (e.g. auto@example.com) rewrite outgoing mail per correspondent; TEMPLATE e.g. %s@example.com",
		run: withUser(func(ctx context.Context, s *store.Store, u store.User, args []string) error {
			if err := needArgs(args, 2, "USER ADDRESS TEMPLATE"); err != nil {
				return err
			}
			return s.AddAutoUser(ctx, args[0], u.Name, args[1])
		})})
}

// startSMTP starts the MX and submission listeners, the relay worker and the
// delete daemon; stop ends them.
func startSMTP(ctx context.Context, s *store.Store, lf listenFlags, tlsCfg *tls.Config,
	serve func(addr string, fn func(net.Listener) error, what string) error) (stop func(), err error) {
	log := slog.Default()
	cfg, err := smtpd.LoadConfig(ctx, s, smtpd.Config{Hostname: lf.hostname, TLS: tlsCfg})
	if err != nil {
		return nil, err
	}
	srv := smtpd.New(cfg, s, log.With("daemon", "smtp"))
	if err := serve(lf.smtp, srv.ServeMX, "smtp"); err != nil {
		return nil, err
	}
	if err := serve(lf.submission, srv.ServeSubmission, "submission"); err != nil {
		return nil, err
	}
	rcfg, err := smtpd.LoadRelayConfig(ctx, s, smtpd.RelayConfig{Hostname: lf.hostname})
	if err != nil {
		return nil, err
	}
	dcfg, err := smtpd.LoadDeleteConfig(ctx, s, smtpd.DeleteConfig{})
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); smtpd.NewRelay(s, rcfg, log.With("daemon", "relay")).Run(wctx) }()
	go func() { defer wg.Done(); smtpd.NewDeleteDaemon(s, dcfg, log.With("daemon", "delete")).Run(wctx) }()
	return func() {
		srv.Close()
		cancel()
		wg.Wait()
	}, nil
}
