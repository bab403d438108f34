package imapd

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"decimail/internal/imaptest"
	"decimail/server/store"
)

// listEnv is a user with a small tree; default folders other than INBOX
// are removed so expectations stay short. Subscribed: Archive,
// Archive/2025, Work/Projects, and Gone (no mailbox).
func listEnv(t *testing.T) (*testEnv, *imaptest.TestClient) {
	e := newEnv(t)
	ctx := context.Background()
	mbs, err := e.st.Mailboxes(ctx, e.user.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range mbs {
		if m.Name != "INBOX" {
			if err := e.st.DeleteMailbox(ctx, e.user.ID, m.Name); err != nil {
				t.Fatal(err)
			}
			e.st.Unsubscribe(ctx, e.user.ID, m.Name)
		}
	}
	e.st.Unsubscribe(ctx, e.user.ID, "INBOX")
	c := e.dial()
	for _, n := range []string{"Archive/2024", "Archive/2025", "Work/Projects/Decimail", `"Sent Items" (USE (\Sent))`} {
		c.OK("CREATE " + n)
	}
	for _, n := range []string{"Archive/2024", "Archive/2025", "Work", "Work/Projects", "Work/Projects/Decimail", `"Sent Items"`} {
		c.OK("UNSUBSCRIBE " + n)
	}
	c.OK("SUBSCRIBE Gone")
	c.OK("SUBSCRIBE Archive")
	c.OK("SUBSCRIBE Archive/2025")
	c.OK("SUBSCRIBE Work/Projects")
	return e, c
}

func TestListPatterns(t *testing.T) {
	_, c := listEnv(t)
	for _, tc := range []struct {
		cmd  string
		want []string
	}{
		{`LIST "" ""`, []string{`* LIST (\Noselect) "/" ""`}},
		{`LIST "Archive/2025" ""`, []string{`* LIST (\Noselect) "/" "Archive/"`}},
		{`LIST "" *`, []string{
			`* LIST (\HasNoChildren) "/" "INBOX"`,
			`* LIST (\HasChildren) "/" "Archive"`,
			`* LIST (\HasNoChildren) "/" "Archive/2024"`,
			`* LIST (\HasNoChildren) "/" "Archive/2025"`,
			`* LIST (\HasNoChildren \Sent) "/" "Sent Items"`,
			`* LIST (\HasChildren) "/" "Work"`,
			`* LIST (\HasChildren) "/" "Work/Projects"`,
			`* LIST (\HasNoChildren) "/" "Work/Projects/Decimail"`}},
		{`LIST "" %`, []string{
			`* LIST (\HasNoChildren) "/" "INBOX"`,
			`* LIST (\HasChildren) "/" "Archive"`,
			`* LIST (\HasNoChildren \Sent) "/" "Sent Items"`,
			`* LIST (\HasChildren) "/" "Work"`}},
		{`LIST "" Archive/%`, []string{
			`* LIST (\HasNoChildren) "/" "Archive/2024"`,
			`* LIST (\HasNoChildren) "/" "Archive/2025"`}},
		{`LIST Archive/ %`, []string{
			`* LIST (\HasNoChildren) "/" "Archive/2024"`,
			`* LIST (\HasNoChildren) "/" "Archive/2025"`}},
		{`LIST Archive /%`, []string{
			`* LIST (\HasNoChildren) "/" "Archive/2024"`,
			`* LIST (\HasNoChildren) "/" "Archive/2025"`}},
		{`LIST "" %/%`, []string{
			`* LIST (\HasNoChildren) "/" "Archive/2024"`,
			`* LIST (\HasNoChildren) "/" "Archive/2025"`,
			`* LIST (\HasChildren) "/" "Work/Projects"`}},
		{`LIST "" Work/%/%`, []string{`* LIST (\HasNoChildren) "/" "Work/Projects/Decimail"`}},
		{`LIST "" Work/%/Decimail`, []string{`* LIST (\HasNoChildren) "/" "Work/Projects/Decimail"`}},
		{`LIST "" Work/*`, []string{
			`* LIST (\HasChildren) "/" "Work/Projects"`,
			`* LIST (\HasNoChildren) "/" "Work/Projects/Decimail"`}},
		{`LIST "" *2*`, []string{
			`* LIST (\HasNoChildren) "/" "Archive/2024"`,
			`* LIST (\HasNoChildren) "/" "Archive/2025"`}},
		{`LIST "" *4`, []string{`* LIST (\HasNoChildren) "/" "Archive/2024"`}},
		{`LIST "" inbox`, []string{`* LIST (\HasNoChildren) "/" "INBOX"`}},
		{`LIST "" InBo%`, []string{`* LIST (\HasNoChildren) "/" "INBOX"`}},
		{`LIST "INBOX" *`, []string{`* LIST (\HasNoChildren) "/" "INBOX"`}},
		{`LIST "" archive`, nil},
		{`LIST "" NoSuch*`, nil},
		{`LIST "" {9+}` + "\r\nArchive/%", []string{
			`* LIST (\HasNoChildren) "/" "Archive/2024"`,
			`* LIST (\HasNoChildren) "/" "Archive/2025"`}},
	} {
		u, done := c.Do(tc.cmd)
		imaptest.ExpectDone(t, done, "OK LIST completed")
		t.Run(tc.cmd, func(t *testing.T) { imaptest.Expect(t, u, tc.want...) })
	}
	for _, bad := range []string{`LIST ""`, `LIST "" * extra`, `LIST (FOO) "" *`, `LIST (RECURSIVEMATCH) "" *`,
		`LIST "" * RETURN (FOO)`, `LIST "" * RETURN (STATUS (FROBS))`} {
		if _, done := c.Do(bad); done.Status != "BAD" {
			t.Errorf("%s: %s", bad, done)
		}
	}
}

func TestListLsub(t *testing.T) {
	_, c := listEnv(t)
	imaptest.Expect(t, c.OK(`LSUB "" *`),
		`* LSUB () "/" "Archive"`,
		`* LSUB () "/" "Archive/2025"`,
		`* LSUB (\Noselect) "/" "Gone"`,
		`* LSUB () "/" "Work/Projects"`)
	// rfc3501.txt:2394-2398: with %, an unsubscribed parent of a subscribed
	// name is returned \Noselect instead of the name.
	imaptest.Expect(t, c.OK(`LSUB "" %`),
		`* LSUB () "/" "Archive"`,
		`* LSUB (\Noselect) "/" "Gone"`,
		`* LSUB (\Noselect) "/" "Work"`)
	c.OK("UNSUBSCRIBE Archive")
	c.OK("UNSUBSCRIBE Archive") // not subscribed: still OK ("or if the mailbox is not subscribed", rfc9051.txt:2216)
	imaptest.Expect(t, c.OK(`LSUB "" Archive*`), `* LSUB () "/" "Archive/2025"`)
	imaptest.Expect(t, c.OK(`LSUB "" Archive/*`), `* LSUB () "/" "Archive/2025"`)
	// A subscription survives DELETE (rfc3501.txt:2400: "MUST NOT unilaterally
	// remove an existing mailbox name from the subscription list").
	c.OK("DELETE Archive/2025")
	imaptest.Expect(t, c.OK(`LSUB "" Archive/*`), `* LSUB (\Noselect) "/" "Archive/2025"`)
}

func TestListExtended(t *testing.T) {
	_, c := listEnv(t)
	// Thunderbird asks for the SUBSCRIBED selection option ("causes the LIST
	// command to list subscribed names", rfc5258.txt:350) and the SPECIAL-USE
	// return option ("specifies the SPECIAL-USE return option", rfc6154.txt:163).
	imaptest.Expect(t, c.OK(`list (subscribed) "" "*" return (special-use)`),
		`* LIST (\Subscribed \HasChildren) "/" "Archive"`,
		`* LIST (\Subscribed \HasNoChildren) "/" "Archive/2025"`,
		`* LIST (\NonExistent \Subscribed) "/" "Gone"`,
		`* LIST (\Subscribed \HasChildren) "/" "Work/Projects"`)
	imaptest.Expect(t, c.OK(`list "" "INBOX"`), `* LIST (\HasNoChildren) "/" "INBOX"`)
	imaptest.Expect(t, c.OK(`LIST (SPECIAL-USE) "" *`), `* LIST (\HasNoChildren \Sent) "/" "Sent Items"`)
	imaptest.Expect(t, c.OK(`LIST "" % RETURN (SUBSCRIBED CHILDREN)`),
		`* LIST (\HasNoChildren) "/" "INBOX"`,
		`* LIST (\Subscribed \HasChildren) "/" "Archive"`,
		`* LIST (\HasNoChildren \Sent) "/" "Sent Items"`,
		`* LIST (\HasChildren) "/" "Work"`)
	imaptest.Expect(t, c.OK(`LIST "" ("INBOX" "Sent Items" "Work/%")`),
		`* LIST (\HasNoChildren) "/" "INBOX"`,
		`* LIST (\HasNoChildren \Sent) "/" "Sent Items"`,
		`* LIST (\HasChildren) "/" "Work/Projects"`)
	// RECURSIVEMATCH: Work is not subscribed but Work/Projects is and "%"
	// does not reach it: CHILDINFO (RFC 5258 §3.5, rfc5258.txt:521ff, example 9).
	imaptest.Expect(t, c.OK(`LIST (SUBSCRIBED RECURSIVEMATCH) "" %`),
		`* LIST (\Subscribed \HasChildren) "/" "Archive" ("CHILDINFO" ("SUBSCRIBED"))`,
		`* LIST (\NonExistent \Subscribed) "/" "Gone"`,
		`* LIST (\HasChildren) "/" "Work" ("CHILDINFO" ("SUBSCRIBED"))`)
	imaptest.Expect(t, c.OK(`LIST (SUBSCRIBED RECURSIVEMATCH) "" *`),
		`* LIST (\Subscribed \HasChildren) "/" "Archive"`,
		`* LIST (\Subscribed \HasNoChildren) "/" "Archive/2025"`,
		`* LIST (\NonExistent \Subscribed) "/" "Gone"`,
		`* LIST (\Subscribed \HasChildren) "/" "Work/Projects"`)
}

func TestListStatus(t *testing.T) {
	e, c := listEnv(t)
	e.deliver("Archive/2025", testMsg("a"), store.Flags{Seen: true})
	e.deliver("Archive/2025", testMsg("b"), store.Flags{})
	ar, _ := e.st.Mailbox(t.Context(), e.user.ID, "Archive/2025")
	// rfc5819.txt:110-122: STATUS after the LIST of each selectable match ("MUST
	// return an untagged LIST response followed by an untagged STATUS response").
	imaptest.Expect(t, c.OK(`LIST "" Archive/% RETURN (STATUS (MESSAGES UNSEEN UIDNEXT MAILBOXID))`),
		`* LIST (\HasNoChildren) "/" "Archive/2024"`,
		fmt.Sprintf(`* STATUS "Archive/2024" (MESSAGES 0 UNSEEN 0 UIDNEXT 1 MAILBOXID (%s))`, e.st.ObjectIDs().Mailbox(ar.ID-1)),
		`* LIST (\HasNoChildren) "/" "Archive/2025"`,
		fmt.Sprintf(`* STATUS "Archive/2025" (MESSAGES 2 UNSEEN 1 UIDNEXT 3 MAILBOXID (%s))`, e.st.ObjectIDs().Mailbox(ar.ID)))
	// A nonexistent subscribed name gets no STATUS.
	imaptest.Expect(t, c.OK(`LIST (SUBSCRIBED) "" G* RETURN (STATUS (MESSAGES))`), `* LIST (\NonExistent \Subscribed) "/" "Gone"`)
}

// Names travel in modified UTF-7 both ways (rfc3501.txt:1045).
func TestListModifiedUTF7(t *testing.T) {
	e, c := listEnv(t)
	c.OK(`CREATE "Entw&APw-rfe"`)
	imaptest.Expect(t, c.OK(`LIST "" Entw*`), `* LIST (\HasNoChildren) "/" "Entw&APw-rfe"`)
	if _, err := e.st.Mailbox(t.Context(), e.user.ID, "Entwürfe"); err != nil {
		t.Fatal(err)
	}
	imaptest.Expect(t, c.OK(`STATUS "Entw&APw-rfe" (MESSAGES)`), `* STATUS "Entw&APw-rfe" (MESSAGES 0)`)
}

func TestListMatch(t *testing.T) {
	for _, tc := range []struct {
		pat, name string
		ok        bool
	}{
		{"*", "a/b/c", true}, {"%", "a/b", false}, {"%", "a", true}, {"a/%", "a/b", true}, {"a/%", "a/b/c", false},
		{"a%c", "abc", true}, {"a%c", "a/c", false}, {"a*c", "a/c", true}, {"", "", true}, {"a", "", false},
		{"inbox", "INBOX", true}, {"inbox/Sub", "INBOX/Sub", true}, {"inbox/sub", "INBOX/Sub", false},
		{"inbox", "inbox2", false}, {"%%", "ab", true}, {"*%*", "a/b", true}, {"**x", "yyx", true},
	} {
		if got := listMatch(tc.pat, tc.name); got != tc.ok {
			t.Errorf("listMatch(%q, %q) = %v", tc.pat, tc.name, got)
		}
	}
}

// BenchmarkListStatus200: 200 mailboxes (half query mailboxes), LIST-STATUS
// in one command versus LIST + 200 STATUS.
func BenchmarkListStatus200(b *testing.B) {
	e := newEnv(b)
	ctx := context.Background()
	for i := range 100 {
		name := fmt.Sprintf("F/%03d", i)
		if _, err := e.st.CreateMailbox(ctx, e.user.ID, name, "", ""); err != nil {
			b.Fatal(err)
		}
		for j := range 3 {
			e.deliver(name, testMsg(fmt.Sprint("m", i, "-", j)), store.Flags{Seen: j == 0, Flagged: j == 1})
		}
		if _, err := e.st.DefineMailbox(ctx, e.user.ID, fmt.Sprintf("Q/%03d", i), "FLAGGED"); err != nil {
			b.Fatal(err)
		}
	}
	c := e.dial()
	names := []string{}
	for _, r := range c.OK(`LIST "" *`) {
		// * LIST (attributes) "/" name
		if len(r.Data) != 4 || slices.ContainsFunc(r.Data[1].L, func(a imaptest.Tok) bool { return strings.EqualFold(a.S, `\Noselect`) }) {
			continue
		}
		names = append(names, imaptest.Quote(r.Data[3].S))
	}
	b.Run("store-mailboxes", func(b *testing.B) {
		for b.Loop() {
			if _, err := e.st.Mailboxes(ctx, e.user.ID); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("list-status", func(b *testing.B) {
		for b.Loop() {
			c.OK(`LIST "" "*" RETURN (STATUS (MESSAGES UNSEEN UIDNEXT))`)
		}
	})
	b.Run("list+status", func(b *testing.B) {
		for b.Loop() {
			c.OK(`LIST "" "*"`)
			for _, n := range names {
				c.OK("STATUS " + n + " (MESSAGES UNSEEN UIDNEXT)")
			}
		}
	})
}
