package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// expectedNO lists the NO answers Roundcube's flow may get, by command
// name: none today. An entry needs a reason.
var expectedNO = map[string]string{}

// checkIMAPLog reads the IMAP conversation Decimail logged (JSON lines,
// "C: ..." and "S: ..." per session) and checks it: no BAD (tagged or
// untagged), no NO but the expected ones, and that Roundcube sent SORT
// and THREAD (UID SORT / UID THREAD or their sequence forms), STORE, MOVE
// and APPEND. It writes
// imap-conversation.txt (one line per logged line, with the session) and
// imap-commands.txt (how often each command was sent, and its answers).
func (r *runner) checkIMAPLog() error {
	f, err := os.Open(filepath.Join(r.out, "decimail.log"))
	if err != nil {
		return err
	}
	defer f.Close()
	var conv bytes.Buffer
	type key struct {
		session int
		tag     string
	}
	pending := map[key]string{} // tag -> command line
	counts := map[string]map[string]int{}
	var problems []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	tagged := regexp.MustCompile(`^S: (\S+) (OK|NO|BAD)\b`)
	for sc.Scan() {
		var l struct {
			Msg     string `json:"msg"`
			Daemon  string `json:"daemon"`
			Session int    `json:"session"`
		}
		if json.Unmarshal(sc.Bytes(), &l) != nil || l.Daemon != "imap" {
			continue
		}
		if !strings.HasPrefix(l.Msg, "C: ") && !strings.HasPrefix(l.Msg, "S: ") {
			continue
		}
		fmt.Fprintf(&conv, "%4d %s\n", l.Session, l.Msg)
		if strings.HasPrefix(l.Msg, "C: ") {
			f := strings.Fields(l.Msg[3:])
			if len(f) >= 2 {
				pending[key{l.Session, f[0]}] = strings.Join(f[1:], " ")
			}
			continue
		}
		if strings.HasPrefix(l.Msg, "S: * BAD") || strings.HasPrefix(l.Msg, "S: * NO") {
			problems = append(problems, fmt.Sprintf("session %d: %s", l.Session, l.Msg))
			continue
		}
		m := tagged.FindStringSubmatch(l.Msg)
		if m == nil || m[1] == "*" || m[1] == "+" {
			continue
		}
		k := key{l.Session, m[1]}
		cmd, ok := pending[k]
		if !ok {
			continue
		}
		delete(pending, k)
		name := commandName(cmd)
		if counts[name] == nil {
			counts[name] = map[string]int{}
		}
		counts[name][m[2]]++
		switch m[2] {
		case "BAD":
			problems = append(problems, fmt.Sprintf("session %d: %s %s -> %s", l.Session, m[1], cmd, l.Msg[3:]))
		case "NO":
			if why, ok := expectedNO[name]; ok {
				r.logf("expected NO (%s): %s", why, l.Msg)
			} else {
				problems = append(problems, fmt.Sprintf("session %d: %s %s -> %s", l.Session, m[1], cmd, l.Msg[3:]))
			}
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	os.WriteFile(filepath.Join(r.out, "imap-conversation.txt"), conv.Bytes(), 0o644)
	var names []string
	for n := range counts {
		names = append(names, n)
	}
	sort.Strings(names)
	var sum strings.Builder
	for _, n := range names {
		fmt.Fprintf(&sum, "%-16s OK %d  NO %d  BAD %d\n", n, counts[n]["OK"], counts[n]["NO"], counts[n]["BAD"])
	}
	os.WriteFile(filepath.Join(r.out, "imap-commands.txt"), []byte(sum.String()), 0o644)
	r.logf("IMAP commands Roundcube sent (imap-commands.txt):\n%s", sum.String())

	sorts := counts["SORT"]["OK"] + counts["UID SORT"]["OK"]
	threads := counts["THREAD"]["OK"] + counts["UID THREAD"]["OK"]
	if sorts == 0 {
		problems = append(problems, "Roundcube sent no SORT")
	}
	if threads == 0 {
		problems = append(problems, "Roundcube sent no THREAD")
	}
	// The flow's other actions, as Roundcube sends them: a flag change,
	// Delete (a MOVE to Trash), the copy of a sent message in Sent (whose
	// answer is the copy submission filed: README "Sent mail is stored once").
	for _, c := range []string{"UID STORE", "UID MOVE", "APPEND"} {
		if counts[c]["OK"] == 0 {
			problems = append(problems, "Roundcube sent no "+c+" (answered OK)")
		}
	}
	if len(counts) == 0 {
		problems = append(problems, "no IMAP conversation logged (imapd_log_imap)")
	}
	if len(problems) > 0 {
		for _, p := range problems {
			r.logf("FAIL imap log: %s", p)
		}
		return fmt.Errorf("IMAP log: %d problem(s), first: %s", len(problems), problems[0])
	}
	r.logf("ok   IMAP log: no BAD, no unexpected NO; SORT %d and THREAD %d answered OK", sorts, threads)
	return nil
}

// commandName is the command's name, with UID's second word ("UID SORT").
func commandName(cmd string) string {
	f := strings.Fields(strings.ToUpper(cmd))
	if len(f) == 0 {
		return ""
	}
	if f[0] == "UID" && len(f) > 1 {
		return "UID " + f[1]
	}
	return f[0]
}
