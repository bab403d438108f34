package imapd

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"decimail/internal/imaptest"
	"decimail/server/store"
)

// sortMsg is a message of the sort tests: header fields by name ("" left out).
type sortMsg struct {
	from, to, cc, subject, date, msgID, inReplyTo, refs string
	arrival                                             time.Time
	pad                                                 int // body octets, for SIZE
}

func (m sortMsg) raw() string {
	var b strings.Builder
	for _, f := range [][2]string{{"From", m.from}, {"To", m.to}, {"Cc", m.cc}, {"Subject", m.subject}, {"Date", m.date},
		{"Message-ID", m.msgID}, {"In-Reply-To", m.inReplyTo}, {"References", m.refs}} {
		if f[1] != "" {
			fmt.Fprintf(&b, "%s: %s\r\n", f[0], f[1])
		}
	}
	b.WriteString("\r\n" + strings.Repeat("x", m.pad) + "\r\n")
	return b.String()
}

func (e *testEnv) deliverSort(folder string, m sortMsg, f store.Flags) {
	e.t.Helper()
	at := m.arrival
	if at.IsZero() {
		at = time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)
	}
	if _, err := e.st.Deliver(context.Background(), e.user.ID, []byte(m.raw()), store.DeliverOptions{Mailbox: folder, Flags: f,
		InternalDate: at}); err != nil {
		e.t.Fatal(err)
	}
}

func sday(d int) time.Time { return time.Date(2026, 1, d, 12, 0, 0, 0, time.UTC) }

// sortFixture: five INBOX messages, each key ordering them differently.
//
//	seq subject              from    to      cc    Date (UTC)         arrival body
//	1   "Re: [list] Budget"  carol   zed     -     3 Jan 10:00 +0000  day 5   1000
//	2   "budget"             dan,zz  Bob     amy   2 Jan 23:30 -0300  day 4   400
//	3   "Alpha (fwd)"        alice   -       zoe   - (arrival day 1)  day 1   700
//	4   "[fwd: ALPHA]"       bob     "X" <y> -     1 Jan 00:00 +0000  day 3   400 (shorter header than 2)
//	5   -                    -       amy     amy   3 Jan 10:00 +0000  day 2   0
func sortFixture(t *testing.T) *testEnv {
	e := newEnv(t)
	for _, m := range []sortMsg{
		{from: "Carol <carol@x.test>", to: "zed@x.test", subject: "Re: [list] Budget", date: "Sat, 3 Jan 2026 10:00:00 +0000", arrival: sday(5), pad: 1000},
		{from: "=?UTF-8?Q?Dan?= <dan@x.test>, zz@x.test", to: "Bob <Bob@x.test>", cc: "amy@x.test", subject: "budget", date: "Fri, 2 Jan 2026 23:30:00 -0300", arrival: sday(4), pad: 400},
		{from: "alice@x.test", cc: "Zoe <zoe@x.test>", subject: "Alpha (fwd)", arrival: sday(1), pad: 700},
		{from: "bob@x.test", to: `"X" <y@x.test>`, subject: "[fwd: ALPHA]", date: "Thu, 1 Jan 2026 00:00:00 +0000", arrival: sday(3), pad: 400},
		{to: "amy@x.test", cc: "amy@x.test", date: "Sat, 3 Jan 2026 10:00:00 +0000", arrival: sday(2)},
	} {
		e.deliverSort("INBOX", m, store.Flags{})
	}
	return e
}

// Every sort key, REVERSE, the implicit sequence number tie-break, and the
// UID form ("Sorting is in ascending order", rfc5256.txt:219-222; the keys
// ARRIVAL to TO, rfc5256.txt:252-294).
func TestSort(t *testing.T) {
	e := sortFixture(t)
	c := e.dial()
	c.OK("SELECT INBOX")
	c.OK("STORE 1 +FLAGS (\\Seen)")
	for _, tc := range []struct{ cmd, want string }{
		// Arrival: days 5 4 1 3 2.
		{"SORT (ARRIVAL) UTF-8 ALL", "* SORT 3 5 4 2 1"},
		{"SORT (REVERSE ARRIVAL) UTF-8 ALL", "* SORT 1 2 4 5 3"},
		// Sent date in UTC: 2 Jan 23:30 -0300 is 3 Jan 02:30; 3 falls back
		// to its arrival (1 Jan 12:00); 1 and 5 tie: sequence order, also
		// under REVERSE.
		{"SORT (DATE) UTF-8 ALL", "* SORT 4 3 2 1 5"},
		{"SORT (REVERSE DATE) UTF-8 ALL", "* SORT 1 5 2 3 4"},
		// Base subjects: budget, budget, alpha, alpha, "".
		{"SORT (SUBJECT) UTF-8 ALL", "* SORT 5 3 4 1 2"},
		{"SORT (SUBJECT REVERSE DATE) US-ASCII ALL", "* SORT 5 3 4 1 2"},
		{"SORT (REVERSE SUBJECT) UTF-8 ALL", "* SORT 1 2 3 4 5"},
		// addr-mailbox of the first address, case-insensitive: carol,
		// dan, alice, bob, "".
		{"SORT (FROM) UTF-8 ALL", "* SORT 5 3 4 1 2"},
		{"SORT (TO) UTF-8 ALL", "* SORT 3 5 2 4 1"},
		{"SORT (CC) UTF-8 ALL", "* SORT 1 4 2 5 3"},
		{"SORT (SIZE) UTF-8 ALL", "* SORT 5 4 2 3 1"},
		{"SORT (REVERSE SIZE) UTF-8 ALL", "* SORT 1 3 2 4 5"},
		{"UID SORT (SUBJECT) UTF-8 ALL", "* SORT 5 3 4 1 2"},
		// The search part is SEARCH's.
		{"SORT (DATE) UTF-8 UNSEEN", "* SORT 4 3 2 5"},
		{"SORT (SUBJECT) UTF-8 SUBJECT budget", "* SORT 1 2"},
		{"SORT (DATE) UTF-8 2:4", "* SORT 4 3 2"},
		{`SORT (SUBJECT) "UTF-8" TEXT "not in mailbox"`, "* SORT"},
	} {
		imaptest.Expect(t, c.OK(tc.cmd), tc.want)
	}
	// Expunge 1: UID SORT answers UIDs, SORT the new sequence numbers.
	c.OK("STORE 1 +FLAGS (\\Deleted)")
	c.OK("EXPUNGE")
	imaptest.Expect(t, c.OK("UID SORT (SUBJECT) UTF-8 ALL"), "* SORT 5 3 4 2")
	imaptest.Expect(t, c.OK("SORT (SUBJECT) UTF-8 ALL"), "* SORT 4 2 3 1")

	for _, cmd := range []string{"SORT SUBJECT UTF-8 ALL", "SORT () UTF-8 ALL", "SORT (SUBJECT)", "SORT (SUBJECT) UTF-8",
		"SORT (FOO) UTF-8 ALL", "SORT (REVERSE) UTF-8 ALL", "SORT (SUBJECT) UTF-8 FOO", "SORT (SUBJECT) UTF-8 9"} {
		if u, done := c.Do(cmd); done.Status != "BAD" || len(u) != 0 {
			t.Errorf("%s: %s %s, want BAD", cmd, u, done)
		}
	}
	// Charsets but US-ASCII and UTF-8: NO [BADCHARSET] (rfc5256.txt:201-204,
	// rfc3501.txt:2771-2774).
	if u, done := c.Do("SORT (SUBJECT) ISO-8859-1 ALL"); done.Status != "NO" || done.CodeName() != "BADCHARSET" || len(u) != 0 {
		t.Errorf("SORT with ISO-8859-1: %s %s", u, done)
	}
}

// SORT and THREAD in a view (a saved query) sort its members.
func TestSortView(t *testing.T) {
	e := sortFixture(t)
	if _, err := e.st.DefineMailbox(context.Background(), e.user.ID, "Budget", "SUBJECT budget"); err != nil {
		t.Fatal(err)
	}
	c := e.dial()
	c.OK("SELECT Budget")
	imaptest.Expect(t, c.OK("SORT (DATE) UTF-8 ALL"), "* SORT 2 1")
	imaptest.Expect(t, c.OK("UID SORT (REVERSE ARRIVAL) UTF-8 ALL"), "* SORT 1 2")
	imaptest.Expect(t, c.OK("THREAD ORDEREDSUBJECT UTF-8 ALL"), "* THREAD (2 1)")
	imaptest.Expect(t, c.OK("THREAD REFERENCES UTF-8 ALL"), "* THREAD (2 1)")
}

// THREAD ORDEREDSUBJECT and REFERENCES (rfc5256.txt:360-379, 381-436).
func TestThread(t *testing.T) {
	e := newEnv(t)
	d := func(n int) string { return fmt.Sprintf("Thu, %d Jan 2026 10:00:00 +0000", n) }
	for _, m := range []sortMsg{
		/*1*/ {subject: "Plan", date: d(1), msgID: "<a@x>"},
		/*2*/ {subject: "Re: Plan", date: d(2), msgID: "<b@x>", refs: "<a@x>"},
		/*3*/ {subject: "Re: Plan", date: d(4), msgID: "<c@x>", refs: "<a@x> <b@x>"},
		/*4*/ {subject: "Re: Plan", date: d(3), msgID: "<d@x>", inReplyTo: "<a@x>"},
		// Siblings under a parent not in the mailbox: a dummy: "does not exist in the mailbox" (rfc5256.txt:746-750).
		/*5*/ {subject: "Lost", date: d(6), msgID: "<e@x>", refs: "<gone@x>"},
		/*6*/ {subject: "Re: Lost", date: d(5), msgID: "<f@x>", refs: `<"gone"@x>`},
		// Same base subject, no references: merged under the original.
		/*7*/ {subject: "Fwd: Plan", date: d(7), msgID: "<g@x>"},
		// A loop: 8 and 9 refer to each other. 8 made the dummy <i@x>
		// its parent, so 9 (<i@x>) cannot become 8's child
		// ("would introduce a loop", rfc5256.txt:490-493): 9 is the parent. 10 duplicates 1's
		// Message-ID: "only use that Message ID in the first" (rfc5256.txt:471-475).
		/*8*/ {subject: "Loop", date: d(8), msgID: "<h@x>", refs: "<i@x>"},
		/*9*/ {subject: "Loop two", date: d(9), msgID: "<i@x>", refs: "<h@x>"},
		/*10*/ {subject: "Dup", date: d(10), msgID: "<a@x>"},
	} {
		e.deliverSort("INBOX", m, store.Flags{})
	}
	c := e.dial()
	c.OK("SELECT INBOX")
	imaptest.Expect(t, c.OK("THREAD ORDEREDSUBJECT UTF-8 ALL"),
		"* THREAD (1 (2)(4)(3)(7))(6 5)(8)(9)(10)")
	imaptest.Expect(t, c.OK("THREAD REFERENCES UTF-8 ALL"),
		"* THREAD (1 (2 3)(4)(7))((6)(5))(9 8)(10)")
	imaptest.Expect(t, c.OK("UID THREAD REFERENCES UTF-8 2:5"), "* THREAD ((2 3)(4))(5)")
	imaptest.Expect(t, c.OK("THREAD REFERENCES UTF-8 SUBJECT nothing"), "* THREAD")
	for _, cmd := range []string{"THREAD FOO UTF-8 ALL", "THREAD (REFERENCES) UTF-8 ALL", "THREAD REFERENCES UTF-8"} {
		if u, done := c.Do(cmd); done.Status != "BAD" || len(u) != 0 {
			t.Errorf("%s: %s %s, want BAD", cmd, u, done)
		}
	}
	if _, done := c.Do("THREAD REFERENCES KOI8-R ALL"); done.Status != "NO" || done.CodeName() != "BADCHARSET" {
		t.Errorf("THREAD with KOI8-R: %s", done)
	}
}

// The off-switch (imapd_disable, imapd_disable:<user>): a disabled SORT or
// THREAD is not advertised and its commands are unknown (BAD).
func TestSortDisabled(t *testing.T) {
	e := sortFixture(t)
	caps := func(c *imaptest.TestClient) string {
		var s []string
		for _, r := range c.OK("CAPABILITY") {
			for _, tk := range r.Data {
				s = append(s, tk.S)
			}
		}
		return " " + strings.Join(s, " ") + " "
	}
	c := e.dial()
	if s := caps(c); !strings.Contains(s, " SORT ") || !strings.Contains(s, " THREAD=REFERENCES ") || !strings.Contains(s, " THREAD=ORDEREDSUBJECT ") {
		t.Errorf("capabilities %q lack SORT or THREAD", s)
	}
	for _, tc := range []struct {
		off     map[string]bool
		perUser bool
		gone    []string
		bad     []string
		ok      []string
	}{
		{off: map[string]bool{"SORT": true}, gone: []string{"SORT"}, bad: []string{"SORT (DATE) UTF-8 ALL", "UID SORT (DATE) UTF-8 ALL"},
			ok: []string{"THREAD REFERENCES UTF-8 ALL"}},
		{off: map[string]bool{"thread": true}, perUser: true, gone: []string{"THREAD=REFERENCES", "THREAD=ORDEREDSUBJECT"},
			bad: []string{"THREAD REFERENCES UTF-8 ALL", "UID THREAD ORDEREDSUBJECT UTF-8 ALL"}, ok: []string{"SORT (DATE) UTF-8 ALL"}},
		{off: map[string]bool{"THREAD=REFERENCES": true}, gone: []string{"THREAD=REFERENCES"},
			bad: []string{"THREAD REFERENCES UTF-8 ALL"}, ok: []string{"THREAD ORDEREDSUBJECT UTF-8 ALL"}},
	} {
		cfg := Config{Disabled: tc.off}
		if tc.perUser {
			cfg = Config{PerUserDisabled: func(string) map[string]bool { return tc.off }}
		}
		_, addr := e.serve(cfg)
		c := e.dialAddr(addr)
		c.OK("LOGIN u pw")
		s := caps(c)
		for _, g := range tc.gone {
			if strings.Contains(s, " "+g+" ") {
				t.Errorf("%v: %s still advertised: %s", tc.off, g, s)
			}
		}
		c.OK("SELECT INBOX")
		for _, cmd := range tc.bad {
			if _, done := c.Do(cmd); done.Status != "BAD" {
				t.Errorf("%v: %s: %s, want BAD", tc.off, cmd, done)
			}
		}
		for _, cmd := range tc.ok {
			c.OK(cmd)
		}
	}
}

// A COPY into a mailbox that already holds the message makes a new message
// row (store: duplicateMessages): it keeps the sort keys.
func TestSortCopyKeepsKeys(t *testing.T) {
	e := newEnv(t)
	e.deliverSort("INBOX", sortMsg{from: "zed@x.test", subject: "Re: beta"}, store.Flags{})
	e.deliverSort("INBOX", sortMsg{from: "amy@x.test", subject: "alpha"}, store.Flags{})
	c := e.dial()
	c.OK("SELECT INBOX")
	c.OK("COPY 1 INBOX")
	c.OK("NOOP")
	imaptest.Expect(t, c.OK("SORT (SUBJECT) UTF-8 ALL"), "* SORT 2 1 3")
	imaptest.Expect(t, c.OK("SORT (REVERSE FROM) UTF-8 ALL"), "* SORT 1 3 2")
}
