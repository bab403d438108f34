package imapd

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"decimail/internal/imaptest"
	"decimail/server/store"
)

var (
	modseqRe = regexp.MustCompile(`MODSEQ \(?(\d+)\)?`)
	hmsRe    = regexp.MustCompile(`HIGHESTMODSEQ (\d+)`)
)

// modseqs returns the MODSEQ of each FETCH response by sequence number.
func modseqs(t *testing.T, rs []*imaptest.Resp) map[uint32]int64 {
	t.Helper()
	out := map[uint32]int64{}
	for _, r := range rs {
		if r.Name() != "FETCH" {
			continue
		}
		m := modseqRe.FindStringSubmatch(r.String())
		if m == nil {
			t.Fatalf("no MODSEQ in %s", r)
		}
		seq, _ := strconv.ParseUint(r.Data[0].S, 10, 32)
		out[uint32(seq)], _ = strconv.ParseInt(m[1], 10, 64)
	}
	return out
}

// highest returns the HIGHESTMODSEQ of the responses (a SELECT's code or
// a STATUS item), failing if there is none.
func highest(t *testing.T, rs []*imaptest.Resp) int64 {
	t.Helper()
	for _, r := range rs {
		if m := hmsRe.FindStringSubmatch(r.String()); m != nil {
			n, _ := strconv.ParseInt(m[1], 10, 64)
			return n
		}
	}
	t.Fatalf("no HIGHESTMODSEQ in %v", rs)
	return 0
}

// The CONDSTORE basics on a folder: HIGHESTMODSEQ is the highest MODSEQ of
// the mailbox's messages (rfc7162.txt:439-442); a STORE gives the message a
// mod-sequence above it (rfc7162.txt:274-291), reported in the STORE's FETCH
// response; CHANGEDSINCE returns only that message (rfc7162.txt:871-878),
// SEARCH MODSEQ finds it with the highest mod-sequence appended
// (rfc7162.txt:1077-1083), STATUS reports the same HIGHESTMODSEQ
// (rfc7162.txt:1131-1133).
func TestCondstoreFolder(t *testing.T) {
	e := newEnv(t)
	for i := range 3 {
		e.deliver("INBOX", testMsg(fmt.Sprint("m", i)), store.Flags{})
	}
	c := e.dial()
	caps := c.OK("CAPABILITY")[0].String()
	if !strings.Contains(caps, " CONDSTORE") {
		t.Fatalf("CONDSTORE not advertised: %s", caps)
	}
	h0 := highest(t, c.OK("SELECT INBOX (CONDSTORE)"))
	ms := modseqs(t, c.OK("FETCH 1:* (MODSEQ)"))
	if len(ms) != 3 || slices.Max(slicesOf(ms)) != h0 {
		t.Fatalf("MODSEQs %v, HIGHESTMODSEQ %d: want 3 with the highest equal to it", ms, h0)
	}
	u := c.OK("STORE 2 +FLAGS (\\Seen)")
	imaptest.Expect(t, u, fmt.Sprintf(`* 2 FETCH (FLAGS (\Seen \Recent) MODSEQ (%d))`, modseqs(t, u)[2]))
	m2 := modseqs(t, u)[2]
	if m2 <= h0 {
		t.Fatalf("MODSEQ after STORE %d, not above HIGHESTMODSEQ %d", m2, h0)
	}
	// Setting a flag already set does not change the mod-sequence
	// (rfc7162.txt:312-314).
	if again := modseqs(t, c.OK("STORE 2 +FLAGS (\\Seen)"))[2]; again != m2 {
		t.Errorf("+FLAGS of a set flag moved MODSEQ %d -> %d", m2, again)
	}
	imaptest.Expect(t, c.OK(fmt.Sprintf("UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d)", h0)),
		fmt.Sprintf(`* 2 FETCH (UID 2 FLAGS (\Seen \Recent) MODSEQ (%d))`, m2))
	imaptest.Expect(t, c.OK(fmt.Sprintf("FETCH 1:* (FLAGS) (CHANGEDSINCE %d)", m2)))
	imaptest.Expect(t, c.OK(fmt.Sprintf("SEARCH MODSEQ %d", h0+1)), fmt.Sprintf("* SEARCH 2 (MODSEQ %d)", m2))
	imaptest.Expect(t, c.OK(fmt.Sprintf(`SEARCH MODSEQ "/flags/\\Seen" all %d`, m2+1)), "* SEARCH")
	u, done := c.DoTag("e1", "SEARCH RETURN (ALL) MODSEQ 1")
	if done.Status != "OK" {
		t.Fatal(done)
	}
	imaptest.Expect(t, u, fmt.Sprintf(`* ESEARCH (TAG "e1") ALL 1:3 MODSEQ %d`, m2))
	if h := highest(t, c.OK("STATUS INBOX (HIGHESTMODSEQ)")); h != m2 {
		t.Errorf("STATUS HIGHESTMODSEQ %d, want %d", h, m2)
	}
}

func slicesOf(m map[uint32]int64) []int64 {
	var out []int64
	for _, v := range m {
		out = append(out, v)
	}
	return out
}
