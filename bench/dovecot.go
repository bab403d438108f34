package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"decimail/internal/dovecot"
)

// DovecotBinary is where Debian's dovecot-core installs the server.
const DovecotBinary = dovecot.Binary

// dovecotOptions is a private instance tuned like a default Debian install for
// mail access: maildir, no SSL, plaintext auth on loopback,
// mail_fsync=optimized, and no fts plugin (Dovecot's default: SEARCH TEXT
// reads the messages; that is the comparison). Limits are raised so the
// concurrency measurements are not refused. One account: u/pw.
var dovecotOptions = dovecot.Options{
	Name:                 "decimail-bench",
	Accounts:             []dovecot.Account{{User: "u", Pass: "pw"}},
	MailFsync:            "optimized",
	ProcessLimit:         3000,
	ClientLimit:          6000,
	LoginMinAvail:        2,
	MaxUserIPConnections: 5000,
	StartTimeout:         15 * time.Second,
}

// Dovecot is a private Dovecot on a free loopback port.
type Dovecot struct {
	Target
	Dir string
	srv *dovecot.Server
}

// DovecotVersion reports `dovecot --version`, or "" when not installed.
func DovecotVersion() string { return dovecot.Version() }

// StartDovecot starts a private Dovecot with one account u/pw in a temporary
// directory; Stop ends it and removes the directory. virtual (may be nil:
// VirtualViews) are saved searches over INBOX as virtual-plugin mailboxes.
func StartDovecot(virtual map[string]string) (*Dovecot, error) {
	o := dovecotOptions
	o.Virtual = virtual
	srv, err := dovecot.Start(o)
	if err != nil {
		return nil, err
	}
	d := &Dovecot{Dir: srv.Dir, srv: srv}
	d.Addr = srv.Addr
	if len(virtual) > 0 {
		d.Virtual = map[string]string{}
		for name := range virtual {
			d.Virtual[name] = dovecot.VirtualPrefix + name
		}
	}
	d.NotifyAddr, d.Name, d.User, d.Pass = d.Addr, "dovecot", "u", "pw"
	d.Target.Stop = d.Close
	return d, nil
}

// Close stops Dovecot (SIGTERM, the master stops its children) and removes
// its directory.
func (d *Dovecot) Close() {
	if d.srv != nil {
		d.srv.Close()
	}
}

// PIDs lists the Dovecot master and its children (for memory measurements).
func (d *Dovecot) PIDs() []int {
	if d.srv == nil || d.srv.PID() == 0 {
		return nil
	}
	return descendants(d.srv.PID())
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
