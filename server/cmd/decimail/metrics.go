package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"
)

// serveAdmin serves h (server/metrics: /metrics, /healthz) on addr. The
// figures tell nothing secret, but they are an operator's: bind it to
// loopback or a management network (README "Metrics").
func serveAdmin(addr string, h http.Handler) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("admin: %w", err)
	}
	slog.Info("listening", "daemon", "admin", "addr", ln.Addr().String())
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second,
		ErrorLog: slog.NewLogLogger(slog.Default().With("daemon", "admin").Handler(), slog.LevelWarn)}
	go srv.Serve(ln)
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}, nil
}

// setLogFormat replaces the default logger's handler: "text" (key=value,
// the default) or "json" (one object per line, for a log collector).
func setLogFormat(format string) error {
	opts := &slog.HandlerOptions{Level: logLevel()}
	switch format {
	case "text", "":
		slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, opts)))
	case "json":
		slog.SetDefault(slog.New(slog.NewJSONHandler(os.Stderr, opts)))
	default:
		return fmt.Errorf("-log-format %q: want text or json", format)
	}
	return nil
}

func orOff(addr string) string {
	if addr == "" {
		return "(off)"
	}
	return addr
}
