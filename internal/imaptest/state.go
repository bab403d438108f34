package imaptest

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// State follows one connection's selected mailbox as a client that keeps
// state must ("Certain server data MUST be recorded by the client",
// rfc3501.txt:3485) and counts the responses that contradict what it
// recorded: protocol-state errors, by class. The caller tells it each
// command (Begin), hands it every untagged response (Observe, ObserveRaw)
// and the command's end (End). It does no I/O.
//
// What it checks, by class:
//
//   - "exists": an EXISTS that would reduce the number of messages
//     (rfc3501.txt:1154: "only the EXPUNGE response can do this"); a
//     SELECT without EXISTS.
//   - "expunge": an EXPUNGE of a sequence number the client does not have
//     (so the count would go negative or past its end).
//   - "expunge-forbidden": an EXPUNGE while responding to FETCH, STORE or
//     SEARCH, or outside any command (rfc3501.txt:4053: "MUST NOT be
//     sent when no command is in progress").
//   - "fetch-seq": a FETCH of a sequence number beyond the count.
//   - "uid": a UID that breaks the order of the sequence (UIDs "strictly
//     ascending", rfc3501.txt:433), another UID at a sequence number whose
//     UID the client knows ("MUST NOT change during the session",
//     rfc3501.txt:438), or an expunged UID that comes back.
//   - "flags": a flag in a FETCH FLAGS that is neither a system flag nor
//     announced by FLAGS (rfc3501.txt:3950: "The update from the FLAGS
//     response MUST be recorded by the client"); a SELECT without FLAGS.
//   - "permanentflags": at the end of a command that received FLAGS or
//     PERMANENTFLAGS, in a read-write session, a flag of FLAGS missing from
//     PERMANENTFLAGS when that says keywords can be created (\*): a flag
//     "in the FLAGS untagged response, but not the PERMANENTFLAGS list, can
//     not be set permanently" (rfc3501.txt:3568), so a server that
//     announces a keyword it lets clients set announces it in both; or a
//     PERMANENTFLAGS naming a keyword FLAGS does not ("which of the known
//     flags").
//   - "uidvalidity": a mailbox's UIDVALIDITY changed between selections of
//     one run, or a SELECT without it.
type State struct {
	Errors  map[string]int // protocol-state errors by class
	Samples []string       // the first few, with the response
	// MaxSamples bounds Samples (default 5).
	MaxSamples int

	cmd         string // the command in progress, upper case ("UID FETCH"); "" if none
	mailbox     string
	selecting   bool
	selected    bool
	readOnly    bool
	sawExists   bool
	uids        []uint32        // by sequence number - 1; 0: not known yet
	gone        map[uint32]bool // expunged UIDs of goneBox
	goneBox     string
	flags       map[string]bool // announced (lower case), system flags excluded
	sawFlags    bool
	perm        map[string]bool // PERMANENTFLAGS (lower case); nil: none received
	permNew     bool            // \* in PERMANENTFLAGS
	permChecked bool            // FLAGS and PERMANENTFLAGS compared since either came
	validity    map[string]uint32
	sawValid    bool
}

var systemFlagSet = map[string]bool{`\seen`: true, `\answered`: true, `\flagged`: true, `\deleted`: true,
	`\draft`: true, `\recent`: true}

func (s *State) fail(class string, format string, args ...any) {
	if s.Errors == nil {
		s.Errors = map[string]int{}
	}
	s.Errors[class]++
	max := s.MaxSamples
	if max == 0 {
		max = 5
	}
	if len(s.Samples) < max {
		s.Samples = append(s.Samples, class+": "+fmt.Sprintf(format, args...))
	}
}

// Count is the number of errors of every class.
func (s *State) Count() int {
	n := 0
	for _, v := range s.Errors {
		n += v
	}
	return n
}

// Len is the number of messages the client has.
func (s *State) Len() int { return len(s.uids) }

// Begin starts a command: its text without the tag ("UID FETCH 1:* FLAGS").
func (s *State) Begin(cmd string) {
	f := strings.Fields(cmd)
	if len(f) == 0 {
		return
	}
	name := strings.ToUpper(f[0])
	if name == "UID" && len(f) > 1 {
		name += " " + strings.ToUpper(f[1])
	}
	s.cmd = name
	if name == "SELECT" || name == "EXAMINE" {
		s.selecting, s.selected, s.readOnly = true, false, name == "EXAMINE"
		s.mailbox = ""
		if len(f) > 1 {
			s.mailbox = strings.Trim(f[1], `"`)
			if strings.EqualFold(s.mailbox, "INBOX") {
				s.mailbox = "INBOX"
			}
		}
		if s.mailbox != s.goneBox {
			s.gone, s.goneBox = nil, s.mailbox // UIDs are per mailbox
		}
		s.uids, s.flags, s.perm, s.permNew = s.uids[:0], map[string]bool{}, nil, false
		s.sawExists, s.sawFlags, s.sawValid = false, false, false
	}
}

// End ends the command with its tagged status (OK, NO, BAD).
func (s *State) End(status string) {
	if s.selecting {
		s.selecting = false
		if strings.EqualFold(status, "OK") {
			s.selected = true
			if !s.sawExists {
				s.fail("exists", "SELECT %s without EXISTS", s.mailbox)
			}
			if !s.sawFlags {
				s.fail("flags", "SELECT %s without FLAGS", s.mailbox)
			}
			if !s.sawValid {
				s.fail("uidvalidity", "SELECT %s without UIDVALIDITY", s.mailbox)
			}
		} else {
			s.uids = s.uids[:0] // a failed SELECT leaves none selected
		}
	}
	if s.selected && s.perm != nil && !s.permChecked {
		s.permChecked = true // once per FLAGS or PERMANENTFLAGS received
		for f := range s.perm {
			if !s.flags[f] {
				s.fail("permanentflags", "%s: PERMANENTFLAGS has %s, FLAGS does not", s.cmd, f)
			}
		}
		if !s.readOnly && s.permNew {
			for f := range s.flags {
				if !s.perm[f] {
					s.fail("permanentflags", "%s: FLAGS has %s, PERMANENTFLAGS (with \\*) does not", s.cmd, f)
				}
			}
		}
	}
	s.cmd = ""
}

// ObserveRaw is Observe for a response as read (Client.ReadRaw): only
// the responses it checks are parsed.
func (s *State) ObserveRaw(r *Raw) {
	line := r.Line()
	if len(line) < 3 || line[0] != '*' || line[1] != ' ' {
		return
	}
	rest := line[2:]
	switch {
	case rest[0] >= '0' && rest[0] <= '9':
		i := bytes.IndexByte(rest, ' ')
		if i < 0 {
			return
		}
		w := rest[i+1:]
		if !hasWordPrefix(w, "EXISTS") && !hasWordPrefix(w, "EXPUNGE") && !hasWordPrefix(w, "FETCH") {
			return
		}
	case hasWordPrefix(rest, "FLAGS"):
	case hasWordPrefix(rest, "OK") && (bytes.Contains(rest, []byte("[PERMANENTFLAGS")) || bytes.Contains(rest, []byte("[UIDVALIDITY"))):
	default:
		return
	}
	resp, err := r.Parse()
	if err != nil {
		s.fail("parse", "%v", err)
		return
	}
	s.Observe(resp)
}

func hasWordPrefix(b []byte, w string) bool {
	return len(b) >= len(w) && strings.EqualFold(string(b[:len(w)]), w) && (len(b) == len(w) || b[len(w)] == ' ' || b[len(w)] == '\r')
}

// Observe records an untagged response and checks it.
func (s *State) Observe(r *Resp) {
	if r.Tag != "*" {
		return
	}
	if r.Status == "OK" {
		switch r.CodeName() {
		case "PERMANENTFLAGS":
			s.permanentFlags(r)
		case "UIDVALIDITY":
			s.uidValidity(r)
		}
		return
	}
	if r.Status != "" || len(r.Data) == 0 {
		return
	}
	switch r.Name() {
	case "FLAGS":
		if len(r.Data) < 2 || r.Data[1].Kind != List {
			s.fail("flags", "malformed: %s", r)
			return
		}
		s.flags = map[string]bool{}
		for _, t := range r.Data[1].L {
			if f := strings.ToLower(t.S); !systemFlagSet[f] {
				s.flags[f] = true
			}
		}
		s.sawFlags, s.permChecked = true, false
	case "EXISTS":
		n, ok := seqNum(r)
		if !ok {
			s.fail("exists", "malformed: %s", r)
			return
		}
		s.sawExists = s.sawExists || s.selecting
		if n < len(s.uids) {
			s.fail("exists", "%s: %d EXISTS after %d (only EXPUNGE reduces the count)", s.cmd, n, len(s.uids))
			return
		}
		for len(s.uids) < n {
			s.uids = append(s.uids, 0)
		}
	case "EXPUNGE":
		n, ok := seqNum(r)
		switch {
		case !ok:
			s.fail("expunge", "malformed: %s", r)
			return
		case s.cmd == "" || s.cmd == "FETCH" || s.cmd == "STORE" || s.cmd == "SEARCH":
			s.fail("expunge-forbidden", "%d EXPUNGE during %q", n, s.cmd)
		}
		if n < 1 || n > len(s.uids) {
			s.fail("expunge", "%s: %d EXPUNGE with %d messages", s.cmd, n, len(s.uids))
			return
		}
		if u := s.uids[n-1]; u != 0 {
			if s.gone == nil {
				s.gone = map[uint32]bool{}
			}
			s.gone[u] = true
		}
		s.uids = append(s.uids[:n-1], s.uids[n:]...)
	case "FETCH":
		s.fetch(r)
	}
}

func seqNum(r *Resp) (int, bool) {
	n, err := strconv.ParseUint(r.Data[0].S, 10, 32)
	return int(n), err == nil
}

func (s *State) fetch(r *Resp) {
	n, ok := seqNum(r)
	if !ok {
		return
	}
	if n < 1 || n > len(s.uids) {
		s.fail("fetch-seq", "%s: * %d FETCH with %d messages", s.cmd, n, len(s.uids))
		return
	}
	attrs := r.Attrs()
	if t, ok := attrs["UID"]; ok {
		s.uid(n, t.S)
	}
	if t, ok := attrs["FLAGS"]; ok && t.Kind == List {
		for _, f := range t.L {
			l := strings.ToLower(f.S)
			if !systemFlagSet[l] && !s.flags[l] {
				s.fail("flags", "%s: * %d FETCH FLAGS has %s, not announced by FLAGS", s.cmd, n, f.S)
			}
		}
	}
}

// uid checks and records that sequence number n has UID us.
func (s *State) uid(n int, us string) {
	v, err := strconv.ParseUint(us, 10, 32)
	if err != nil || v == 0 {
		s.fail("uid", "* %d FETCH (UID %s)", n, us)
		return
	}
	u := uint32(v)
	if s.gone[u] {
		s.fail("uid", "%s: UID %d at %d was expunged", s.cmd, u, n)
		return
	}
	if k := s.uids[n-1]; k != 0 {
		if k != u {
			s.fail("uid", "%s: * %d FETCH (UID %d), but %d has UID %d", s.cmd, n, u, n, k)
		}
		return
	}
	for i := n - 2; i >= 0; i-- {
		if k := s.uids[i]; k != 0 {
			if k >= u {
				s.fail("uid", "%s: UID %d at %d after UID %d at %d (not ascending)", s.cmd, u, n, k, i+1)
				return
			}
			break
		}
	}
	for i := n; i < len(s.uids); i++ {
		if k := s.uids[i]; k != 0 {
			if k <= u {
				s.fail("uid", "%s: UID %d at %d before UID %d at %d (not ascending)", s.cmd, u, n, k, i+1)
				return
			}
			break
		}
	}
	s.uids[n-1] = u
}

func (s *State) permanentFlags(r *Resp) {
	if len(r.Code) < 2 || r.Code[1].Kind != List {
		s.fail("permanentflags", "malformed: %s", r)
		return
	}
	s.perm, s.permNew, s.permChecked = map[string]bool{}, false, false
	for _, t := range r.Code[1].L {
		f := strings.ToLower(t.S)
		switch {
		case f == `\*`:
			s.permNew = true
		case !systemFlagSet[f]:
			s.perm[f] = true
		}
	}
}

func (s *State) uidValidity(r *Resp) {
	if len(r.Code) < 2 {
		s.fail("uidvalidity", "malformed: %s", r)
		return
	}
	v, err := strconv.ParseUint(r.Code[1].S, 10, 32)
	if err != nil {
		s.fail("uidvalidity", "malformed: %s", r)
		return
	}
	s.sawValid = s.sawValid || s.selecting
	if s.validity == nil {
		s.validity = map[string]uint32{}
	}
	if old, ok := s.validity[s.mailbox]; ok && old != uint32(v) {
		s.fail("uidvalidity", "%s: UIDVALIDITY of %s %d, was %d", s.cmd, s.mailbox, v, old)
	}
	s.validity[s.mailbox] = uint32(v)
}
