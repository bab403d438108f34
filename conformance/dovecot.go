package conformance

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// DovecotBinary is where Debian's dovecot-core installs the server.
const DovecotBinary = "/usr/sbin/dovecot"

// dovecotUsers is the number of accounts in the passwd-file; every Reset
// uses the next one, so one run can reset at most this many times.
const dovecotUsers = 5000

// Dovecot is a private Dovecot instance on a free loopback port, configured
// like the one used for the client transcripts (shared/transcripts/server)
// but with a fresh maildir per account and no auto-created mailboxes.
type Dovecot struct {
	dir  string
	addr string
	cmd  *exec.Cmd
	next atomic.Int64
}

const dovecotConf = `# Private Dovecot for the Decimail conformance suite.
base_dir = {{DIR}}/run
state_dir = {{DIR}}/state
instance_name = decimail-conformance-{{PORT}}
log_path = {{DIR}}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
auth_failure_delay = 0
mail_location = maildir:{{DIR}}/mail/%u/Maildir
first_valid_uid = 1
mail_privileged_group =
login_greeting = Dovecot ready.
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {{DIR}}/users
}
userdb {
  driver = passwd-file
  args = username_format=%u {{DIR}}/users
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = {{PORT}}
  }
  inet_listener imaps {
    port = 0
  }
}
service stats {
  inet_listener http {
    port = 0
  }
}
service doveadm {
  inet_listener {
    port = 0
  }
}
namespace inbox {
  inbox = yes
  separator = /
  prefix =
  mailbox Drafts {
    special_use = \Drafts
  }
  mailbox Sent {
    special_use = \Sent
  }
  mailbox Trash {
    special_use = \Trash
  }
  mailbox Junk {
    special_use = \Junk
  }
}
protocol imap {
  mail_max_userip_connections = 1000
}
`

// StartDovecot starts a private Dovecot and stops it when t ends.
func StartDovecot(t testing.TB) *Dovecot {
	t.Helper()
	if _, err := os.Stat(DovecotBinary); err != nil {
		t.Fatalf("dovecot is not installed (%v): run `make conformance-dovecot` or apt-get install -y dovecot-imapd", err)
	}
	dir, err := os.MkdirTemp("", "decimail-dovecot-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := fmt.Sprint(l.Addr().(*net.TCPAddr).Port)
	l.Close()

	// Mail processes run as nobody: Dovecot refuses uid 0 for mail access.
	const uid, gid = 65534, 65534
	mail := filepath.Join(dir, "mail")
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Chmod(dir, 0o755))
	must(os.Mkdir(mail, 0o755))
	must(os.Chown(mail, uid, gid))
	var users strings.Builder
	for i := 1; i <= dovecotUsers; i++ {
		fmt.Fprintf(&users, "u%d:{PLAIN}pass:%d:%d::%s/u%d::\n", i, uid, gid, mail, i)
	}
	must(os.WriteFile(filepath.Join(dir, "users"), []byte(users.String()), 0o644))
	conf := strings.NewReplacer("{{DIR}}", dir, "{{PORT}}", port).Replace(dovecotConf)
	must(os.WriteFile(filepath.Join(dir, "dovecot.conf"), []byte(conf), 0o644))

	d := &Dovecot{dir: dir, addr: "127.0.0.1:" + port}
	d.cmd = exec.Command(DovecotBinary, "-F", "-c", filepath.Join(dir, "dovecot.conf"))
	d.cmd.Env = append(os.Environ(), "TZ=UTC")
	out, err := os.Create(filepath.Join(dir, "stdout.log"))
	must(err)
	d.cmd.Stdout, d.cmd.Stderr = out, out
	must(d.cmd.Start())
	t.Cleanup(func() {
		d.cmd.Process.Signal(syscall.SIGTERM)
		d.cmd.Wait()
	})
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if c, err := net.Dial("tcp", d.addr); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "stdout.log"))
			log2, _ := os.ReadFile(filepath.Join(dir, "dovecot.log"))
			t.Fatalf("dovecot did not start on %s:\n%s%s", d.addr, log, log2)
		}
	}
	return d
}

func (d *Dovecot) Name() string { return "dovecot" }

// Reset hands out the next unused account; its maildir does not exist yet.
func (d *Dovecot) Reset(t testing.TB) (string, string, string) {
	n := d.next.Add(1)
	if n > dovecotUsers {
		t.Fatalf("dovecot: all %d accounts used", dovecotUsers)
	}
	return d.addr, fmt.Sprintf("u%d", n), "pass"
}

// External is a server given by address with a single account; Reset empties
// the account over IMAP, so scenarios must not run in parallel against it.
type External struct {
	Addr, User, Pass string
}

func (e *External) Name() string { return "external" }

func (e *External) Reset(t testing.TB) (string, string, string) {
	CleanAccount(t, e.Addr, e.User, e.Pass)
	return e.Addr, e.User, e.Pass
}
