package conformance

// Mod-sequences in a replay (TRANSCRIPTS.md, allowance "modseq"). A
// mod-sequence is "an opaque value updated by the server" (RFC 7162 §3.1,
// rfc7162.txt:274-295): a rebuilt account, another server or another run
// gives other numbers, as it gives other UIDVALIDITYs. What the RFC fixes
// is their relation within a mailbox: a change gets a value no other
// change had, a later change a greater one. So the replay compares them
// by consistency, not by value: the first time a captured value meets
// ours (at the same place: [HIGHESTMODSEQ] of a SELECT, MODSEQ of the same
// message, STATUS HIGHESTMODSEQ of the same mailbox, a SEARCH's (MODSEQ))
// the two are bound; later they must meet each other again, and the
// order of all values bound in a mailbox must be the same on both sides.
// The client's own mod-sequences (CHANGEDSINCE, UNCHANGEDSINCE, the SEARCH
// key MODSEQ) are numbers it was given: the replay sends ours in their
// place, and a number the captured server never issued in the mailbox
// before is an error (the transcript cannot be replayed faithfully).

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// AllowModSeq: a mod-sequence value differs, consistently (ModSeqs).
const AllowModSeq Allowed = "modseq"

// ModSeqs holds the bindings of one replay: a capture's connections, run
// one after another, share them (a client keeps a mailbox's
// HIGHESTMODSEQ across sessions: Thunderbird's CHANGEDSINCE after a
// restart).
type ModSeqs struct {
	boxes    map[string]*modSeqBox
	selected string // the mailbox the last successful SELECT/EXAMINE opened
}

// modSeqBox is one mailbox's bindings: captured value -> ours and back.
type modSeqBox struct {
	ours, theirs map[uint64]uint64
}

// NewModSeqs starts a replay without bindings.
func NewModSeqs() *ModSeqs { return &ModSeqs{boxes: map[string]*modSeqBox{}} }

func (m *ModSeqs) box(name string) *modSeqBox {
	if strings.EqualFold(name, "INBOX") {
		name = "INBOX"
	}
	b := m.boxes[name]
	if b == nil {
		b = &modSeqBox{ours: map[uint64]uint64{}, theirs: map[uint64]uint64{}}
		m.boxes[name] = b
	}
	return b
}

// bind records that the captured server sent capt in mailbox box where we
// sent ours; it returns what contradicts the earlier bindings, "" if
// nothing does.
func (m *ModSeqs) bind(box string, capt, ours uint64) string {
	b := m.box(box)
	if o, ok := b.ours[capt]; ok {
		if o != ours {
			return fmt.Sprintf("%s: mod-sequence %d, earlier %d where the capture had the same %d", box, ours, o, capt)
		}
		return ""
	}
	if c, ok := b.theirs[ours]; ok {
		return fmt.Sprintf("%s: mod-sequence %d again, where the capture had %d and now %d", box, ours, c, capt)
	}
	for c, o := range b.ours {
		if (c < capt) != (o < ours) {
			return fmt.Sprintf("%s: mod-sequences out of order: %d after %d, the capture %d after %d", box, ours, o, capt, c)
		}
	}
	b.ours[capt], b.theirs[ours] = ours, capt
	return ""
}

// The client's mod-sequences: FETCH's CHANGEDSINCE and STORE's
// UNCHANGEDSINCE modifiers (rfc7162.txt:2471-2481), the SEARCH key
// MODSEQ [entry-name entry-type-req] n (rfc7162.txt:1045).
var (
	cliModSeqRe    = regexp.MustCompile(`(?i)\b((?:UN)?CHANGEDSINCE )(\d+)`)
	searchModSeqRe = regexp.MustCompile(`(?i)\b(MODSEQ (?:"(?:[^"\\]|\\.)*" (?:priv|shared|all) )?)(\d+)`)
)

// rewriteCommands are the commands whose mod-sequences Rewrite replaces.
var rewriteCommands = map[string]*regexp.Regexp{
	"FETCH": cliModSeqRe, "UID FETCH": cliModSeqRe, "STORE": cliModSeqRe, "UID STORE": cliModSeqRe,
	"SEARCH": searchModSeqRe, "UID SEARCH": searchModSeqRe, "SORT": searchModSeqRe, "UID SORT": searchModSeqRe,
	"THREAD": searchModSeqRe, "UID THREAD": searchModSeqRe,
}

// Rewrite replaces the mod-sequences a client command carries (in seg, a
// part of its wire bytes) by the ones we issued where the captured server
// issued those: a ReplayHooks.Rewrite. 0 (UNCHANGEDSINCE 0, SEARCH MODSEQ
// 0) is nobody's and stays; a number the captured server did not issue
// in the selected mailbox before is an error.
func (m *ModSeqs) Rewrite(cmd *TCmd, seg []byte) ([]byte, error) {
	re := rewriteCommands[cmd.Name]
	if re == nil {
		return seg, nil
	}
	var err error
	out := re.ReplaceAllFunc(seg, func(match []byte) []byte {
		sm := re.FindSubmatch(match)
		n, perr := strconv.ParseUint(string(sm[2]), 10, 64)
		if perr != nil || n == 0 {
			return match
		}
		ours, ok := m.box(m.selected).ours[n]
		if !ok {
			if err == nil {
				err = fmt.Errorf("%q: the client's mod-sequence %d was not issued in %s earlier in the capture", cmd.Line, n, m.selected)
			}
			return match
		}
		return append(append([]byte(nil), sm[1]...), strconv.FormatUint(ours, 10)...)
	})
	return out, err
}

// selects notes the mailbox a batch's successful SELECT or EXAMINE
// opened (an unsuccessful one leaves none selected), before the batch's
// responses are bound.
func (m *ModSeqs) selects(cmds []*TCmd) {
	for _, c := range cmds {
		if (c.Name == "SELECT" || c.Name == "EXAMINE") && c.Done != nil {
			m.selected = ""
			if c.Done.Status == "OK" {
				m.selected = commandMailbox(c.Line)
			}
		}
	}
}

// commandMailbox is the first argument of a command line (tag, name,
// mailbox): a quoted string or an atom.
func commandMailbox(line string) string {
	f := strings.SplitN(line, " ", 3)
	if len(f) < 3 {
		return ""
	}
	arg := f[2]
	if strings.HasPrefix(arg, `"`) {
		var b strings.Builder
		for i := 1; i < len(arg); i++ {
			switch arg[i] {
			case '\\':
				if i+1 < len(arg) {
					i++
					b.WriteByte(arg[i])
				}
			case '"':
				return b.String()
			default:
				b.WriteByte(arg[i])
			}
		}
		return b.String()
	}
	name, _, _ := strings.Cut(arg, " ")
	return name
}

// modSeqOf reads a mod-sequence token: a number, or a list holding one
// (FETCH's MODSEQ (n)).
func modSeqOf(t Tok) (uint64, bool) {
	if t.Kind == List {
		if len(t.L) != 1 {
			return 0, false
		}
		t = t.L[0]
	}
	n, err := strconv.ParseUint(t.S, 10, 64)
	return n, err == nil
}

// compareModSeq binds a captured mod-sequence token to ours (what names
// the place, for the messages) and reports the result.
func (st *cmpState) compareModSeq(m *ModSeqs, box, what string, capt, ours Tok) {
	c, ok1 := modSeqOf(capt)
	o, ok2 := modSeqOf(ours)
	if !ok1 || !ok2 {
		st.bad("%s %s, Dovecot %s: not mod-sequences", what, tokString([]Tok{ours}), tokString([]Tok{capt}))
		return
	}
	if box == "" {
		st.bad("%s %d, Dovecot %d: no mailbox selected", what, o, c)
		return
	}
	if msg := m.bind(box, c, o); msg != "" {
		st.bad("%s %d, Dovecot %d: %s", what, o, c, msg)
		return
	}
	if c != o {
		st.allow(AllowModSeq, "%s %d, Dovecot %d (%s)", what, o, c, box)
	}
}

// Bindings lists a mailbox's bindings, captured -> ours in captured
// order (for messages and tests).
func (m *ModSeqs) Bindings(box string) [][2]uint64 {
	b := m.box(box)
	var out [][2]uint64
	for c, o := range b.ours {
		out = append(out, [2]uint64{c, o})
	}
	sort.Slice(out, func(i, j int) bool { return out[i][0] < out[j][0] })
	return out
}
