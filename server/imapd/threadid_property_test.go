package imapd

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"decimail/server/store"
)

// TestPropertyThreadID (issue 17): the THREADID a user's messages get
// (store/thread.go) against THREAD=REFERENCES without its subject merging,
// as the RFC 5256 reference of TestPropertySortThread computes it
// (refThreads), on random messages (drawRefMailbox: Message-ID,
// In-Reply-To and References graphs with cycles, missing parents,
// duplicate and invalid Message-IDs, quoting variants) delivered in the
// drawn order, so replies often come before their parents, into one to
// three mailboxes of a fresh user. Checked:
//
//   - the assignment: a message gets the thread of the earliest-founded
//     thread among the earlier messages whose msg-ids meet its own
//     (Message-ID, In-Reply-To, References), else a thread of its own;
//     a THREADID never changes ("MUST NOT change the THREADID of a
//     message once reported", rfc8474.txt:332), so the FETCH after all
//     deliveries sees each message's first;
//   - messages with one THREADID are linked through the user's mail;
//   - unless a message arrived linked to two threads (which then stay
//     two, RFC 8474 §5.2), every thread THREAD=REFERENCES makes of a
//     mailbox's messages has one THREADID.
func TestPropertyThreadID(t *testing.T) {
	e := newEnv(t)
	run := 0
	var bridged, early, together int // how often the interesting cases came up
	rapid.Check(t, func(rt *rapid.T) {
		run++
		name := fmt.Sprintf("t%d", run)
		u, err := e.st.CreateUser(t.Context(), name, "pw")
		if err != nil {
			rt.Fatal(err)
		}
		boxes := []string{"INBOX", "Archive", "B"}[:rapid.IntRange(1, 3).Draw(rt, "mailboxes")]
		c := e.dialAddr(e.addr)
		defer c.Close()
		c.OK("LOGIN " + name + " pw")
		if len(boxes) == 3 {
			c.OK("CREATE B")
		}
		ms := drawRefMailbox(rt, run)
		where := make([]int, len(ms))
		for i, m := range ms {
			where[i] = rapid.IntRange(0, len(boxes)-1).Draw(rt, fmt.Sprintf("msg %d mailbox", i+1))
			if _, err := e.st.Deliver(t.Context(), u.ID, []byte(m.header), store.DeliverOptions{Mailbox: boxes[where[i]], InternalDate: m.arrival}); err != nil {
				rt.Fatal(err)
			}
		}
		// Each message's THREADID, by FETCH in each mailbox (its sequence
		// numbers are the delivery order of its messages).
		tid := make([]string, len(ms))
		fetched := regexp.MustCompile(`^\* (\d+) FETCH \(THREADID \(([A-Z2-7]+)\)\)`)
		perBox := make([][]int, len(boxes))
		for i := range ms {
			perBox[where[i]] = append(perBox[where[i]], i)
		}
		for b, in := range perBox {
			if len(in) == 0 {
				continue
			}
			c.OK("SELECT " + boxes[b])
			for _, r := range c.OK("FETCH 1:* (THREADID)") {
				f := fetched.FindStringSubmatch(r.Raw)
				if f == nil {
					rt.Fatalf("FETCH THREADID: %q", r.Raw)
				}
				seq, _ := strconv.Atoi(f[1])
				tid[in[seq-1]] = f[2]
			}
		}
		// The model: each message's keys, the thread of the earliest
		// founded thread among the earlier messages they meet.
		keys := make([][]string, len(ms))
		for i, m := range ms {
			for _, k := range append([]string{m.id, m.inReplyTo}, m.refs...) {
				if k != "" && !slices.Contains(keys[i], k) {
					keys[i] = append(keys[i], k)
				}
			}
		}
		meet := func(i, j int) bool {
			for _, k := range keys[i] {
				if slices.Contains(keys[j], k) {
					return true
				}
			}
			return false
		}
		class := make([]int, len(ms))
		bridge := false
		for i := range ms {
			class[i] = i
			joined := -1
			for j := range i {
				if !meet(i, j) {
					continue
				}
				if joined >= 0 && class[j] != joined {
					bridge = true
				}
				if joined < 0 || class[j] < joined {
					joined = class[j]
				}
				if ms[i].id != "" && (slices.Contains(ms[j].refs, ms[i].id) || ms[j].inReplyTo == ms[i].id) {
					early++ // j, stored before, replied to i
				}
			}
			if joined >= 0 {
				class[i] = joined
			}
		}
		if bridge {
			bridged++
		}
		// The links across the user's mail, for the second check.
		comp := make([]int, len(ms))
		for i := range comp {
			comp[i] = i
		}
		var find func(int) int
		find = func(i int) int {
			if comp[i] != i {
				comp[i] = find(comp[i])
			}
			return comp[i]
		}
		for i := range ms {
			for j := range i {
				if meet(i, j) {
					comp[find(i)] = find(j)
				}
			}
		}
		for i := range ms {
			for j := range i {
				if (tid[i] == tid[j]) != (class[i] == class[j]) {
					rt.Fatalf("messages %d and %d: THREADIDs %s and %s, want them %s\n%s", j+1, i+1, tid[j], tid[i],
						map[bool]string{true: "equal", false: "different"}[class[i] == class[j]], describe(ms, where, boxes, tid))
				}
				if tid[i] == tid[j] && find(i) != find(j) {
					rt.Fatalf("messages %d and %d share THREADID %s but nothing links them\n%s", j+1, i+1, tid[i], describe(ms, where, boxes, tid))
				}
			}
		}
		if bridge {
			return
		}
		for b, in := range perBox {
			sub := make([]*refMsg, len(in))
			for k, i := range in {
				sub[k] = ms[i]
			}
			for _, th := range refThreads(sub) {
				if len(th) > 1 {
					together++
				}
				for _, k := range th[1:] {
					if a, z := in[th[0]], in[k]; tid[a] != tid[z] {
						rt.Fatalf("mailbox %s: THREAD=REFERENCES puts messages %d and %d in one thread, THREADIDs %s and %s\n%s",
							boxes[b], a+1, z+1, tid[a], tid[z], describe(ms, where, boxes, tid))
					}
				}
			}
		}
	})
	t.Logf("%d runs: %d with a message linked to two threads, %d replies stored before their parent, %d THREAD threads of several messages checked",
		run, bridged, early, together)
}

// describe lists the drawn messages for a failure.
func describe(ms []*refMsg, where []int, boxes []string, tid []string) string {
	var b strings.Builder
	for i, m := range ms {
		fmt.Fprintf(&b, "  %d in %s, THREADID %s: Message-ID %q In-Reply-To %q References %q\n",
			i+1, boxes[where[i]], tid[i], m.id, m.inReplyTo, m.refs)
	}
	return b.String()
}
