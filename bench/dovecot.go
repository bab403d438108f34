package bench

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// DovecotBinary is where Debian's dovecot-core installs the server.
const DovecotBinary = "/usr/sbin/dovecot"

// dovecotConf is a private instance tuned like a default Debian install for
// mail access: maildir, no SSL, plaintext auth on loopback,
// mail_fsync=optimized, and no fts plugin (Dovecot's default: SEARCH TEXT
// reads the messages; that is the comparison). Limits are raised so the
// concurrency measurements are not refused.
const dovecotConf = `# Private Dovecot for the Decimail benchmarks.
base_dir = {{DIR}}/run
state_dir = {{DIR}}/state
instance_name = decimail-bench-{{PORT}}
log_path = {{DIR}}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
auth_failure_delay = 0
mail_location = maildir:{{DIR}}/mail/%u/Maildir
mail_fsync = optimized
first_valid_uid = 1
mail_privileged_group =
default_process_limit = 3000
default_client_limit = 6000
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
  process_min_avail = 2
}
service imap {
  process_limit = 3000
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
}
protocol imap {
  mail_max_userip_connections = 5000
}
`

// Dovecot is a private Dovecot on a free loopback port.
type Dovecot struct {
	Target
	Dir string
	cmd *exec.Cmd
}

// DovecotVersion reports `dovecot --version`, or "" when not installed.
func DovecotVersion() string {
	out, err := exec.Command(DovecotBinary, "--version").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// StartDovecot starts a private Dovecot with one account u/pw in a temporary
// directory; Stop ends it and removes the directory.
func StartDovecot() (*Dovecot, error) {
	if _, err := os.Stat(DovecotBinary); err != nil {
		return nil, fmt.Errorf("dovecot is not installed (%v): apt-get install -y dovecot-imapd", err)
	}
	dir, err := os.MkdirTemp("", "decimail-bench-dovecot-")
	if err != nil {
		return nil, err
	}
	d := &Dovecot{Dir: dir}
	fail := func(err error) (*Dovecot, error) { os.RemoveAll(dir); return nil, err }
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fail(err)
	}
	port := fmt.Sprint(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	// Mail processes run as nobody: Dovecot refuses uid 0 for mail access.
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
	users := fmt.Sprintf("u:{PLAIN}pw:%d:%d::%s/u::\n", uid, gid, mail)
	if err := os.WriteFile(filepath.Join(dir, "users"), []byte(users), 0o644); err != nil {
		return fail(err)
	}
	conf := strings.NewReplacer("{{DIR}}", dir, "{{PORT}}", port).Replace(dovecotConf)
	if err := os.WriteFile(filepath.Join(dir, "dovecot.conf"), []byte(conf), 0o644); err != nil {
		return fail(err)
	}
	d.cmd = exec.Command(DovecotBinary, "-F", "-c", filepath.Join(dir, "dovecot.conf"))
	d.cmd.Env = append(os.Environ(), "TZ=UTC")
	out, err := os.Create(filepath.Join(dir, "stdout.log"))
	if err != nil {
		return fail(err)
	}
	d.cmd.Stdout, d.cmd.Stderr = out, out
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := d.cmd.Start(); err != nil {
		return fail(err)
	}
	d.Addr = "127.0.0.1:" + port
	d.NotifyAddr, d.Name, d.User, d.Pass = d.Addr, "dovecot", "u", "pw"
	d.Target.Stop = d.Close
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if c, err := net.Dial("tcp", d.Addr); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			log1, _ := os.ReadFile(filepath.Join(dir, "stdout.log"))
			log2, _ := os.ReadFile(filepath.Join(dir, "dovecot.log"))
			d.Close()
			return nil, fmt.Errorf("dovecot did not start on %s:\n%s%s", d.Addr, log1, log2)
		}
	}
	return d, nil
}

// Close stops Dovecot (SIGTERM, the master stops its children) and removes
// its directory.
func (d *Dovecot) Close() {
	if d.cmd != nil && d.cmd.Process != nil {
		d.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { d.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			d.cmd.Process.Kill()
			<-done
		}
		d.cmd = nil
	}
	os.RemoveAll(d.Dir)
}

// PIDs lists the Dovecot master and its children (for memory measurements).
func (d *Dovecot) PIDs() []int {
	if d.cmd == nil || d.cmd.Process == nil {
		return nil
	}
	return descendants(d.cmd.Process.Pid)
}

// descendants returns pid and every process below it, from /proc.
func descendants(pid int) []int {
	children := map[int][]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		var p int
		if _, err := fmt.Sscanf(e.Name(), "%d", &p); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		var state string
		var ppid int
		fmt.Sscanf(s[i+2:], "%s %d", &state, &ppid)
		children[ppid] = append(children[ppid], p)
	}
	out := []int{pid}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}

// PSS sums the proportional set size (KiB) of pids (shared pages split between
// the processes that share them; the fair measure for a forking server).
func PSS(pids []int) int64 {
	var total int64
	for _, p := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", p))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "Pss:") {
				var kb int64
				fmt.Sscanf(strings.TrimSpace(line[4:]), "%d", &kb)
				total += kb
			}
		}
	}
	return total
}

// Caps reports whether the server offers MULTIAPPEND (diagnostics).
func (t *Target) Caps() string {
	c, err := Login(t.Addr, t.User, t.Pass)
	if err != nil {
		return err.Error()
	}
	defer c.Logout()
	var ks []string
	for k := range c.Caps {
		ks = append(ks, k)
	}
	return strings.Join(ks, " ")
}
