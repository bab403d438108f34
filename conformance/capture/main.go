// Command capture records real mail clients talking to Decimail, for
// fixtures/transcripts (conformance/TRANSCRIPTS.md "Capturing"). For each
// scenario it starts Decimail on a private, fresh Postgres with the seed
// account (conformance.SetupAccount), the imap-tap logging proxy in front of
// it, and a real client driven by a script; it writes into OUT/CLIENT/:
//
//	NAME-connN.txt    one transcript per TCP connection (imap-tap v1, replayable)
//	NAME.timeline     every line of every connection in arrival order, timed
//	                  (only when the client opened more than one connection)
//	NAME.server.log   Decimail's own log with the IMAP conversation (debug)
//	NAME.outcome      for every seed message, the mailboxes holding it after the run
//	NAME.driver.log   what the driver did when (+seconds on the timeline's clock)
//	NAME.screens      what neomutt showed (Thunderbird's screenshots stay in the
//	                  scratch directory, kept by -keep, unless -screenshots)
//
// Usage:
//
//	go run ./conformance/capture [-out DIR] [-keep] [-screenshots] CLIENT [SCENARIO...]
//	go run ./conformance/capture -list
//
// CLIENT is thunderbird, neomutt or offlineimap; without SCENARIO every
// scenario of the client runs. The clients are Debian packages that
// conformance/capture/setup.sh installs; this program installs nothing.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"decimail/conformance"
)

// scenario is one scripted client session.
type scenario struct {
	client  string
	name    string // capture name, e.g. "01-unread-read-delete"
	account string // conformance account setup
	text    string // the "# scenario:" header
	run     func(ctx context.Context, r *runCtx) error
}

var scenarios []*scenario

func register(s *scenario) { scenarios = append(scenarios, s) }

// runCtx is what a scenario's script works with.
type runCtx struct {
	sc   *scenario
	srv  *server
	tap  *Tap
	dir  string // OUT/CLIENT
	tmp  string // scratch directory of this run (profiles, maildirs), removed afterwards
	dlog *os.File
	mu   sync.Mutex
}

// logf notes what the driver does, on the tap's clock.
func (r *runCtx) logf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	line := fmt.Sprintf("+%.3f %s\n", time.Since(r.tap.start).Seconds(), fmt.Sprintf(format, args...))
	r.dlog.WriteString(line)
	fmt.Fprintf(os.Stderr, "%s/%s %s", r.sc.client, r.sc.name, line)
}

// path is a file of this capture in the output directory.
func (r *runCtx) path(suffix string) string { return filepath.Join(r.dir, r.sc.name+suffix) }

// clientVersions are the "# client-version:" headers, filled by each client's
// check.
var clientVersions = map[string]func() (string, error){}

// needs lists the binaries of each client (for the message naming setup.sh).
var needs = map[string][]string{}

var screenshots = flag.Bool("screenshots", false, "write Thunderbird's screenshots next to the transcripts (default: the scratch directory)")

func main() {
	out := flag.String("out", "fixtures/transcripts", "output directory (a CLIENT subdirectory per client)")
	list := flag.Bool("list", false, "list the scenarios and exit")
	keep := flag.Bool("keep", false, "keep the scratch directory (profiles, maildirs, screenshots, client logs) of each run")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: go run ./conformance/capture [-out DIR] [-keep] [-screenshots] CLIENT [SCENARIO...]\n       go run ./conformance/capture -list\n       go run ./conformance/capture js MARIONETTE-PORT SCRIPT   (a chrome-context script in a running Thunderbird)\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if *list {
		for _, s := range scenarios {
			fmt.Printf("%-12s %-28s account %-11s %s\n", s.client, s.name, s.account, s.text)
		}
		return
	}
	args := flag.Args()
	if len(args) == 3 && args[0] == "js" {
		if err := jsCommand(args[1], args[2]); err != nil {
			fmt.Fprintln(os.Stderr, "capture:", err)
			os.Exit(1)
		}
		return
	}
	if len(args) == 0 {
		flag.Usage()
		os.Exit(2)
	}
	client, names := args[0], args[1:]
	var todo []*scenario
	for _, s := range scenarios {
		if s.client != client {
			continue
		}
		if len(names) == 0 || matches(names, s.name) {
			todo = append(todo, s)
		}
	}
	if len(todo) == 0 {
		fmt.Fprintf(os.Stderr, "capture: no scenario %q for client %q (see -list)\n", names, client)
		os.Exit(2)
	}
	if err := checkBinaries(client); err != nil {
		fmt.Fprintln(os.Stderr, "capture:", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	failed := false
	for _, s := range todo {
		if err := runScenario(ctx, s, filepath.Join(*out, client), *keep); err != nil {
			fmt.Fprintf(os.Stderr, "capture: %s/%s: %v\n", client, s.name, err)
			failed = true
		}
		if ctx.Err() != nil {
			break
		}
	}
	if failed {
		os.Exit(1)
	}
}

// matches: a scenario is named by its full name or the part after "NN-".
func matches(names []string, name string) bool {
	for _, n := range names {
		if n == name || strings.SplitN(name, "-", 2)[1] == n {
			return true
		}
	}
	return false
}

func checkBinaries(client string) error {
	var missing []string
	for _, b := range needs[client] {
		if _, err := exec.LookPath(b); err != nil {
			missing = append(missing, b)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%s not installed: run conformance/capture/setup.sh (as root) first", strings.Join(missing, ", "))
	}
	return nil
}

func runScenario(ctx context.Context, s *scenario, dir string, keep bool) (err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	// A previous capture of the same name would mix connection files.
	old, _ := filepath.Glob(filepath.Join(dir, s.name+"[-.]*"))
	for _, f := range old {
		os.Remove(f)
	}
	version := "unknown"
	if f := clientVersions[s.client]; f != nil {
		if version, err = f(); err != nil {
			return err
		}
	}
	tmp, err := os.MkdirTemp("", "capture-"+s.client+"-")
	if err != nil {
		return err
	}
	os.Chmod(tmp, 0o755)
	if keep {
		fmt.Fprintf(os.Stderr, "capture: scratch directory %s kept\n", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}
	srv, err := startServer(ctx, dir, s.name, s.account)
	if err != nil {
		return err
	}
	defer srv.stop()
	tap, err := StartTap(srv.addr, dir, s.name, TapHeader{Proto: "IMAP", Client: s.client, ClientVersion: version,
		Server: "Decimail " + revision() + ", in-process on a private Postgres", Scenario: s.text, Account: s.account})
	if err != nil {
		return err
	}
	dlog, err := os.Create(filepath.Join(dir, s.name+".driver.log"))
	if err != nil {
		tap.Close()
		return err
	}
	defer dlog.Close()
	r := &runCtx{sc: s, srv: srv, tap: tap, dir: dir, tmp: tmp, dlog: dlog}
	r.logf("server %s, tap %s, account %s (%s), scratch %s", srv.addr, tap.Addr(), conformance.SeedUser, s.account, tmp)
	runErr := s.run(ctx, r)
	if runErr != nil {
		r.logf("scenario failed: %v", runErr)
	}
	tap.Close()
	r.logf("done: %d connections", tap.Conns())
	of, err := os.Create(r.path(".outcome"))
	if err != nil {
		return err
	}
	defer of.Close()
	if err := srv.outcome(context.Background(), of); err != nil {
		return err
	}
	files := tap.Files()
	sort.Strings(files)
	fmt.Fprintf(os.Stderr, "capture: %s/%s: %d transcripts in %s (%s), outcome %s\n", s.client, s.name, len(files), dir,
		strings.Join(files, " "), r.path(".outcome"))
	return runErr
}
