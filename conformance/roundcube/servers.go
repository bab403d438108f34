package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// runner holds what one run started and where it writes.
type runner struct {
	out   string // output directory
	bin   string // the decimail binary built for the run
	start time.Time
	dlog  *os.File
	mu    sync.Mutex
	shots int
	// starttls: Roundcube talks STARTTLS to IMAP and submission (else plain).
	starttls bool
	// cache: Roundcube's IMAP and message caches on.
	cache bool
}

// logf notes what the driver does, with seconds since the start, in
// driver.log and on stderr.
func (r *runner) logf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	line := fmt.Sprintf("+%6.2f %s\n", time.Since(r.start).Seconds(), fmt.Sprintf(format, args...))
	r.dlog.WriteString(line)
	os.Stderr.WriteString("roundcube: " + line)
}

func (r *runner) varDir() string { return filepath.Join(r.out, "var") }

// proc is a program the run started, in a process group of its own, so
// that stopping it stops its children too (PHP's workers) and nothing else.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
}

func startProc(name string, cmd *exec.Cmd, logFile string) (*proc, error) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	f, err := os.Create(logFile)
	if err != nil {
		return nil, err
	}
	defer f.Close() // the child has its own descriptor
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); close(p.done) }()
	return p, nil
}

// stop: SIGINT (decimail dev shuts down and stops its Postgres on it),
// SIGTERM after 20 s, SIGKILL of the group after 5 more.
func (p *proc) stop() {
	if p == nil {
		return
	}
	pgid := p.cmd.Process.Pid
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		syscall.Kill(-pgid, sig)
		wait := 20 * time.Second
		if sig == syscall.SIGTERM {
			wait = 5 * time.Second
		}
		select {
		case <-p.done:
			syscall.Kill(-pgid, syscall.SIGKILL) // leftovers of the group
			return
		case <-time.After(wait):
		}
	}
	syscall.Kill(-pgid, syscall.SIGKILL)
	<-p.done
}

// portFree fails when something already listens on addr: a leftover run.
func portFree(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 300*time.Millisecond)
	if err == nil {
		c.Close()
		return fmt.Errorf("%s is in use (a run left behind? `ss -ltnp | grep %s`)", addr, addr[strings.LastIndex(addr, ":")+1:])
	}
	return nil
}

func waitPort(ctx context.Context, addr string, d time.Duration, p *proc) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", addr, 300*time.Millisecond); err == nil {
			c.Close()
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited before listening on %s", p.name, addr)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s: nothing listens on %s after %v", p.name, addr, d)
}

// startDecimail runs `decimail dev` on a fresh -var directory: its own
// Postgres cluster, the demo account with the seed corpus, IMAP on
// imapAddr (plain or STARTTLS), submission on subAddr; the log as JSON
// lines with debug level, so that the IMAP conversation (imapd_log_imap,
// set once it runs: the setting is live) is in decimail.log.
func (r *runner) startDecimail(ctx context.Context) (*proc, error) {
	for _, a := range []string{imapAddr, smtpAddr, subAddr, webAddr} {
		if err := portFree(a); err != nil {
			return nil, err
		}
	}
	cmd := exec.Command(r.bin, "dev", "-var", r.varDir(), "-imap", imapAddr, "-imaps", "", "-smtp", smtpAddr,
		"-submission", subAddr, "-admin", "", "-hostname", "mail.example.test", "-log-format", "json")
	cmd.Env = append(cleanEnv(), "DECIMAIL_DEBUG=1")
	r.logf("starting decimail dev (log: decimail.log)")
	p, err := startProc("decimail dev", cmd, filepath.Join(r.out, "decimail.log"))
	if err != nil {
		return nil, err
	}
	if err := waitPort(ctx, subAddr, 3*time.Minute, p); err != nil {
		p.stop()
		return nil, err
	}
	if _, err := r.cli(ctx, nil, "config", "set", "imapd_log_imap", "true"); err != nil {
		p.stop()
		return nil, err
	}
	// The setting reaches the running server through NOTIFY: wait for it.
	deadline := time.Now().Add(30 * time.Second)
	for !bytes.Contains(readFile(filepath.Join(r.out, "decimail.log")), []byte("configuration reloaded")) {
		if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("decimail did not reload its configuration after imapd_log_imap")
		}
		time.Sleep(100 * time.Millisecond)
	}
	r.logf("decimail: IMAP %s, submission %s, conversation log on", imapAddr, subAddr)
	return p, nil
}

// cleanEnv is the environment without a DSN: dev starts its own cluster,
// and the admin commands find it through -var.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DECIMAIL_DATABASE_URL=") && !strings.HasPrefix(kv, "DECIMAIL_SPOOL=") && !strings.HasPrefix(kv, "DECIMAIL_DEBUG=") {
			env = append(env, kv)
		}
	}
	return env
}

func readFile(p string) []byte { b, _ := os.ReadFile(p); return b }

// cli runs an admin command of the run's decimail on its dev cluster.
func (r *runner) cli(ctx context.Context, stdin []byte, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, r.bin, append([]string{"-var", r.varDir()}, args...)...)
	cmd.Env = cleanEnv()
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	b, err := cmd.CombinedOutput()
	if err != nil {
		return string(b), fmt.Errorf("decimail %s: %v\n%s", strings.Join(args, " "), err, b)
	}
	return string(b), nil
}

// counts is `decimail mailbox list demo`: messages per mailbox.
func (r *runner) counts(ctx context.Context) (map[string]int, error) {
	out, err := r.cli(ctx, nil, "mailbox", "list", "demo")
	if err != nil {
		return nil, err
	}
	m := map[string]int{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		// "Views/Go list                 5 msgs      3 unseen ..."
		line := sc.Text()
		i := strings.Index(line, " msgs")
		if i < 0 {
			continue
		}
		f := strings.Fields(line[:i])
		n, err := strconv.Atoi(f[len(f)-1])
		if err != nil {
			continue
		}
		name := strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(line[:i]), f[len(f)-1]))
		m[name] = n
	}
	return m, nil
}

// The seeded thread: a root, two replies to it and a reply to a reply
// (In-Reply-To and References), with an unrelated message between them in
// date order, so that INBOX by date and INBOX by thread differ.
type seedMsg struct{ id, subject, inReplyTo, refs, from, body string }

var threadMsgs = []seedMsg{
	{id: "rp-1@example.org", subject: "Release plan for 2.0", from: "Carol <carol@example.org>", body: "Shall we cut 2.0 on Friday?"},
	{id: "lunch@example.org", subject: "Lunch on Thursday", from: "Dave <dave@example.org>", body: "Noodles at noon?"},
	{id: "rp-2@example.org", subject: "Re: Release plan for 2.0", inReplyTo: "rp-1@example.org", refs: "<rp-1@example.org>", from: "Erin <erin@example.org>", body: "Friday works; the changelog is not done."},
	{id: "rp-3@example.org", subject: "Re: Release plan for 2.0", inReplyTo: "rp-1@example.org", refs: "<rp-1@example.org>", from: "Frank <frank@example.org>", body: "Please wait for the NOTIFY fix."},
	{id: "rp-4@example.org", subject: "Re: Re: Release plan for 2.0", inReplyTo: "rp-2@example.org", refs: "<rp-1@example.org> <rp-2@example.org>", from: "Carol <carol@example.org>", body: "I will write the changelog tonight."},
}

const viewName = "Views/Release plan"

func (r *runner) seed(ctx context.Context) error {
	now := time.Now()
	for i, m := range threadMsgs {
		date := now.Add(time.Duration(i-len(threadMsgs)) * 10 * time.Minute)
		var b strings.Builder
		fmt.Fprintf(&b, "From: %s\r\nTo: Demo <demo@example.test>\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: <%s>\r\n",
			m.from, m.subject, date.Format(time.RFC1123Z), m.id)
		if m.inReplyTo != "" {
			fmt.Fprintf(&b, "In-Reply-To: <%s>\r\nReferences: %s\r\n", m.inReplyTo, m.refs)
		}
		fmt.Fprintf(&b, "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n%s\r\n", m.body)
		if _, err := r.cli(ctx, []byte(b.String()), "deliver", "demo"); err != nil {
			return err
		}
	}
	if _, err := r.cli(ctx, nil, "mailbox", "define", "demo", viewName, `SUBJECT "Release plan"`); err != nil {
		return err
	}
	r.logf("seeded %d messages into INBOX and the view %q", len(threadMsgs), viewName)
	return nil
}

// startRoundcube writes Roundcube's configuration into out/rc/config (the
// package's own /etc/roundcube stays untouched: ROUNDCUBE_CONFIG_DIR points
// at ours), with a fresh SQLite database that Roundcube creates on first
// use, and serves Debian's public_html with PHP's built-in server.
func (r *runner) startRoundcube(ctx context.Context) (*proc, error) {
	rc := filepath.Join(r.out, "rc")
	for _, d := range []string{"config", "logs", "temp"} {
		if err := os.MkdirAll(filepath.Join(rc, d), 0o755); err != nil {
			return nil, err
		}
	}
	for _, f := range []string{"defaults.inc.php", "mimetypes.php"} {
		if err := os.Symlink(filepath.Join("/etc/roundcube", f), filepath.Join(rc, "config", f)); err != nil {
			return nil, err
		}
	}
	scheme := ""
	if r.starttls {
		scheme = "tls://"
	}
	conf := fmt.Sprintf(roundcubeConfig, filepath.Join(rc, "roundcube.db"), scheme+imapAddr, scheme+subAddr,
		filepath.Join(rc, "logs")+"/", filepath.Join(rc, "temp")+"/")
	if r.cache {
		// Roundcube's caches, in its SQLite database: the folder and index
		// cache and the message cache, kept in sync with CONDSTORE
		// (HIGHESTMODSEQ, FETCH ... CHANGEDSINCE).
		conf += "$config['imap_cache'] = 'db';\n$config['messages_cache'] = true;\n"
	}
	if err := os.WriteFile(filepath.Join(rc, "config", "config.inc.php"), []byte(conf), 0o644); err != nil {
		return nil, err
	}
	cmd := exec.Command("/usr/bin/php", "-S", webAddr, "-t", "/var/lib/roundcube/public_html")
	// One worker: requests one at a time. With several
	// (PHP_CLI_SERVER_WORKERS) a request racing the compose page's
	// lost the compose data in the PHP session ("Invalid compose ID" at
	// send), a flake of the web server, not of Decimail.
	cmd.Env = append(os.Environ(), "ROUNDCUBE_CONFIG_DIR="+filepath.Join(rc, "config"))
	r.logf("starting php -S %s (Roundcube; log: php.log)", webAddr)
	p, err := startProc("php -S", cmd, filepath.Join(r.out, "php.log"))
	if err != nil {
		return nil, err
	}
	if err := waitPort(ctx, webAddr, 30*time.Second, p); err != nil {
		p.stop()
		return nil, err
	}
	return p, nil
}

// roundcubeConfig: IMAP and submission with STARTTLS (tls://, the dev
// server's self-signed certificate accepted unverified), or plain with
// -plain (Decimail allows passwords in the clear on loopback); AUTH at
// submission as the logged-in user; imap_force_caps so that Roundcube reads
// the capabilities after LOGIN (SORT, THREAD=REFERENCES); sorting by date
// so that lists use SORT; threads expanded so that the tree is visible.
const roundcubeConfig = `<?php
// Written by conformance/roundcube for one run; see conformance/ROUNDCUBE.md.
$config = [];
$config['db_dsnw'] = 'sqlite:///%s?mode=0600';
$config['imap_host'] = '%s';
$config['imap_force_caps'] = true;
$config['imap_debug'] = true;
$config['imap_cache'] = null;
$config['messages_cache'] = false;
$config['smtp_host'] = '%s';
$config['smtp_user'] = '%%u';
$config['smtp_pass'] = '%%p';
$config['smtp_debug'] = true;
$config['imap_conn_options'] = ['ssl' => ['verify_peer' => false, 'verify_peer_name' => false, 'allow_self_signed' => true]];
$config['smtp_conn_options'] = ['ssl' => ['verify_peer' => false, 'verify_peer_name' => false, 'allow_self_signed' => true]];
$config['log_dir'] = '%s';
$config['temp_dir'] = '%s';
$config['des_key'] = 'decimail-roundcube-test!';
$config['plugins'] = [];
$config['skin'] = 'elastic';
$config['language'] = 'en_US';
$config['enable_spellcheck'] = false;
$config['mail_domain'] = 'example.test';
$config['message_sort_col'] = 'date';
$config['message_sort_order'] = 'DESC';
$config['autoexpand_threads'] = 1;
$config['sent_mbox'] = 'Sent';
$config['trash_mbox'] = 'Trash';
$config['drafts_mbox'] = 'Drafts';
$config['junk_mbox'] = 'Junk';
$config['create_default_folders'] = false;
$config['refresh_interval'] = 0;
$config['mail_pagesize'] = 100;
$config['htmleditor'] = 0;
`
