// Command roundcube drives Debian's Roundcube webmail in headless Chromium
// against a private Decimail (issue 17, item 5; conformance/ROUNDCUBE.md).
//
// It builds bin/decimail, starts `decimail dev` on a fresh -var directory
// with the IMAP conversation logged (imapd_log_imap, DECIMAIL_DEBUG=1, JSON
// lines), seeds a thread and a view into the demo account, serves Roundcube
// with PHP's built-in server on its own configuration and SQLite database,
// and then, in Chromium through the DevTools protocol (chromedp): logs in,
// lists INBOX sorted by date and then by thread, opens a message, opens the
// view, searches, flags a message, deletes one, sends one through
// submission and sees it arrive, and logs out. Each step asserts on the page
// and on what Decimail holds (`decimail mailbox list`), and saves a
// screenshot; at the end the IMAP conversation log is checked: no BAD, no NO
// but the expected ones, and Roundcube sent SORT and THREAD.
//
// Usage (`make roundcube` installs the packages first,
// conformance/roundcube/setup.sh):
//
//	go run ./conformance/roundcube [-out DIR] [-keep] [-plain] [-cache]
//
// Ports are fixed (13143 IMAP, 13025 SMTP, 13587 submission, 13080 web) so
// that a run can be inspected by hand with -keep, which leaves the servers
// running until Ctrl-C. Everything it starts is stopped before it exits.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"
)

const (
	imapAddr = "127.0.0.1:13143"
	smtpAddr = "127.0.0.1:13025"
	subAddr  = "127.0.0.1:13587"
	webAddr  = "127.0.0.1:13080"
)

func main() {
	out := flag.String("out", "var/roundcube", "output directory: screenshots, logs (emptied first)")
	keep := flag.Bool("keep", false, "after the run, keep Decimail and Roundcube running until Ctrl-C (http://"+webAddr+"/, demo/demo)")
	plain := flag.Bool("plain", false, "IMAP and submission without STARTTLS (default: STARTTLS on both)")
	cache := flag.Bool("cache", false, "Roundcube's IMAP and message caches on (imap_cache db, messages_cache: kept in sync with CONDSTORE)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	dir, err := filepath.Abs(*out)
	if err == nil {
		err = run(ctx, dir, *keep, !*plain, *cache)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "roundcube: FAIL:", err)
		fmt.Fprintln(os.Stderr, "roundcube: screenshots and logs in", dir)
		os.Exit(1)
	}
	fmt.Println("roundcube: PASS; screenshots and logs in", dir)
}

func run(ctx context.Context, out string, keep, starttls, cache bool) error {
	for _, bin := range []string{"/usr/bin/php", "/usr/bin/chromium", "/usr/share/roundcube/index.php", "/usr/share/roundcube/program/lib/Roundcube/db/sqlite.php"} {
		if _, err := os.Stat(bin); err != nil {
			return fmt.Errorf("%s missing: run conformance/roundcube/setup.sh (make roundcube does)", bin)
		}
	}
	if err := os.RemoveAll(out); err != nil {
		return err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	r := &runner{out: out, start: time.Now(), starttls: starttls, cache: cache}
	var err error
	if r.dlog, err = os.Create(filepath.Join(out, "driver.log")); err != nil {
		return err
	}
	defer r.dlog.Close()

	r.bin = filepath.Join(out, "decimail")
	goTool := os.Getenv("GO") // make passes its $(GO)
	if goTool == "" {
		goTool = "go"
	}
	build := exec.CommandContext(ctx, goTool, "build", "-o", r.bin, "./server/cmd/decimail")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	r.logf("building %s", r.bin)
	if err := build.Run(); err != nil {
		return fmt.Errorf("go build: %w", err)
	}

	dm, err := r.startDecimail(ctx)
	if err != nil {
		return err
	}
	defer dm.stop()
	if err := r.seed(ctx); err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	php, err := r.startRoundcube(ctx)
	if err != nil {
		return err
	}
	defer php.stop()

	flowErr := r.browse(ctx)
	logErr := r.checkIMAPLog()
	copyFile(filepath.Join(r.out, "rc", "logs", "imap.log"), filepath.Join(r.out, "roundcube-imap.log"))
	copyFile(filepath.Join(r.out, "rc", "logs", "smtp.log"), filepath.Join(r.out, "roundcube-smtp.log"))
	if b := readFile(filepath.Join(r.out, "rc", "logs", "errors.log")); len(b) > 0 && logErr == nil {
		copyFile(filepath.Join(r.out, "rc", "logs", "errors.log"), filepath.Join(r.out, "roundcube-errors.log"))
		logErr = fmt.Errorf("Roundcube logged errors (roundcube-errors.log):\n%s", b)
	}
	if keep && ctx.Err() == nil {
		fmt.Printf("roundcube: running at http://%s/ (demo/demo), IMAP %s; Ctrl-C stops\n", webAddr, imapAddr)
		<-ctx.Done()
	}
	if flowErr != nil {
		return flowErr
	}
	return logErr
}

func copyFile(from, to string) {
	if b, err := os.ReadFile(from); err == nil {
		os.WriteFile(to, b, 0o644)
	}
}
