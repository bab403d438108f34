package main

// Thunderbird 153 ESR under Xvfb. The profile is the one of the Dovecot
// captures (fixtures/transcripts/client-configs/thunderbird-user.js) with
// the tap's port, plus a Marionette port. The password is put into the
// profile's password manager by Thunderbird itself, in a first start
// without the IMAP account (Services.logins through Marionette), so no
// prompt appears when the account starts.
//
// During the captured start the harness uses Marionette to see what the
// window shows and to do what a click does (open a folder in the folder
// pane, select a row of the message list), and xdotool to type keys into
// the focused window as a person would (Delete, s, ctrl+q).

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"decimail/conformance"
)

func init() {
	needs["thunderbird"] = []string{"thunderbird", "Xvfb", "xdotool", "xwd", "convert"}
	clientVersions["thunderbird"] = func() (string, error) {
		out, err := exec.Command("thunderbird", "--version").Output()
		if err != nil {
			return "", fmt.Errorf("thunderbird --version: %w", err)
		}
		return strings.TrimSpace(string(out)) + ", Debian package thunderbird " + debVersion("thunderbird"), nil
	}
}

// debVersion is the installed version of a Debian package.
func debVersion(pkg string) string {
	out, err := exec.Command("dpkg-query", "-W", "-f", "${Version}", pkg).Output()
	if err != nil {
		return "(unknown version)"
	}
	return string(out)
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// tbird is one Thunderbird under its own Xvfb.
type tbird struct {
	r       *runCtx
	display string
	xvfb    *proc
	tb      *proc
	m       *marionette
	profile string
	mport   int
	shots   int
	prefs   []string // more user_pref lines of the scenario (tbScenarioPrefs)
}

const tbUserJS = "fixtures/transcripts/client-configs/thunderbird-user.js"

// writeUserJS writes the profile's user.js: the capture prefs with the
// tap's port, without the IMAP account when account is false, plus
// Marionette's port.
func (t *tbird) writeUserJS(tapPort int, account bool) error {
	base, err := os.ReadFile(tbUserJS)
	if err != nil {
		return fmt.Errorf("%w (run from the repository root)", err)
	}
	var b strings.Builder
	portRe := regexp.MustCompile(`^user_pref\("mail\.server\.server1\.port", \d+\);`)
	for _, line := range strings.Split(string(base), "\n") {
		switch {
		case portRe.MatchString(line):
			line = fmt.Sprintf(`user_pref("mail.server.server1.port", %d);          // the tap`, tapPort)
		case !account && strings.HasPrefix(line, `user_pref("mail.accountmanager.accounts"`):
			line = `user_pref("mail.accountmanager.accounts", "account2");`
		case !account && strings.HasPrefix(line, `user_pref("mail.accountmanager.defaultaccount"`):
			line = `user_pref("mail.accountmanager.defaultaccount", "account2");`
		}
		b.WriteString(line + "\n")
	}
	fmt.Fprintf(&b, "\n// ---- added by conformance/capture\nuser_pref(\"marionette.port\", %d);\n", t.mport)
	// One IMAP connection: the replay runs a capture's connections one after
	// the other, which reproduces Thunderbird's answers only when no
	// connection saw another's changes (EXPUNGE, FETCH FLAGS in IDLE). With
	// one connection every change and every notification is in one
	// transcript, in the order Thunderbird saw it.
	b.WriteString("user_pref(\"mail.server.server1.max_cached_connections\", 1);\n")
	// Headers only on the first sync, bodies when a message is shown: the
	// Dovecot captures' offline download of every folder made each
	// transcript 400 KB of seed bodies that say nothing about views.
	b.WriteString("user_pref(\"mail.server.server1.offline_download\", false);\n")
	// No COMPRESS=DEFLATE (Thunderbird's default is on, Decimail advertises
	// it since issue 16): the tap logs lines, and a deflated stream has
	// none; the tap would hold the bytes back until Thunderbird gives up.
	b.WriteString("user_pref(\"mail.server.server1.use_compress_deflate\", false);\n")
	for _, p := range t.prefs {
		b.WriteString(p + "\n")
	}
	return os.WriteFile(filepath.Join(t.profile, "user.js"), []byte(b.String()), 0o644)
}

func startXvfb(r *runCtx) (*proc, string, error) {
	for n := 91; n < 140; n++ {
		if _, err := os.Stat(fmt.Sprintf("/tmp/.X11-unix/X%d", n)); err == nil {
			continue
		}
		if _, err := os.Stat(fmt.Sprintf("/tmp/.X%d-lock", n)); err == nil {
			continue
		}
		d := fmt.Sprintf(":%d", n)
		p, err := startProc("Xvfb", exec.Command("Xvfb", d, "-screen", "0", "1600x1000x24", "-nolisten", "tcp"), filepath.Join(r.tmp, "xvfb.log"))
		if err != nil {
			return nil, "", err
		}
		for i := 0; i < 50; i++ {
			if _, err := os.Stat(fmt.Sprintf("/tmp/.X11-unix/X%d", n)); err == nil {
				return p, d, nil
			}
			if p.exited() {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		p.stop()
	}
	return nil, "", fmt.Errorf("Xvfb did not start")
}

// startTB starts Thunderbird on the profile and connects Marionette.
func (t *tbird) startTB(logName string) error {
	cmd := exec.Command("thunderbird", "--profile", t.profile, "--no-remote", "--marionette", "-remote-allow-system-access")
	cmd.Env = append(os.Environ(), "DISPLAY="+t.display, "HOME="+filepath.Join(t.r.tmp, "home"),
		"MOZ_REMOTE_SETTINGS_DEVTOOLS=1", // so that services.settings.server in user.js is honoured
		"MOZ_CRASHREPORTER_DISABLE=1", "NO_AT_BRIDGE=1",
		// Thunderbird's own IMAP log (what it decided, e.g. whether to resync
		// with CHANGEDSINCE), in the scratch directory (-keep keeps it).
		"MOZ_LOG=IMAP:5,IMAP_CS:5", "MOZ_LOG_FILE="+filepath.Join(t.r.tmp, "moz-"+strings.TrimSuffix(logName, ".log")))
	os.MkdirAll(filepath.Join(t.r.tmp, "home"), 0o755)
	p, err := startProc("thunderbird", cmd, filepath.Join(t.r.tmp, logName))
	if err != nil {
		return err
	}
	t.tb = p
	m, err := dialMarionette(fmt.Sprintf("127.0.0.1:%d", t.mport), time.Now().Add(60*time.Second))
	if err != nil {
		return err
	}
	t.m = m
	if err := m.chrome(); err != nil {
		return err
	}
	// The main window with its folder pane.
	return t.until(60*time.Second, "the main window", func() (bool, error) {
		s, err := t.m.jsString(`const w = Services.wm.getMostRecentWindow("mail:3pane");
			return w && w.document.readyState == "complete" && w.gTabmail && w.gTabmail.currentAbout3Pane
				&& w.gTabmail.currentAbout3Pane.folderTree ? "yes" : "no";`)
		return s == "yes", err
	})
}

// until polls cond every 250 ms.
func (t *tbird) until(d time.Duration, what string, cond func() (bool, error)) error {
	deadline := time.Now().Add(d)
	var lastErr error
	for time.Now().Before(deadline) {
		ok, err := cond()
		if ok && err == nil {
			return nil
		}
		lastErr = err
		time.Sleep(250 * time.Millisecond)
	}
	return fmt.Errorf("waiting %v for %s: %v", d, what, lastErr)
}

// quitTB quits with ctrl+q (File > Quit) and waits for the process.
func (t *tbird) quitTB() error {
	t.r.logf("key ctrl+q (quit)")
	if err := t.key("ctrl+q"); err != nil {
		return err
	}
	if t.m != nil {
		t.m.Close()
		t.m = nil
	}
	if !t.tb.wait(30 * time.Second) {
		return fmt.Errorf("thunderbird did not quit within 30s")
	}
	return nil
}

func (t *tbird) close() {
	if t.m != nil {
		t.m.Close()
	}
	t.tb.stop()
	t.xvfb.stop()
}

// key types keys (xdotool syntax) into the focused Thunderbird window.
func (t *tbird) key(keys ...string) error {
	win, err := t.xwindow()
	if err != nil {
		return err
	}
	if out, err := t.xdo("windowfocus", "--sync", win); err != nil {
		return fmt.Errorf("xdotool windowfocus: %v %s", err, out)
	}
	for _, k := range keys {
		if out, err := t.xdo("key", "--clearmodifiers", k); err != nil {
			return fmt.Errorf("xdotool key %s: %v %s", k, err, out)
		}
		time.Sleep(300 * time.Millisecond)
	}
	return nil
}

func (t *tbird) xdo(args ...string) (string, error) {
	cmd := exec.Command("xdotool", args...)
	cmd.Env = append(os.Environ(), "DISPLAY="+t.display)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// xwindow finds the main window (title "... - Mozilla Thunderbird").
func (t *tbird) xwindow() (string, error) {
	out, _ := t.xdo("search", "--onlyvisible", "--name", "Thunderbird")
	ids := strings.Fields(out)
	if len(ids) == 0 {
		return "", fmt.Errorf("no Thunderbird window")
	}
	return ids[0], nil
}

// screenshot saves the screen as NAME.N-what.png in the scratch directory
// (kept with -keep), or in OUT/CLIENT with -screenshots.
func (t *tbird) screenshot(what string) {
	t.shots++
	file := filepath.Join(t.r.tmp, fmt.Sprintf("%s.%d-%s.png", t.r.sc.name, t.shots, what))
	if *screenshots {
		file = t.r.path(fmt.Sprintf(".%d-%s.png", t.shots, what))
	}
	cmd := exec.Command("sh", "-c", `xwd -root -silent | convert xwd:- "$1"`, "sh", file)
	cmd.Env = append(os.Environ(), "DISPLAY="+t.display)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.r.logf("screenshot %s: %v %s", what, err, out)
		return
	}
	t.r.logf("screenshot %s", file)
}

// prepare makes the profile: a first start without the IMAP account, in
// which Thunderbird stores testuser's password for imap://127.0.0.1.
func (t *tbird) prepare() error {
	if err := t.writeUserJS(1, false); err != nil {
		return err
	}
	if err := t.startTB("thunderbird-prepare.log"); err != nil {
		return err
	}
	_, err := t.m.js(`const l = Cc["@mozilla.org/login-manager/loginInfo;1"].createInstance(Ci.nsILoginInfo);
		l.init("imap://127.0.0.1", null, "imap://127.0.0.1", arguments[0], arguments[1], "", "");
		return Services.logins.addLoginAsync(l).then(() => Services.logins.getAllLogins()).then(ls => ls.length);`,
		conformance.SeedUser, conformance.SeedPassword)
	if err != nil {
		return fmt.Errorf("storing the password: %w", err)
	}
	t.m.js(`Services.startup.quit(Ci.nsIAppStartup.eAttemptQuit); return 1;`)
	t.m.Close()
	t.m = nil
	if !t.tb.wait(30 * time.Second) {
		return fmt.Errorf("thunderbird (prepare) did not quit")
	}
	t.r.logf("profile prepared (password stored by Thunderbird)")
	return nil
}

// tbState is what the window shows.
type tbState struct {
	Folders  []string `json:"folders"` // the account's folders, as the folder pane has them
	Folder   string   `json:"folder"`  // the folder displayed
	Rows     int      `json:"rows"`    // rows of the message list
	Selected []string `json:"selected"`
	Focus    string   `json:"focus"`
}

const tbStateJS = `
const w = Services.wm.getMostRecentWindow("mail:3pane");
const a = w.gTabmail.currentAbout3Pane;
const server = w.MailServices.accounts.getIncomingServer("server1");
const folders = server.rootFolder.descendants.map(f => f.name + (f.getFlag(0x00000100) ? " [trash]" : ""));
let selected = [];
try { selected = (a.gDBView ? a.gDBView.getSelectedMsgHdrs() : []).map(h => h.messageKey + " " + h.mime2DecodedSubject + (h.isRead ? " (read)" : "") + (h.isFlagged ? " (flagged)" : "")); } catch (e) {}
const act = a.document.activeElement;
return JSON.stringify({folders, folder: a.gFolder ? a.gFolder.name : "", rows: a.gDBView ? a.gDBView.rowCount : -1, selected,
	focus: w.document.activeElement ? (w.document.activeElement.id + "/" + (act ? act.id || act.localName : "")) : ""});`

func (t *tbird) state() (*tbState, error) {
	s, err := t.m.jsString(tbStateJS)
	if err != nil {
		return nil, err
	}
	var st tbState
	if err := json.Unmarshal([]byte(s), &st); err != nil {
		return nil, fmt.Errorf("state %q: %w", s, err)
	}
	return &st, nil
}

// settle waits until no IMAP line has passed for quiet (the sync is done and
// every connection idles), at most max.
func (t *tbird) settle(quiet, max time.Duration) {
	deadline := time.Now().Add(max)
	for time.Now().Before(deadline) && t.r.tap.Quiet() < quiet {
		time.Sleep(200 * time.Millisecond)
	}
	t.r.logf("quiet for %v", t.r.tap.Quiet().Round(time.Millisecond))
}

// open shows a folder of the account, as a click on it in the folder pane
// (the account's row starts collapsed in a new profile).
func (t *tbird) open(name string) error {
	t.r.logf("open folder %q (folder pane click)", name)
	r, err := t.m.jsString(`const w = Services.wm.getMostRecentWindow("mail:3pane");
		const a = w.gTabmail.currentAbout3Pane;
		const server = w.MailServices.accounts.getIncomingServer("server1");
		const f = server.rootFolder.descendants.find(f => f.name == arguments[0]);
		if (!f) return "no folder " + arguments[0];
		// What a click on the folder does: about3Pane's displayFolder
		// expands the account row and selects the folder's row.
		a.displayFolder(f);
		return "ok";`, name)
	if err != nil {
		return err
	}
	if r != "ok" {
		return fmt.Errorf("open %s: %s", name, r)
	}
	return t.until(20*time.Second, "the folder "+name, func() (bool, error) {
		st, err := t.state()
		return err == nil && st.Folder == name && st.Rows >= 0, err
	})
}

// selectRow selects row i of the message list (as a click) and moves the
// keyboard focus to the list, where a person's keys go next.
func (t *tbird) selectRow(i int) error {
	r, err := t.m.jsString(`const w = Services.wm.getMostRecentWindow("mail:3pane");
		const a = w.gTabmail.currentAbout3Pane;
		if (a.gDBView.rowCount <= arguments[0]) return "only " + a.gDBView.rowCount + " rows";
		a.threadTree.selectedIndex = arguments[0];
		a.threadTree.table.body.focus();
		return "ok";`, i)
	if err != nil {
		return err
	}
	if r != "ok" {
		return fmt.Errorf("select row %d: %s", i, r)
	}
	st, err := t.state()
	if err != nil {
		return err
	}
	t.r.logf("selected row %d (click): %v, focus %s", i, st.Selected, st.Focus)
	return nil
}

// logState notes the window's state in the driver log.
func (t *tbird) logState(what string) *tbState {
	st, err := t.state()
	if err != nil {
		t.r.logf("%s: state: %v", what, err)
		return nil
	}
	t.r.logf("%s: folder %q, %d rows, selected %v", what, st.Folder, st.Rows, st.Selected)
	return st
}

// tbScenario runs a Thunderbird session: prepare the profile, start with
// the IMAP account on the tap, let the first sync finish, run act, quit.
func tbScenario(act func(ctx context.Context, t *tbird) error) func(context.Context, *runCtx) error {
	return tbScenarioPrefs(nil, act)
}

// tbScenarioPrefs is tbScenario with more user_pref lines in the profile.
func tbScenarioPrefs(prefs []string, act func(ctx context.Context, t *tbird) error) func(context.Context, *runCtx) error {
	return func(ctx context.Context, r *runCtx) error {
		t := &tbird{r: r, profile: filepath.Join(r.tmp, "profile"), prefs: prefs}
		if err := os.MkdirAll(t.profile, 0o700); err != nil {
			return err
		}
		var err error
		if t.mport, err = freePort(); err != nil {
			return err
		}
		if t.xvfb, t.display, err = startXvfb(r); err != nil {
			return err
		}
		defer t.close()
		if err := t.prepare(); err != nil {
			return err
		}
		_, port, _ := net.SplitHostPort(r.tap.Addr())
		p, _ := strconv.Atoi(port)
		if err := t.writeUserJS(p, true); err != nil {
			return err
		}
		r.logf("start thunderbird (account on the tap, port %d)", p)
		if err := t.startTB("thunderbird.log"); err != nil {
			return err
		}
		// The first sync: folder discovery, headers, offline bodies.
		t.settle(5*time.Second, 120*time.Second)
		st := t.logState("after the first sync")
		if st != nil {
			r.logf("folders: %v", st.Folders)
		}
		t.screenshot("synced")
		if err := act(ctx, t); err != nil {
			t.screenshot("failed")
			return err
		}
		return t.quitTB()
	}
}

// restart quits Thunderbird with ctrl+q, runs between (another client's
// changes while Thunderbird is away), starts Thunderbird again on the same
// profile and waits for its start-up sync to be quiet.
func (t *tbird) restart(logName string, between func() error) error {
	if err := t.quitTB(); err != nil {
		return err
	}
	if err := between(); err != nil {
		return err
	}
	t.r.logf("start thunderbird again (same profile)")
	if err := t.startTB(logName); err != nil {
		return err
	}
	t.settle(5*time.Second, 120*time.Second)
	return nil
}

// messages lists every message of a folder as Thunderbird's database has
// it (not the rows of the view: threads may be collapsed there): UID, then
// r (read) and f (flagged) or "-", in UID order.
func (t *tbird) messages(folder string) (string, error) {
	return t.m.jsString(`const w = Services.wm.getMostRecentWindow("mail:3pane");
		const server = w.MailServices.accounts.getIncomingServer("server1");
		const f = server.rootFolder.descendants.find(f => f.name == arguments[0]);
		if (!f) return "no folder " + arguments[0];
		const ms = [];
		for (const h of f.messages) ms.push(h);
		ms.sort((a, b) => a.messageKey - b.messageKey);
		return ms.length + " messages: " + ms.map(h => h.messageKey + ":" + ((h.isRead ? "r" : "") + (h.isFlagged ? "f" : "") || "-")).join(" ");`, folder)
}

// logMessages notes messages(folder) in the driver log.
func (t *tbird) logMessages(what, folder string) {
	s, err := t.messages(folder)
	if err != nil {
		s = err.Error()
	}
	t.r.logf("%s: %s as Thunderbird has it: %s", what, folder, s)
}

// jsCommand runs a chrome-context script in a running Thunderbird (debugging
// a scenario started with -keep).
func jsCommand(port, script string) error {
	m, err := dialMarionette("127.0.0.1:"+port, time.Now().Add(5*time.Second))
	if err != nil {
		return err
	}
	defer m.Close()
	if err := m.chrome(); err != nil {
		return err
	}
	r, err := m.js(script)
	if err != nil {
		return err
	}
	fmt.Println(string(r))
	return nil
}
