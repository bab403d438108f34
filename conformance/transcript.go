package conformance

// Client-transcript replay (fixtures/transcripts, format "imap-tap v1"; see
// TRANSCRIPTS.md). A transcript is split on LF only; the C lines rebuild the
// client's byte stream, the S lines the server's. Both streams are parsed as
// IMAP (literals re-framed from {n}), the client's into commands, the
// server's into responses grouped per tagged response. Replay sends the
// client's commands to our server the way the client did (pipelined
// batches, waiting for "+" where the client waited) and compares the
// responses semantically with Dovecot's (CompareBatch).

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"decimail/internal/imaptest"
)

// Transcript is one captured connection.
type Transcript struct {
	File     string
	Header   map[string]string // "client", "scenario", "connection", ...
	Greeting *Resp
	Cmds     []*TCmd
	// ClientClosed: the client closed the connection first (no LOGOUT, e.g.
	// Thunderbird quitting in IDLE).
	ClientClosed bool
}

// TCmd is one client command with Dovecot's responses to it.
type TCmd struct {
	Tag  string
	Name string // upper-case command name; "UID FETCH" etc. for UID commands
	Line string // the first line of the command, without CRLF
	// Segs is the command's wire bytes split after each synchronising
	// literal announcement ({n}\r\n): the client waits for "+" between them.
	Segs [][]byte
	// Conts are the lines the client sent after a "+" continuation request
	// that was not for a literal: AUTHENTICATE responses, IDLE's DONE.
	Conts [][]byte
	// Dovecot's untagged responses (those after the previous tagged
	// response) and its tagged response; Done is nil when the connection
	// closed before it (Thunderbird's final IDLE).
	Untagged []*Resp
	Done     *Resp
	// Plus counts Dovecot's continuation requests for this command.
	Plus int
	// Pipelined: the client sent this command before Dovecot's tagged
	// response to the previous one (mbsync, mutt, Thunderbird pipeline).
	Pipelined bool

	cliOff, doneEnd int // stream offsets, for Pipelined
}

var (
	clientLitRe = regexp.MustCompile(`\{(\d+)(\+?)\}$`)
	headerRe    = regexp.MustCompile(`^# ([a-z-]+): (.*)$`)
)

// ParseTranscript parses an imap-tap v1 file.
func ParseTranscript(file string, data []byte) (*Transcript, error) {
	tr := &Transcript{File: file, Header: map[string]string{}}
	var cli, srv bytes.Buffer
	srvAt := map[int]int{} // client stream offset of a C line -> server stream length then
	lines := bytes.Split(data, []byte("\n"))
	for i, line := range lines {
		if len(line) == 0 && i == len(lines)-1 {
			break
		}
		if len(line) < 2 {
			return nil, fmt.Errorf("%s:%d: short line", file, i+1)
		}
		var dst *bytes.Buffer
		switch line[0] {
		case '#':
			if m := headerRe.FindSubmatch(line); m != nil {
				if _, ok := tr.Header[string(m[1])]; !ok {
					tr.Header[string(m[1])] = string(m[2])
				}
			}
			if bytes.HasPrefix(line, []byte("# end:")) && bytes.Contains(line, []byte("client closed")) {
				tr.ClientClosed = true
			}
			continue
		case 'C':
			dst = &cli
			srvAt[cli.Len()] = srv.Len()
		case 'S':
			dst = &srv
		default:
			return nil, fmt.Errorf("%s:%d: unknown prefix %q", file, i+1, line[:2])
		}
		if len(line) < 3 || line[2] != ' ' {
			return nil, fmt.Errorf("%s:%d: bad prefix", file, i+1)
		}
		dst.Write(line[3:])
		switch line[1] {
		case ':':
			dst.WriteString("\r\n")
		case '~':
			dst.WriteString("\n")
		case '=':
		default:
			return nil, fmt.Errorf("%s:%d: bad prefix %q", file, i+1, line[:2])
		}
	}
	if err := tr.parseClient(cli.Bytes()); err != nil {
		return nil, fmt.Errorf("%s: client stream: %w", file, err)
	}
	if err := tr.parseServer(srv.Bytes()); err != nil {
		return nil, fmt.Errorf("%s: server stream: %w", file, err)
	}
	for i, c := range tr.Cmds {
		if i > 0 {
			prev := tr.Cmds[i-1]
			c.Pipelined = prev.Done != nil && srvAt[c.cliOff] < prev.doneEnd
		}
	}
	return tr, nil
}

func readCRLFLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadBytes('\n')
	if err != nil {
		if err == io.EOF && len(line) > 0 {
			return line, io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return line, nil
}

func (tr *Transcript) parseClient(b []byte) error {
	rd := bytes.NewReader(b)
	br := bufio.NewReader(rd)
	conts := 0 // continuation lines still owed by the last command
	for {
		off := len(b) - rd.Len() - br.Buffered()
		line, err := readCRLFLine(br)
		if err == io.EOF {
			if conts > 0 && !tr.ClientClosed {
				return fmt.Errorf("missing continuation line")
			}
			return nil
		}
		if err != nil {
			return err
		}
		if conts > 0 {
			last := tr.Cmds[len(tr.Cmds)-1]
			last.Conts = append(last.Conts, line)
			conts--
			continue
		}
		cmd := &TCmd{Line: strings.TrimRight(string(line), "\r\n"), cliOff: off}
		seg := slices.Clone(line)
		for {
			m := clientLitRe.FindStringSubmatch(strings.TrimRight(string(line), "\r\n"))
			if m == nil {
				break
			}
			n, _ := strconv.Atoi(m[1])
			if m[2] == "" { // synchronising: the client waited for "+"
				cmd.Segs = append(cmd.Segs, seg)
				seg = nil
			}
			lit := make([]byte, n)
			if _, err := io.ReadFull(br, lit); err != nil {
				return fmt.Errorf("literal of %q: %w", cmd.Line, err)
			}
			seg = append(seg, lit...)
			if line, err = readCRLFLine(br); err != nil {
				return fmt.Errorf("after literal of %q: %w", cmd.Line, err)
			}
			seg = append(seg, line...)
		}
		cmd.Segs = append(cmd.Segs, seg)
		f := strings.Fields(cmd.Line)
		if len(f) < 2 {
			return fmt.Errorf("not a command: %q", cmd.Line)
		}
		cmd.Tag, cmd.Name = f[0], strings.ToUpper(f[1])
		if cmd.Name == "UID" && len(f) > 2 {
			cmd.Name += " " + strings.ToUpper(f[2])
		}
		switch {
		case cmd.Name == "IDLE":
			conts = 1 // DONE
		case cmd.Name == "AUTHENTICATE" && len(f) == 3:
			conts = 1 // no SASL-IR: the response follows "+"
			if strings.EqualFold(f[2], "LOGIN") {
				conts = 2
			}
		}
		tr.Cmds = append(tr.Cmds, cmd)
	}
}

func (tr *Transcript) parseServer(b []byte) error {
	rd := bytes.NewReader(b)
	br := bufio.NewReader(rd)
	var pending []*Resp
	plus := 0
	next := 0 // first command without a tagged response
	for {
		r, err := imaptest.ReadResp(br)
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		switch {
		case tr.Greeting == nil && r.Tag == "*":
			tr.Greeting = r
		case r.Tag == "+":
			plus++
		case r.Tag == "*":
			pending = append(pending, r)
		default:
			i := next
			for i < len(tr.Cmds) && tr.Cmds[i].Tag != r.Tag {
				i++
			}
			if i == len(tr.Cmds) {
				return fmt.Errorf("tagged response %q without command", r.Raw)
			}
			c := tr.Cmds[i]
			c.Untagged, c.Done, c.Plus = pending, r, plus
			c.doneEnd = len(b) - rd.Len() - br.Buffered()
			pending, plus = nil, 0
			next = i + 1
		}
	}
	if next < len(tr.Cmds) { // connection closed during a command
		c := tr.Cmds[next]
		c.Untagged, c.Plus = pending, plus
	} else if len(pending) > 0 {
		return fmt.Errorf("untagged responses after the last command: %v", pending[0].Raw)
	}
	if tr.Greeting == nil {
		return fmt.Errorf("no greeting")
	}
	return nil
}

// Batches splits the commands into what the client sent without waiting
// for a tagged response: a command starts a new batch unless Pipelined.
func (tr *Transcript) Batches() [][]*TCmd {
	var out [][]*TCmd
	for _, c := range tr.Cmds {
		if len(out) == 0 || !c.Pipelined {
			out = append(out, nil)
		}
		out[len(out)-1] = append(out[len(out)-1], c)
	}
	return out
}

// Exchange is what our server answered to one command.
type Exchange struct {
	Untagged []*Resp
	Done     *Resp
	Plus     int
}

// ReplayHooks let the test act on the server while a command runs.
type ReplayHooks struct {
	// InIdle runs after the server's "+" to an IDLE command and before DONE
	// (e.g. to deliver the message whose EXISTS Dovecot sent during IDLE).
	InIdle func(cmd *TCmd) error
	// Rewrite may replace what the client sends (a segment of cmd's wire
	// bytes) by what the replay must send instead: ModSeqs.Rewrite puts
	// our mod-sequences where the client sent the captured server's.
	Rewrite func(cmd *TCmd, seg []byte) ([]byte, error)
}

// ReplayBatch sends a batch of commands the way the client did: one after
// the other without waiting for tagged responses, but waiting for "+"
// before each synchronising literal and each continuation line
// (AUTHENTICATE responses, IDLE's DONE). It then reads up to every tagged
// response. Untagged responses go to the first command not yet completed.
// A command Dovecot never completed (the client closed the connection in
// IDLE) is replayed up to the first continuation request.
func ReplayBatch(c *Conn, cmds []*TCmd, hooks ReplayHooks, timeout time.Duration) ([]*Exchange, error) {
	exs := make([]*Exchange, len(cmds))
	for i := range exs {
		exs[i] = &Exchange{}
	}
	first := 0 // first command without a tagged response
	// read reads one response and files it; it reports a "+".
	read := func(what string) (bool, error) {
		r := c.Next(timeout)
		switch {
		case r == nil:
			return false, fmt.Errorf("timeout after %v waiting for %s", timeout, what)
		case r.EOF:
			return false, fmt.Errorf("connection closed waiting for %s: %s", what, r.Text)
		case r.Tag == "+":
			exs[min(first, len(exs)-1)].Plus++
			return true, nil
		case r.Tag == "*":
			ex := exs[min(first, len(exs)-1)]
			ex.Untagged = append(ex.Untagged, r)
			return false, nil
		}
		for i := first; i < len(cmds); i++ {
			if cmds[i].Tag == r.Tag && exs[i].Done == nil {
				exs[i].Done = r
				for first < len(cmds) && exs[first].Done != nil {
					first++
				}
				return false, nil
			}
		}
		return false, fmt.Errorf("unexpected tagged response %q", r.Raw)
	}
	// waitPlus reads up to a "+"; false when cmds[i] completed instead.
	waitPlus := func(i int) (bool, error) {
		for exs[i].Done == nil {
			plus, err := read(fmt.Sprintf("a continuation request for %q", cmds[i].Line))
			if err != nil || plus {
				return plus, err
			}
		}
		return false, nil
	}
	for i, cmd := range cmds {
		for j, seg := range cmd.Segs {
			if j > 0 {
				if ok, err := waitPlus(i); !ok || err != nil {
					return exs, err
				}
			}
			if hooks.Rewrite != nil {
				var err error
				if seg, err = hooks.Rewrite(cmd, seg); err != nil {
					return exs, err
				}
			}
			if err := c.Write(seg); err != nil {
				return exs, err
			}
		}
		for j, cont := range cmd.Conts {
			if ok, err := waitPlus(i); !ok || err != nil {
				return exs, err
			}
			if j == 0 && cmd.Name == "IDLE" {
				if hooks.InIdle != nil {
					if err := hooks.InIdle(cmd); err != nil {
						return exs, err
					}
				}
				// Dovecot sent EXISTS during IDLE: wait until ours arrives.
				if want := lastNumber(cmd.Untagged, "EXISTS"); want >= 0 {
					for lastNumber(exs[i].Untagged, "EXISTS") != want {
						if _, err := read(fmt.Sprintf("%d EXISTS during IDLE", want)); err != nil {
							return exs, err
						}
					}
				}
			}
			if err := c.Write(cont); err != nil {
				return exs, err
			}
		}
		if cmd.Done == nil {
			// The client closed the connection during this command; go as
			// far as it did.
			if len(cmd.Conts) == 0 && cmd.Plus > 0 {
				_, err := waitPlus(i)
				return exs, err
			}
			return exs, nil
		}
	}
	for first < len(cmds) {
		if _, err := read(fmt.Sprintf("the tagged response to %q", cmds[first].Line)); err != nil {
			return exs, err
		}
	}
	return exs, nil
}

// lastNumber returns n of the last "* n WORD" response, or -1.
func lastNumber(rs []*Resp, word string) int {
	n := -1
	for _, r := range rs {
		if len(r.Data) == 2 && strings.EqualFold(r.Data[1].S, word) {
			if v, err := strconv.Atoi(r.Data[0].S); err == nil {
				n = v
			}
		}
	}
	return n
}

// ---------------------------------------------------------------------------
// Semantic comparison

// Allowed names one documented difference between Dovecot and Decimail
// (TRANSCRIPTS.md lists them all). CompareBatch reports each one it
// tolerates, so a replay shows what it did not hold against us.
type Allowed string

const (
	AllowUIDValidity  Allowed = "uidvalidity"   // UIDVALIDITY values (and in COPYUID)
	AllowMailboxID    Allowed = "mailboxid"     // MAILBOXID values (RFC 8474): per database, like UIDVALIDITY
	AllowCapability   Allowed = "capability"    // [CAPABILITY] codes differ by design
	AllowStoreFetch   Allowed = "store-fetch"   // FETCH after STORE for messages whose flags did not change
	AllowExtraItems   Allowed = "extra-items"   // FETCH items Dovecot did not send
	AllowListParents  Allowed = "list-parents"  // Lists: an implied parent is a real folder here, \Noselect in Dovecot
	AllowSelectUnseen Allowed = "select-unseen" // [UNSEEN n] absent on SELECT
	AllowFlagsList    Allowed = "flags-list"    // FLAGS/PERMANENTFLAGS keyword lists (keywords defined differently)
	AllowDateZone     Allowed = "date-zone"     // INTERNALDATE: same instant, we keep the APPEND zone, Dovecot says +0000
	AllowClosed       Allowed = "closed"        // [CLOSED] (RFC 7162 QRESYNC) on SELECT while selected
	AllowListAttrs    Allowed = "list-attrs"    // optional LIST attributes on one side only (\HasChildren..., \Marked...)
	AllowRecent       Allowed = "recent"        // \Recent in FETCH FLAGS only (see TRANSCRIPTS.md)
	AllowEnabled      Allowed = "enabled"       // empty "* ENABLED" that Dovecot omits
	AllowExtraCode    Allowed = "extra-code"    // a response code only we sent (e.g. [HIGHESTMODSEQ], [MAILBOXID])
)

// Problem is one difference found by CompareBatch.
type Problem struct {
	Allowed Allowed // "" for a real difference
	Msg     string
}

type cmpState struct{ probs []Problem }

func (s *cmpState) bad(format string, args ...any) {
	s.probs = append(s.probs, Problem{Msg: fmt.Sprintf(format, args...)})
}

func (s *cmpState) allow(a Allowed, format string, args ...any) {
	s.probs = append(s.probs, Problem{Allowed: a, Msg: fmt.Sprintf(format, args...)})
}

// respSet is a batch's responses, classified.
type respSet struct {
	exists, recent int
	expunge        []int
	fetch          []*fetchRec
	search         []string
	searchSeen     bool
	searchModSeq   *Tok                // SEARCH's (MODSEQ n): search-sort-mod-seq, rfc7162.txt:2557
	list           map[string][]string // "LIST name" -> sorted upper-case attributes
	listOrder      []string
	status         map[string]map[string]string
	flags          []string
	codes          map[string][]Tok // response codes of untagged status responses and the tagged ones
	bye            bool
	namespace      string
	kinds          map[string]int // other untagged data by kind: CAPABILITY, ID, ENABLED, ...
	enabled        []string
}

type fetchRec struct {
	seq   int
	uid   string
	items map[string]Tok
	order []string
}

func (f *fetchRec) key() string {
	if f.uid != "" {
		return "UID " + f.uid
	}
	return "#" + strconv.Itoa(f.seq)
}

func classify(rs []*Resp, dones []*Resp) *respSet {
	s := &respSet{exists: -1, recent: -1, list: map[string][]string{}, status: map[string]map[string]string{}, codes: map[string][]Tok{}, kinds: map[string]int{}}
	addCode := func(r *Resp) {
		if r != nil && r.HasCode && len(r.Code) > 0 {
			s.codes[strings.ToUpper(r.Code[0].S)] = r.Code[1:]
		}
	}
	for _, d := range dones {
		addCode(d)
	}
	for _, r := range rs {
		if r.Status != "" {
			if r.Status == "BYE" {
				s.bye = true
			}
			addCode(r)
			continue
		}
		if len(r.Data) == 0 {
			continue
		}
		if n, err := strconv.Atoi(r.Data[0].S); err == nil && len(r.Data) >= 2 {
			switch strings.ToUpper(r.Data[1].S) {
			case "EXISTS":
				s.exists = n
			case "RECENT":
				s.recent = n
			case "EXPUNGE":
				s.expunge = append(s.expunge, n)
			case "FETCH":
				f := &fetchRec{seq: n, items: map[string]Tok{}}
				if len(r.Data) >= 3 {
					l := r.Data[2].L
					for i := 0; i+1 < len(l); i += 2 {
						k := strings.ToUpper(l[i].S)
						f.items[k] = l[i+1]
						f.order = append(f.order, k)
					}
				}
				if u, ok := f.items["UID"]; ok {
					f.uid = u.S
				}
				s.fetch = append(s.fetch, f)
			}
			continue
		}
		switch strings.ToUpper(r.Data[0].S) {
		case "SEARCH":
			s.searchSeen = true
			for _, t := range r.Data[1:] {
				if t.Kind == List && len(t.L) == 2 && strings.EqualFold(t.L[0].S, "MODSEQ") {
					s.searchModSeq = &t.L[1]
					continue
				}
				s.search = append(s.search, t.S)
			}
		case "LIST", "LSUB":
			if len(r.Data) >= 4 {
				name := r.Data[3].S
				if strings.EqualFold(name, "INBOX") {
					name = "INBOX"
				}
				var attrs []string
				for _, a := range r.Data[1].L {
					attrs = append(attrs, strings.ToUpper(a.S))
				}
				sort.Strings(attrs)
				k := strings.ToUpper(r.Data[0].S) + " " + name
				s.list[k] = attrs
				s.listOrder = append(s.listOrder, k)
			}
		case "STATUS":
			if len(r.Data) >= 3 {
				m := map[string]string{}
				l := r.Data[2].L
				for i := 0; i+1 < len(l); i += 2 {
					m[strings.ToUpper(l[i].S)] = l[i+1].S
				}
				s.status[r.Data[1].S] = m
			}
		case "FLAGS":
			if len(r.Data) >= 2 {
				s.flags = flagSet(r.Data[1])
			}
		case "NAMESPACE":
			s.namespace = tokString(r.Data[1:])
		case "ENABLED":
			for _, t := range r.Data[1:] {
				s.enabled = append(s.enabled, strings.ToUpper(t.S))
			}
			sort.Strings(s.enabled)
			s.kinds["ENABLED"]++
		default:
			// CAPABILITY, ID: presence only (TRANSCRIPTS.md).
			s.kinds[strings.ToUpper(r.Data[0].S)]++
		}
	}
	return s
}

// flagSet normalises a flag list: system flags case-folded, sorted.
func flagSet(t Tok) []string {
	var out []string
	for _, f := range t.L {
		if strings.HasPrefix(f.S, `\`) && len(f.S) > 1 {
			out = append(out, strings.ToUpper(f.S[:2])+strings.ToLower(f.S[2:]))
		} else {
			out = append(out, f.S)
		}
	}
	sort.Strings(out)
	return out
}

func tokString(ts []Tok) string {
	parts := make([]string, len(ts))
	for i, t := range ts {
		switch t.Kind {
		case List:
			parts[i] = "(" + tokString(t.L) + ")"
		case Str:
			parts[i] = strconv.Quote(t.S)
		default:
			parts[i] = strings.ToUpper(t.S)
		}
	}
	return strings.Join(parts, " ")
}

// CompareBatch compares our answers to a batch of pipelined commands (see
// Batches; usually one command) with Dovecot's. Tagged responses are
// compared per command, untagged data over the whole batch, since Dovecot
// may answer pipelined commands in parallel and interleave their data.
// Mod-sequences are bound in ms, the replay's (nil: this batch's only).
func CompareBatch(cmds []*TCmd, exs []*Exchange, ms *ModSeqs) []Problem {
	st := &cmpState{}
	if ms == nil {
		ms = NewModSeqs()
	}
	ms.selects(cmds)
	var eU, gU, eDone, gDone []*Resp
	names := map[string]bool{}
	for i, cmd := range cmds {
		names[cmd.Name] = true
		ex := exs[i]
		eU, gU = append(eU, cmd.Untagged...), append(gU, ex.Untagged...)
		pre := ""
		if len(cmds) > 1 {
			pre = cmd.Tag + " " + cmd.Name + ": "
		}
		if cmd.Done == nil {
			if cmd.Plus > 0 && ex.Plus == 0 {
				st.bad("%sDovecot sent a continuation request, we did not", pre)
			}
			continue
		}
		if ex.Done == nil {
			st.bad("%sno tagged response", pre)
			continue
		}
		if cmd.Done.Status != ex.Done.Status {
			st.bad("%stagged %s, Dovecot %s (we: %q, Dovecot: %q)", pre, ex.Done.Status, cmd.Done.Status, ex.Done.Raw, cmd.Done.Raw)
		}
		if cmd.Plus != ex.Plus {
			st.bad("%s%d continuation requests, Dovecot %d", pre, ex.Plus, cmd.Plus)
		}
		eDone, gDone = append(eDone, cmd.Done), append(gDone, ex.Done)
	}
	e, g := classify(eU, eDone), classify(gU, gDone)
	selects := names["SELECT"] || names["EXAMINE"]
	// STORE without .SILENT: Dovecot omits FETCH for messages whose flags
	// did not change, we may not (RFC 3501 6.4.6 asks for the new flags).
	isStore := false
	for _, c := range cmds {
		if (c.Name == "STORE" || c.Name == "UID STORE") && !strings.Contains(strings.ToUpper(c.Line), ".SILENT") {
			isStore = true
		}
	}

	if e.exists >= 0 && e.exists != g.exists {
		st.bad("EXISTS %d, Dovecot %d", g.exists, e.exists)
	} else if e.exists < 0 && g.exists >= 0 && !selects {
		st.bad("unexpected %d EXISTS (Dovecot sent none)", g.exists)
	}
	if e.recent != g.recent {
		st.bad("RECENT %d, Dovecot %d", g.recent, e.recent)
	}
	if !slices.Equal(e.expunge, g.expunge) {
		st.bad("EXPUNGE %v, Dovecot %v", g.expunge, e.expunge)
	}
	if e.bye != g.bye {
		st.bad("BYE: we %v, Dovecot %v", g.bye, e.bye)
	}
	if e.namespace != g.namespace {
		st.bad("NAMESPACE %s, Dovecot %s", g.namespace, e.namespace)
	}
	if e.searchSeen != g.searchSeen {
		st.bad("SEARCH response: we %v, Dovecot %v", g.searchSeen, e.searchSeen)
	} else if e.searchSeen {
		if es, gs := sortedNums(e.search), sortedNums(g.search); !slices.Equal(es, gs) {
			st.bad("SEARCH %v, Dovecot %v", gs, es)
		}
		switch {
		case e.searchModSeq != nil && g.searchModSeq != nil:
			st.compareModSeq(ms, ms.selected, "SEARCH (MODSEQ)", *e.searchModSeq, *g.searchModSeq)
		case e.searchModSeq != nil || g.searchModSeq != nil:
			st.bad("SEARCH (MODSEQ) on one side only: we %v, Dovecot %v", g.searchModSeq != nil, e.searchModSeq != nil)
		}
	}
	for k := range e.kinds {
		switch {
		case g.kinds[k] > 0:
		case k == "CAPABILITY" && g.codes["CAPABILITY"] != nil:
			st.allow(AllowCapability, "[CAPABILITY] code instead of an untagged CAPABILITY (RFC 3501 7.1, either is fine)")
		default:
			st.bad("no untagged %s", k)
		}
	}
	for k := range g.kinds {
		switch {
		case e.kinds[k] > 0:
		case k == "ENABLED" && len(g.enabled) == 0:
			st.allow(AllowEnabled, "empty ENABLED (RFC 5161 3.1: MUST send one); Dovecot sent none")
		default:
			st.bad("unexpected untagged %s (Dovecot sent none)", k)
		}
	}
	if !slices.Equal(e.enabled, g.enabled) {
		st.bad("ENABLED %v, Dovecot %v", g.enabled, e.enabled)
	}
	compareFetch(st, ms, isStore, e, g)
	compareList(st, e, g)
	for mb, em := range e.status {
		gm, ok := g.status[mb]
		if !ok {
			st.bad("no STATUS for %s", mb)
			continue
		}
		for k, v := range em {
			if k == "UIDVALIDITY" {
				st.allow(AllowUIDValidity, "STATUS %s UIDVALIDITY", mb)
				continue
			}
			if k == "MAILBOXID" {
				st.allow(AllowMailboxID, "STATUS %s MAILBOXID", mb)
				continue
			}
			if k == "HIGHESTMODSEQ" {
				if _, ok := gm[k]; !ok {
					st.bad("STATUS %s: no HIGHESTMODSEQ", mb)
				} else {
					st.compareModSeq(ms, mb, "STATUS "+mb+" HIGHESTMODSEQ", Tok{Kind: Atom, S: v}, Tok{Kind: Atom, S: gm[k]})
				}
				continue
			}
			if gm[k] != v {
				st.bad("STATUS %s %s %s, Dovecot %s", mb, k, gm[k], v)
			}
		}
	}
	if len(g.status) > len(e.status) {
		st.bad("%d STATUS responses, Dovecot %d", len(g.status), len(e.status))
	}
	if e.flags == nil && g.flags != nil && !selects {
		st.bad("unexpected FLAGS %v (Dovecot sent none)", g.flags)
	} else if e.flags != nil && g.flags == nil && !selects {
		st.bad("no FLAGS %v (Dovecot announced a keyword new to the mailbox; so must we, issue 14)", e.flags)
	} else if e.flags != nil && !slices.Equal(e.flags, g.flags) {
		st.allow(AllowFlagsList, "FLAGS %v, Dovecot %v", g.flags, e.flags)
	}
	compareCodes(st, ms, selects, e, g)
	return st.probs
}

func sortedNums(ss []string) []int {
	var out []int
	for _, s := range ss {
		n, _ := strconv.Atoi(s)
		out = append(out, n)
	}
	sort.Ints(out)
	return out
}

func compareCodes(st *cmpState, ms *ModSeqs, selects bool, e, g *respSet) {
	for code, gv := range g.codes {
		if _, ok := e.codes[code]; !ok {
			st.allow(AllowExtraCode, "[%s %s] (Dovecot sent no %s)", code, tokString(gv), code)
		}
	}
	for code, ev := range e.codes {
		gv, ok := g.codes[code]
		switch code {
		case "CAPABILITY":
			st.allow(AllowCapability, "[CAPABILITY] lists differ by design")
			continue
		case "UIDVALIDITY":
			if !ok {
				st.bad("no [UIDVALIDITY]")
			} else {
				st.allow(AllowUIDValidity, "[UIDVALIDITY %s], Dovecot %s", tokString(gv), tokString(ev))
			}
			continue
		case "MAILBOXID":
			// RFC 8474: an opaque id the server gives out; a rebuilt
			// account has other ids (the Decimail captures).
			if !ok {
				st.bad("no [MAILBOXID]")
			} else {
				st.allow(AllowMailboxID, "[MAILBOXID %s], captured %s", tokString(gv), tokString(ev))
			}
			continue
		case "COPYUID":
			if !ok {
				st.bad("no [COPYUID]")
			} else if len(ev) == 3 && len(gv) == 3 {
				st.allow(AllowUIDValidity, "COPYUID uidvalidity")
				if tokString(ev[1:]) != tokString(gv[1:]) {
					st.bad("[COPYUID %s], Dovecot [COPYUID %s]", tokString(gv), tokString(ev))
				}
			} else {
				st.bad("[COPYUID %s], Dovecot [COPYUID %s]", tokString(gv), tokString(ev))
			}
			continue
		case "HIGHESTMODSEQ":
			// [MODIFIED] holds message numbers: compared as they are.
			if !ok || len(ev) != 1 || len(gv) != 1 {
				st.bad("[HIGHESTMODSEQ %s], Dovecot [HIGHESTMODSEQ %s]", tokString(gv), tokString(ev))
			} else {
				st.compareModSeq(ms, ms.selected, "[HIGHESTMODSEQ]", ev[0], gv[0])
			}
			continue
		case "CLOSED":
			if !ok {
				st.allow(AllowClosed, "no [CLOSED]")
				continue
			}
		case "PERMANENTFLAGS":
			if !ok && !selects {
				st.bad("no [PERMANENTFLAGS %s] (Dovecot announced a keyword new to the mailbox; so must we, issue 14)", tokString(ev))
				continue
			}
			if !ok || len(ev) == 0 || len(gv) == 0 {
				st.bad("[PERMANENTFLAGS %s], Dovecot [PERMANENTFLAGS %s]", tokString(gv), tokString(ev))
				continue
			}
			ef, gf := flagSet(ev[0]), flagSet(gv[0])
			if slices.Contains(ef, `\*`) != slices.Contains(gf, `\*`) {
				st.bad(`PERMANENTFLAGS %v, Dovecot %v (\* differs)`, gf, ef)
			} else if !slices.Equal(ef, gf) {
				st.allow(AllowFlagsList, "PERMANENTFLAGS %v, Dovecot %v", gf, ef)
			}
			continue
		case "UNSEEN":
			if !ok {
				st.allow(AllowSelectUnseen, "no [UNSEEN %s]", tokString(ev))
				continue
			}
		}
		if !ok {
			st.bad("no [%s %s]", code, tokString(ev))
		} else if tokString(ev) != tokString(gv) {
			st.bad("[%s %s], Dovecot [%s %s]", code, tokString(gv), code, tokString(ev))
		}
	}
}

// optionalAttrs may be returned or not (RFC 5258 section 4: child info
// "MAY be returned in response to any LIST command"; RFC 3501 7.2.2:
// \Marked/\Unmarked are optional).
var optionalAttrs = map[string][]string{
	`\HASCHILDREN`: {`\HASCHILDREN`, `\HASNOCHILDREN`}, `\HASNOCHILDREN`: {`\HASCHILDREN`, `\HASNOCHILDREN`},
	`\MARKED`: {`\MARKED`, `\UNMARKED`}, `\UNMARKED`: {`\MARKED`, `\UNMARKED`},
}

// dropOptional removes the optional attributes of a for which other has
// no attribute of the same family.
func dropOptional(a, other []string) []string {
	var out []string
	for _, x := range a {
		if fam, ok := optionalAttrs[x]; ok && !slices.ContainsFunc(other, func(y string) bool { return slices.Contains(fam, y) }) {
			continue
		}
		out = append(out, x)
	}
	return out
}

func compareList(st *cmpState, e, g *respSet) {
	for _, k := range e.listOrder {
		ea := e.list[k]
		ga, ok := g.list[k]
		if !ok {
			st.bad("missing %s", k)
			continue
		}
		ea2, ga2 := dropOptional(ea, ga), dropOptional(ga, ea)
		if len(ea2) != len(ea) || len(ga2) != len(ga) {
			st.allow(AllowListAttrs, "%s (%s), Dovecot (%s)", k, strings.Join(ga, " "), strings.Join(ea, " "))
		}
		if !slices.Equal(ea2, ga2) {
			if strings.HasSuffix(k, " Lists") && slices.Contains(ea2, `\NOSELECT`) {
				st.allow(AllowListParents, "%s (%s), Dovecot (%s)", k, strings.Join(ga, " "), strings.Join(ea, " "))
				continue
			}
			st.bad("%s (%s), Dovecot (%s)", k, strings.Join(ga, " "), strings.Join(ea, " "))
		}
	}
	for _, k := range g.listOrder {
		if _, ok := e.list[k]; !ok {
			st.bad("extra %s (%s)", k, strings.Join(g.list[k], " "))
		}
	}
}

const internalDateLayout = "_2-Jan-2006 15:04:05 -0700"

// mergeFetch keys FETCH responses by UID (or sequence number) in order of
// first appearance; several responses for one message (FLAGS after BODY[],
// two pipelined FETCHes) are merged.
func mergeFetch(fs []*fetchRec) ([]string, map[string]*fetchRec) {
	var keys []string
	m := map[string]*fetchRec{}
	for _, f := range fs {
		old, ok := m[f.key()]
		if !ok {
			old = &fetchRec{seq: f.seq, uid: f.uid, items: map[string]Tok{}}
			m[f.key()] = old
			keys = append(keys, f.key())
		}
		for _, k := range f.order {
			if _, dup := old.items[k]; !dup {
				old.order = append(old.order, k)
			}
			old.items[k] = f.items[k]
		}
	}
	return keys, m
}

// stripRecent removes \Recent from a normalised flag list.
func stripRecent(fs []string) []string {
	return slices.DeleteFunc(slices.Clone(fs), func(f string) bool { return f == `\Recent` })
}

func compareFetch(st *cmpState, ms *ModSeqs, isStore bool, e, g *respSet) {
	ek, emap := mergeFetch(e.fetch)
	gk, gmap := mergeFetch(g.fetch)
	if !slices.Equal(ek, gk) {
		if isStore && isSubseq(ek, gk) {
			st.allow(AllowStoreFetch, "FETCH for %v, Dovecot for %v", gk, ek)
		} else {
			st.bad("FETCH responses for %v, Dovecot for %v", gk, ek)
		}
	}
	for _, k := range ek {
		ef := emap[k]
		gf, ok := gmap[k]
		if !ok {
			continue
		}
		if ef.seq != gf.seq {
			st.bad("%s: sequence number %d, Dovecot %d", k, gf.seq, ef.seq)
		}
		for _, item := range ef.order {
			ev := ef.items[item]
			gv, ok := gf.items[item]
			if !ok {
				st.bad("%s: no %s", k, item)
				continue
			}
			switch {
			case item == "MODSEQ":
				st.compareModSeq(ms, ms.selected, k+": MODSEQ", ev, gv)
			case item == "INTERNALDATE":
				et, err1 := time.Parse(internalDateLayout, ev.S)
				gt, err2 := time.Parse(internalDateLayout, gv.S)
				switch {
				case err1 != nil || err2 != nil:
					st.bad("%s: INTERNALDATE %q, Dovecot %q", k, gv.S, ev.S)
				case !et.Equal(gt):
					st.bad("%s: INTERNALDATE %q, Dovecot %q (a different instant)", k, gv.S, ev.S)
				case ev.S != gv.S:
					st.allow(AllowDateZone, "%s: INTERNALDATE %q, Dovecot %q", k, gv.S, ev.S)
				}
			case item == "FLAGS":
				a, b := flagSet(ev), flagSet(gv)
				if !slices.Equal(a, b) {
					if slices.Equal(stripRecent(a), stripRecent(b)) {
						st.allow(AllowRecent, "%s: FLAGS %v, Dovecot %v", k, b, a)
					} else {
						st.bad("%s: FLAGS %v, Dovecot %v", k, b, a)
					}
				}
			case ev.Kind == Str || gv.Kind == Str:
				if ev.S != gv.S || ev.Kind != gv.Kind {
					st.bad("%s: %s differs: %d octets %s, Dovecot %d octets %s%s", k, item, len(gv.S), abbrev(strconv.Quote(gv.S), 60), len(ev.S), abbrev(strconv.Quote(ev.S), 60), firstDiff(gv.S, ev.S))
				}
			default:
				if tokString([]Tok{ev}) != tokString([]Tok{gv}) {
					st.bad("%s: %s %s, Dovecot %s", k, item, tokString([]Tok{gv}), tokString([]Tok{ev}))
				}
			}
		}
		for _, item := range gf.order {
			if _, ok := ef.items[item]; !ok {
				st.allow(AllowExtraItems, "%s: extra item %s %s", k, item, abbrev(tokString([]Tok{gf.items[item]}), 60))
			}
		}
	}
}

func firstDiff(a, b string) string {
	for i := 0; i < min(len(a), len(b)); i++ {
		if a[i] != b[i] {
			return fmt.Sprintf(" (first difference at octet %d: %q vs %q)", i, abbrev(a[i:], 30), abbrev(b[i:], 30))
		}
	}
	return ""
}

// isSubseq: every element of a occurs in b, in order.
func isSubseq(a, b []string) bool {
	j := 0
	for _, x := range b {
		if j < len(a) && a[j] == x {
			j++
		}
	}
	return j == len(a)
}
