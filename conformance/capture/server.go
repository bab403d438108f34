package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"

	"decimail/conformance"
	"decimail/server/imapd"
	"decimail/server/pgrun"
	"decimail/server/store"
)

// server is Decimail in this process on a private, fresh Postgres cluster,
// with the seed account built like the replay builds it
// (conformance.SetupAccount) and the IMAP conversation logged at debug
// level (imapd Config.LogIMAP, the imapd_log_imap setting of `decimail
// serve`) to <capture>.server.log.
type server struct {
	pg      *pgrun.Instance
	st      *store.Store
	srv     *imapd.Server
	addr    string
	user    int64
	logFile *os.File
}

func startServer(ctx context.Context, dir, capture, setup string) (*server, error) {
	lf, err := os.Create(filepath.Join(dir, capture+".server.log"))
	if err != nil {
		return nil, err
	}
	log := slog.New(slog.NewTextHandler(lf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s := &server{logFile: lf}
	// A cluster of its own in a temporary directory (Stop removes it); never
	// a container, never $DECIMAIL_DATABASE_URL: the capture must start from
	// exactly the seed account.
	s.pg, err = pgrun.Start(ctx, pgrun.Options{NoContainers: true, Log: log.With("component", "pgrun")})
	if err != nil {
		lf.Close()
		return nil, fmt.Errorf("postgres: %w", err)
	}
	s.st, err = store.Open(ctx, s.pg.DSN, store.Options{PasswordCost: bcrypt.MinCost, Log: log.With("component", "store")})
	if err != nil {
		s.stop()
		return nil, err
	}
	if s.user, err = conformance.SetupAccount(ctx, s.st, setup); err != nil {
		s.stop()
		return nil, fmt.Errorf("account %s: %w", setup, err)
	}
	// The replay's configuration (transcript_test.go startSeedServer) plus
	// the conversation log.
	s.srv = imapd.New(imapd.Config{AuthFailDelay: 10 * time.Millisecond, LogIMAP: true}, s.st, log.With("daemon", "imap"))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		s.stop()
		return nil, err
	}
	s.addr = ln.Addr().String()
	go s.srv.Serve(ln)
	return s, nil
}

func (s *server) stop() {
	if s.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		s.srv.Shutdown(ctx)
		cancel()
		s.srv.Close()
	}
	if s.st != nil {
		s.st.Close()
	}
	if s.pg != nil {
		s.pg.Stop()
	}
	if s.logFile != nil {
		s.logFile.Close()
	}
}

// deliver stores one of the extra seed messages into INBOX through the
// store, as the replay does (transcript_test.go seedEnv.deliver).
func (s *server) deliver(ctx context.Context, file string) error {
	raw, err := conformance.ExtraMessage(file)
	if err != nil {
		return err
	}
	_, err = s.st.Deliver(ctx, s.user, raw, store.DeliverOptions{Mailbox: "INBOX"})
	return err
}

// outcome writes conformance.Outcome: where every seed message is now.
func (s *server) outcome(ctx context.Context, w io.Writer) error {
	text, err := conformance.Outcome(ctx, s.st, s.user)
	if err != nil {
		return err
	}
	_, err = io.WriteString(w, text)
	return err
}

// revision names the code under capture: git's short commit, with
// "+uncommitted" when server/ or schema/ (the code that answers) has
// changes that are not committed; changes elsewhere (this harness, tests,
// fixtures) do not make a capture's server differ from the commit.
func revision() string {
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown revision"
	}
	rev := "commit " + strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "status", "--porcelain", "--", "server", "schema").Output(); err != nil || len(st) > 0 {
		rev += "+uncommitted"
	}
	return rev
}
