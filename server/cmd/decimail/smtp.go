package main

import (
	"context"
	"crypto/tls"
	"net"

	"decimail/server/store"
)

// startSMTP starts the SMTP listeners (MX and submission). Wired to
// server/smtpd once that package lands; until then nothing listens.
func startSMTP(ctx context.Context, s *store.Store, lf listenFlags, tlsCfg *tls.Config,
	serve func(addr string, fn func(net.Listener) error, what string) error) (stop func(), err error) {
	return func() {}, nil
}
