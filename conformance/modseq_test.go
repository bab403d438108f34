package conformance

import (
	"bufio"
	"flag"
	"net"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

// recordSession talks to addr as a CONDSTORE client whose next command may
// depend on the answers to the earlier ones (step gets the server's lines
// so far and returns the next command, "" to stop), and returns the
// conversation as an imap-tap transcript. Literal-free commands and
// answers only. It records our own server for TestTranscriptModSeq's
// fixture; it is not a client capture.
func recordSession(t *testing.T, addr string, step func(lines []string) string) string {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, DefaultTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	br := bufio.NewReader(nc)
	var b strings.Builder
	b.WriteString("# imap-tap transcript v1 (IMAP)\n# client: conformance/modseq_test.go condstoreSession (not a real client; go test -run TestTranscriptModSeq -record-modseq)\n# server: Decimail, recorded by TestTranscriptModSeq\n# account: seed\n")
	var lines []string
	read := func(tag string) {
		for {
			nc.SetReadDeadline(time.Now().Add(DefaultTimeout))
			l, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("reading: %v", err)
			}
			l = strings.TrimRight(l, "\r\n")
			lines = append(lines, l)
			b.WriteString("S: " + l + "\n")
			if tag == "" || strings.HasPrefix(l, tag+" ") {
				return
			}
		}
	}
	read("")
	for i := 1; ; i++ {
		cmd := step(lines)
		if cmd == "" {
			break
		}
		tag := "m" + string(rune('a'+i))
		b.WriteString("C: " + tag + " " + cmd + "\n")
		if _, err := nc.Write([]byte(tag + " " + cmd + "\r\n")); err != nil {
			t.Fatal(err)
		}
		read(tag)
	}
	return b.String()
}

var (
	highestRe  = regexp.MustCompile(`\[HIGHESTMODSEQ (\d+)\]`)
	fetchModRe = regexp.MustCompile(`UID 3 .*MODSEQ \((\d+)\)`)
)

// last returns the first submatch of re in the last line that has one.
func last(lines []string, re *regexp.Regexp) string {
	for i := len(lines) - 1; i >= 0; i-- {
		if m := re.FindStringSubmatch(lines[i]); m != nil {
			return m[1]
		}
	}
	return ""
}

// condstoreSession is a CONDSTORE client's session on the seed account:
// every place a mod-sequence stands in a response, and every argument
// that carries one back (CHANGEDSINCE, UNCHANGEDSINCE, SEARCH MODSEQ).
func condstoreSession(lines []string) string {
	n := 0
	for _, l := range lines {
		if strings.HasPrefix(l, "m") {
			n++
		}
	}
	h0 := ""
	for _, l := range lines {
		if m := highestRe.FindStringSubmatch(l); m != nil {
			h0 = m[1]
			break
		}
	}
	switch n {
	case 0:
		return "LOGIN testuser pass"
	case 1:
		return "SELECT INBOX (CONDSTORE)"
	case 2:
		return `UID STORE 2 +FLAGS (\Seen)`
	case 3:
		return `UID STORE 3 +FLAGS (\Flagged)`
	case 4:
		return "UID FETCH 1:* (FLAGS) (CHANGEDSINCE " + h0 + ")"
	case 5:
		// UNCHANGEDSINCE with the MODSEQ UID 3 got: passes.
		return "UID STORE 3 (UNCHANGEDSINCE " + last(lines, fetchModRe) + `) -FLAGS (\Seen)`
	case 6:
		return "UID SEARCH MODSEQ " + h0
	case 7:
		return "STATUS Sent (HIGHESTMODSEQ MESSAGES)"
	case 8:
		return "SELECT INBOX (CONDSTORE)" // a higher HIGHESTMODSEQ, [CLOSED]
	case 9:
		return "UID FETCH 1:* (FLAGS) (CHANGEDSINCE " + h0 + ")"
	case 10:
		return "LOGOUT"
	}
	return ""
}

var recordModSeq = flag.Bool("record-modseq", false, "TestTranscriptModSeq: record "+modSeqFixture+" anew from this server")

// modSeqFixture is condstoreSession as Decimail answered it when it was
// recorded (-record-modseq): the reference the replay holds our server to.
const modSeqFixture = "testdata/condstore-session.txt"

// TestTranscriptModSeq replays a recorded CONDSTORE session against the
// seed account rebuilt, where every mod-sequence is another number (the
// sequence moved on): the replay puts ours into the client's CHANGEDSINCE,
// UNCHANGEDSINCE and SEARCH MODSEQ, finds nothing but "modseq"
// differences, and binds each recorded value to one of ours, in order.
// The recording is a fixture, not made afresh: a server that changed how
// it numbers (a HIGHESTMODSEQ below its messages' MODSEQ) fails here.
func TestTranscriptModSeq(t *testing.T) {
	env := startSeedServer(t)
	if *recordModSeq {
		text := recordSession(t, env.addr, condstoreSession)
		if err := os.WriteFile(modSeqFixture, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		env.resetTo(t, AccountSeed)
	}
	text, err := os.ReadFile(modSeqFixture)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := ParseTranscript(modSeqFixture, text)
	if err != nil {
		t.Fatal(err)
	}
	// Other numbers than the recording's: the sequence moves on.
	env.resetTo(t, AccountSeed)
	ms := NewModSeqs()
	probs := replayProblems(t, env, tr, ms)
	allowed := 0
	for _, p := range probs {
		switch {
		case p.Allowed == AllowModSeq:
			allowed++
		case p.Allowed != "":
		default:
			t.Errorf("%s", p.Msg)
		}
	}
	if allowed == 0 {
		t.Errorf("no mod-sequence differed: the replay did not get other numbers")
	}
	bs := ms.Bindings("INBOX")
	if len(bs) < 4 {
		t.Errorf("INBOX bindings %v: want HIGHESTMODSEQ twice and two messages' MODSEQ", bs)
	}
	if len(ms.Bindings("Sent")) != 1 {
		t.Errorf("Sent bindings %v: want STATUS HIGHESTMODSEQ", ms.Bindings("Sent"))
	}
	t.Logf("INBOX: recorded -> ours %v; %d modseq differences allowed", bs, allowed)
}

// replayProblems replays tr on a new connection to env and compares.
func replayProblems(t *testing.T, env *seedEnv, tr *Transcript, ms *ModSeqs) []Problem {
	t.Helper()
	c, err := Dial("replay", env.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if g := c.Next(20 * time.Second); g == nil || g.EOF {
		t.Fatalf("greeting %v", g)
	}
	var probs []Problem
	for _, batch := range tr.Batches() {
		exs, err := ReplayBatch(c, batch, ReplayHooks{Rewrite: ms.Rewrite}, 20*time.Second)
		if err != nil {
			t.Fatalf("%s: %v", batch[0].Line, err)
		}
		for _, p := range CompareBatch(batch, exs, ms) {
			t.Logf("%s: %s %s", batch[0].Line, p.Allowed, p.Msg)
			probs = append(probs, p)
		}
	}
	return probs
}

// TestModSeqBind: what the allowance holds against a replay.
func TestModSeqBind(t *testing.T) {
	m := NewModSeqs()
	for _, b := range [][2]uint64{{10, 1000}, {12, 1005}, {11, 1001}, {12, 1005}} {
		if msg := m.bind("INBOX", b[0], b[1]); msg != "" {
			t.Errorf("bind %v: %s", b, msg)
		}
	}
	for _, bad := range []struct {
		box  string
		c, o uint64
		want string
	}{
		{"INBOX", 12, 1006, "earlier 1005"}, // one captured value, two of ours
		{"INBOX", 13, 1005, "again"},        // two captured values, one of ours
		{"INBOX", 13, 1003, "out of order"}, // later in the capture, earlier here
		{"INBOX", 9, 1002, "out of order"},  // earlier in the capture, later here
		{"inbox", 12, 1006, "earlier 1005"}, // INBOX in any case
	} {
		if msg := m.bind(bad.box, bad.c, bad.o); !strings.Contains(msg, bad.want) {
			t.Errorf("bind %s %d->%d: %q, want %q", bad.box, bad.c, bad.o, msg, bad.want)
		}
	}
	// Another mailbox has its own mod-sequences (RFC 7162 §3.1: per
	// mailbox): Dovecot's 12 in Sent is not its 12 in INBOX.
	if msg := m.bind("Sent", 12, 7); msg != "" {
		t.Errorf("Sent: %s", msg)
	}

	m.selected = "INBOX"
	for _, c := range []struct{ name, line, want, err string }{
		{"UID FETCH", "1 UID FETCH 1:* (FLAGS) (CHANGEDSINCE 12)", "1 UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1005)", ""},
		{"UID STORE", `2 UID STORE 4 (UNCHANGEDSINCE 11) +FLAGS (\Seen)`, `2 UID STORE 4 (UNCHANGEDSINCE 1001) +FLAGS (\Seen)`, ""},
		{"STORE", `3 STORE 1 (UNCHANGEDSINCE 0) +FLAGS (\Seen)`, `3 STORE 1 (UNCHANGEDSINCE 0) +FLAGS (\Seen)`, ""},
		{"UID SEARCH", `4 UID SEARCH MODSEQ "/flags/\\draft" all 10 UNSEEN`, `4 UID SEARCH MODSEQ "/flags/\\draft" all 1000 UNSEEN`, ""},
		{"SEARCH", `5 SEARCH MODSEQ 10`, `5 SEARCH MODSEQ 1000`, ""},
		{"APPEND", `6 APPEND INBOX {20}`, `6 APPEND INBOX {20}`, ""},
		{"UID FETCH", "7 UID FETCH 1:* (FLAGS) (CHANGEDSINCE 99)", "", "not issued"},
	} {
		got, err := m.Rewrite(&TCmd{Name: c.name, Line: c.line}, []byte(c.line+"\r\n"))
		switch {
		case c.err != "":
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: error %v, want %q", c.line, err, c.err)
			}
		case err != nil:
			t.Errorf("%s: %v", c.line, err)
		case string(got) != c.want+"\r\n":
			t.Errorf("%s: sent %q, want %q", c.line, got, c.want)
		}
	}
}
