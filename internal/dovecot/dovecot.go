// Package dovecot starts a private Dovecot IMAP server for tests and
// benchmarks: its own configuration, directory, passwd-file accounts and
// maildirs, on a free loopback port, stopped and removed by Close. The
// benchmarks (decimail/bench) and the conformance suite (decimail/conformance)
// both use it; Options holds what differs between them.
package dovecot

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Binary is where Debian's dovecot-core installs the server.
const Binary = "/usr/sbin/dovecot"

// Installed reports why Dovecot cannot be started (nil when Binary exists).
func Installed() error {
	if _, err := os.Stat(Binary); err != nil {
		return fmt.Errorf("dovecot is not installed (%v): make conformance-dovecot installs it (Debian package dovecot-imapd)", err)
	}
	return nil
}

// Version reports `dovecot --version`, or "" when not installed.
func Version() string {
	out, err := exec.Command(Binary, "--version").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// Account is one passwd-file entry; its mail is the maildir
// Dir/mail/User/Maildir, created by Dovecot on first use. The password is
// stored as Hash when set (a scheme-prefixed hash, e.g. "{BLF-CRYPT}$2a$10$…",
// so that logins cost what a production password check costs), else as
// {PLAIN}Pass.
type Account struct {
	User, Pass string
	Hash       string
}

// Options says what differs between instances. The zero value of each
// setting leaves Dovecot's default (the line is not written).
type Options struct {
	// Name prefixes instance_name (Name-PORT) and the temporary directory
	// (Name-dovecot-*); default "decimail".
	Name string
	// Accounts are the users that can log in.
	Accounts []Account
	// MailFsync is mail_fsync (e.g. "optimized").
	MailFsync string
	// Greeting is login_greeting.
	Greeting string
	// ProcessLimit is default_process_limit and the imap service's
	// process_limit; ClientLimit is default_client_limit.
	ProcessLimit, ClientLimit int
	// LoginMinAvail is the imap-login service's process_min_avail.
	LoginMinAvail int
	// MaxUserIPConnections is the imap protocol's mail_max_userip_connections.
	MaxUserIPConnections int
	// SpecialUse declares Drafts, Sent, Trash and Junk with their special-use
	// attributes in the inbox namespace (not auto-created).
	SpecialUse bool
	// Compress loads the zlib plugins, so that IMAP advertises
	// COMPRESS=DEFLATE (Dovecot 2.3: imap_zlib).
	Compress bool
	// StartTimeout bounds the wait for the IMAP port; default 15s.
	StartTimeout time.Duration
	// Virtual are saved-search mailboxes of the virtual plugin (Dovecot's
	// peer of Decimail's views): name → an IMAP SEARCH program over INBOX.
	// They are in the namespace VirtualPrefix, which LIST "" "*" does not
	// list (list = no), so that the other mailboxes and LIST are as without.
	Virtual map[string]string
}

// VirtualPrefix is the namespace of Options.Virtual: "Virtual/NAME".
const VirtualPrefix = "Virtual/"

// Server is a running private Dovecot.
type Server struct {
	Dir  string // dovecot.conf, users, stdout.log, dovecot.log, mail/
	Addr string // IMAP on loopback, "127.0.0.1:PORT"

	cmd   *exec.Cmd
	out   *os.File
	done  chan struct{} // closed when the master has exited
	close sync.Once
}

// config renders dovecot.conf: maildir, no SSL, plaintext auth on loopback,
// passwd-file accounts, no fts plugin, every other listener off.
func (o *Options) config(dir, port string) string {
	var b strings.Builder
	line := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	line("# Private Dovecot (decimail/internal/dovecot) for %s.", o.Name)
	line("base_dir = %s/run", dir)
	line("state_dir = %s/state", dir)
	line("instance_name = %s-%s", o.Name, port)
	line("log_path = %s/dovecot.log", dir)
	line("protocols = imap")
	line("listen = 127.0.0.1")
	line("ssl = no")
	line("disable_plaintext_auth = no")
	line("auth_mechanisms = plain")
	line("auth_failure_delay = 0")
	line("mail_location = maildir:%s/mail/%%u/Maildir", dir)
	if o.MailFsync != "" {
		line("mail_fsync = %s", o.MailFsync)
	}
	line("first_valid_uid = 1")
	line("mail_privileged_group =")
	if o.Greeting != "" {
		line("login_greeting = %s", o.Greeting)
	}
	if o.ProcessLimit > 0 {
		line("default_process_limit = %d", o.ProcessLimit)
	}
	if o.ClientLimit > 0 {
		line("default_client_limit = %d", o.ClientLimit)
	}
	line("passdb {")
	line("  driver = passwd-file")
	line("  args = scheme=PLAIN username_format=%%u %s/users", dir)
	line("}")
	line("userdb {")
	line("  driver = passwd-file")
	line("  args = username_format=%%u %s/users", dir)
	line("}")
	line("service imap-login {")
	line("  inet_listener imap {")
	line("    address = 127.0.0.1")
	line("    port = %s", port)
	line("  }")
	line("  inet_listener imaps {")
	line("    port = 0")
	line("  }")
	if o.LoginMinAvail > 0 {
		line("  process_min_avail = %d", o.LoginMinAvail)
	}
	line("}")
	if o.ProcessLimit > 0 {
		line("service imap {")
		line("  process_limit = %d", o.ProcessLimit)
		line("}")
	}
	line("service stats {")
	line("  inet_listener http {")
	line("    port = 0")
	line("  }")
	line("}")
	line("service doveadm {")
	line("  inet_listener {")
	line("    port = 0")
	line("  }")
	line("}")
	line("namespace inbox {")
	line("  inbox = yes")
	line("  separator = /")
	line("  prefix =")
	if o.SpecialUse {
		for _, m := range []string{"Drafts", "Sent", "Trash", "Junk"} {
			line("  mailbox %s {", m)
			line("    special_use = \\%s", m)
			line("  }")
		}
	}
	line("}")
	if len(o.Virtual) > 0 {
		// Each mailbox is DIR/virtual/NAME/dovecot-virtual (its backend
		// mailbox, then its search); Dovecot keeps its index beside it.
		line("namespace virtual {")
		line("  prefix = %s", VirtualPrefix)
		line("  separator = /")
		line("  location = virtual:%s/virtual", dir)
		line("  list = no")
		line("  subscriptions = no")
		line("}")
	}
	var plugins []string
	if o.Compress {
		plugins = append(plugins, "zlib")
	}
	if len(o.Virtual) > 0 {
		plugins = append(plugins, "virtual")
	}
	if len(plugins) > 0 {
		line("mail_plugins = $mail_plugins %s", strings.Join(plugins, " "))
	}
	if o.MaxUserIPConnections > 0 || o.Compress {
		line("protocol imap {")
		if o.MaxUserIPConnections > 0 {
			line("  mail_max_userip_connections = %d", o.MaxUserIPConnections)
		}
		if o.Compress {
			line("  mail_plugins = $mail_plugins imap_zlib")
		}
		line("}")
	}
	return b.String()
}

// Start writes the configuration and accounts into a new temporary directory
// and runs `dovecot -F` on a free loopback port until it accepts connections.
// On error nothing is left running or on disk.
func Start(o Options) (*Server, error) {
	if err := Installed(); err != nil {
		return nil, err
	}
	if o.Name == "" {
		o.Name = "decimail"
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = 15 * time.Second
	}
	dir, err := os.MkdirTemp("", o.Name+"-dovecot-")
	if err != nil {
		return nil, err
	}
	s := &Server{Dir: dir}
	fail := func(err error) (*Server, error) { s.Close(); return nil, err }

	// The port is free now; Dovecot binds it a moment later.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fail(err)
	}
	port := fmt.Sprint(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	s.Addr = "127.0.0.1:" + port

	// Mail processes run as nobody when we are root (Dovecot refuses uid 0
	// for mail access), else as ourselves.
	uid, gid := 65534, 65534
	if os.Geteuid() != 0 {
		uid, gid = os.Getuid(), os.Getgid()
	}
	mail := filepath.Join(dir, "mail")
	if err := os.Chmod(dir, 0o755); err != nil {
		return fail(err)
	}
	if err := os.Mkdir(mail, 0o755); err != nil {
		return fail(err)
	}
	if err := os.Chown(mail, uid, gid); err != nil && os.Geteuid() == 0 {
		return fail(err)
	}
	if err := writeVirtual(filepath.Join(dir, "virtual"), o.Virtual, uid, gid); err != nil {
		return fail(err)
	}
	var users strings.Builder
	for _, a := range o.Accounts {
		if strings.ContainsAny(a.User+a.Pass, ":\n") {
			return fail(fmt.Errorf("dovecot: account %q: ':' or newline in user or password", a.User))
		}
		pw := "{PLAIN}" + a.Pass
		if a.Hash != "" {
			if strings.ContainsAny(a.Hash, ":\n") {
				return fail(fmt.Errorf("dovecot: account %q: ':' or newline in the hash", a.User))
			}
			pw = a.Hash
		}
		fmt.Fprintf(&users, "%s:%s:%d:%d::%s::\n", a.User, pw, uid, gid, filepath.Join(mail, a.User))
	}
	if err := os.WriteFile(filepath.Join(dir, "users"), []byte(users.String()), 0o644); err != nil {
		return fail(err)
	}
	conf := filepath.Join(dir, "dovecot.conf")
	if err := os.WriteFile(conf, []byte(o.config(dir, port)), 0o644); err != nil {
		return fail(err)
	}

	if s.out, err = os.Create(filepath.Join(dir, "stdout.log")); err != nil {
		return fail(err)
	}
	s.cmd = exec.Command(Binary, "-F", "-c", conf)
	s.cmd.Env = append(os.Environ(), "TZ=UTC")
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	// Should the test binary die, the master gets SIGTERM and stops its children.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := s.cmd.Start(); err != nil {
		s.cmd = nil
		return fail(err)
	}
	s.done = make(chan struct{})
	go func() { s.cmd.Wait(); close(s.done) }()

	for deadline := time.Now().Add(o.StartTimeout); ; {
		if c, err := net.Dial("tcp", s.Addr); err == nil {
			c.Close()
			return s, nil
		}
		var why string
		select {
		case <-s.done:
			why = "exited: " + s.cmd.ProcessState.String()
		case <-time.After(50 * time.Millisecond):
			if time.Now().Before(deadline) {
				continue
			}
			why = "timed out after " + o.StartTimeout.String()
		}
		err := fmt.Errorf("dovecot did not start on %s (%s):\n%s", s.Addr, why, s.Log())
		return fail(err)
	}
}

// PID is the master process's pid (0 when not running); its children are
// the login, auth and imap processes.
func (s *Server) PID() int {
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	select {
	case <-s.done:
		return 0
	default:
		return s.cmd.Process.Pid
	}
}

// Log returns what Dovecot printed and logged so far (for diagnostics).
func (s *Server) Log() string {
	out, _ := os.ReadFile(filepath.Join(s.Dir, "stdout.log"))
	log, _ := os.ReadFile(filepath.Join(s.Dir, "dovecot.log"))
	return string(out) + string(log)
}

// Close stops Dovecot (SIGTERM, and the master stops its children; SIGKILL
// if it has not exited within 15s) and removes its directory. Calling it
// again does nothing.
func (s *Server) Close() {
	s.close.Do(func() {
		if s.cmd != nil && s.done != nil {
			s.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-s.done:
			case <-time.After(15 * time.Second):
				s.cmd.Process.Kill()
				<-s.done
			}
		}
		if s.out != nil {
			s.out.Close()
		}
		os.RemoveAll(s.Dir)
	})
}

// writeVirtual writes the virtual mailboxes' definitions under root, owned
// by the mail user (Dovecot writes their indexes there).
func writeVirtual(root string, virtual map[string]string, uid, gid int) error {
	if len(virtual) == 0 {
		return nil
	}
	for name, search := range virtual {
		if name == "" || strings.ContainsAny(name, "/\n") || name[0] == '.' || strings.ContainsAny(search, "\r\n") {
			return fmt.Errorf("dovecot: virtual mailbox %q %q: want a plain name and a one-line search", name, search)
		}
		d := filepath.Join(root, name)
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(d, "dovecot-virtual"), []byte("INBOX\n  "+search+"\n"), 0o644); err != nil {
			return err
		}
	}
	if os.Geteuid() != 0 {
		return nil
	}
	return filepath.WalkDir(root, func(p string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Chown(p, uid, gid)
	})
}
