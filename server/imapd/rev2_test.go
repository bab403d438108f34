package imapd

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"decimail/internal/imaptest"
	"decimail/server/store"
)

// caps returns the CAPABILITY list the server sends now.
func caps(t *testing.T, c *imaptest.TestClient) []string {
	t.Helper()
	u := c.OK("CAPABILITY")
	if len(u) != 1 {
		t.Fatalf("CAPABILITY: %s", u)
	}
	var out []string
	for _, tk := range u[0].Data {
		out = append(out, tk.S)
	}
	return out
}

// Both revisions are advertised; ENABLE IMAP4rev2 lists it once, and the
// CAPABILITY list does not change (rfc9051.txt:1721ff).
func TestRev2Enable(t *testing.T) {
	e := newEnv(t)
	c := e.dialAddr(e.addr)
	before := c.OK("CAPABILITY")[0].String()
	if !strings.Contains(before, "IMAP4rev1 IMAP4rev2 ") {
		t.Fatalf("before login: %s", before)
	}
	c.OK("LOGIN u pw")
	all := caps(t, c)
	if !slices.Contains(all, "IMAP4rev1") || !slices.Contains(all, "IMAP4rev2") {
		t.Fatalf("CAPABILITY: %s", all)
	}
	imaptest.Expect(t, c.OK("ENABLE IMAP4rev2 FOO"), "* ENABLED IMAP4rev2")
	imaptest.Expect(t, c.OK("ENABLE imap4rev2"), "* ENABLED")
	if after := caps(t, c); !slices.Equal(after, all) {
		t.Errorf("CAPABILITY changed by ENABLE:\n%s\n%s", all, after)
	}
}

// selectINBOX is what SELECT INBOX sends an IMAP4rev2 session: no RECENT,
// no [UNSEEN], an untagged LIST.
func rev2SelectINBOX(t *testing.T, e *testEnv, uidnext int) []string {
	ib, _ := e.st.Mailbox(t.Context(), e.user.ID, "INBOX")
	return []string{
		`* FLAGS (\Answered \Flagged \Deleted \Seen \Draft)`,
		"* 2 EXISTS",
		`* LIST (\HasNoChildren) "/" "INBOX"`,
		`* OK [PERMANENTFLAGS (\Answered \Flagged \Deleted \Seen \Draft \*)] flags permitted`,
		fmt.Sprintf("* OK [UIDVALIDITY %d] UIDs valid", ib.UIDValidity),
		fmt.Sprintf("* OK [UIDNEXT %d] predicted next UID", uidnext),
		fmt.Sprintf("* OK [MAILBOXID (%s)] mailbox id", e.st.ObjectIDs().Mailbox(ib.ID)),
		fmt.Sprintf("* OK [HIGHESTMODSEQ %d] highest mod-sequence", hms(t, e, ib)),
	}
}

// After ENABLE IMAP4rev2 the session has no \Recent, answers SEARCH with
// ESEARCH, lists the mailbox at SELECT and puts the UID into unsolicited
// FETCH responses; an IMAP4rev1 session on the same mailbox keeps its
// responses.
func TestRev2Session(t *testing.T) {
	e := newEnv(t)
	e.deliver("INBOX", testMsg("one"), store.Flags{Seen: true})
	e.deliver("INBOX", testMsg("two"), store.Flags{})
	c := e.dial()
	c.OK("ENABLE IMAP4rev2")
	u, done := c.Do("SELECT INBOX")
	imaptest.Expect(t, u, rev2SelectINBOX(t, e, 3)...)
	imaptest.ExpectDone(t, done, "OK [READ-WRITE] SELECT completed")
	// The messages were recent to this session, which does not show it.
	imaptest.Expect(t, c.OK("FETCH 1:* FLAGS"), `* 1 FETCH (FLAGS (\Seen))`, `* 2 FETCH (FLAGS ())`)

	u, _ = c.DoTag("s1", "SEARCH ALL")
	imaptest.Expect(t, u, `* ESEARCH (TAG "s1") ALL 1:2`)
	u, _ = c.DoTag("s2", "UID SEARCH UNSEEN")
	imaptest.Expect(t, u, `* ESEARCH (TAG "s2") UID ALL 2`)
	u, _ = c.DoTag("s3", "SEARCH DELETED")
	imaptest.Expect(t, u, `* ESEARCH (TAG "s3")`)
	u, _ = c.DoTag("s4", "SEARCH RETURN (COUNT) ALL")
	imaptest.Expect(t, u, `* ESEARCH (TAG "s4") COUNT 2`)
	for _, cmd := range []string{"SEARCH RECENT", "SEARCH NOT NEW", "UID SEARCH OLD", "STATUS INBOX (MESSAGES RECENT)", "SORT (DATE) UTF-8 NEW", "THREAD REFERENCES UTF-8 RECENT"} {
		if u, done := c.Do(cmd); done.Status != "BAD" || len(u) != 0 {
			t.Errorf("%s: %s %s, want BAD (no RECENT in IMAP4rev2)", cmd, u, done)
		}
	}
	imaptest.Expect(t, c.OK("STATUS INBOX (MESSAGES DELETED)"), `* STATUS "INBOX" (MESSAGES 2 DELETED 0)`)

	// Changes of another session: EXISTS without RECENT, FETCH with UID.
	c1 := e.dial()
	c1.OK("SELECT INBOX")
	c1.OK("STORE 1 -FLAGS (\\Seen)")
	e.deliver("INBOX", testMsg("three"), store.Flags{})
	imaptest.Expect(t, c.OK("NOOP"), "* 3 EXISTS", `* 1 FETCH (UID 1 FLAGS ())`)
	imaptest.Expect(t, c.OK("FETCH 3 FLAGS"), `* 3 FETCH (FLAGS ())`)

	// Reselecting closes the mailbox with [CLOSED] first.
	u, _ = c.Do("EXAMINE INBOX")
	if len(u) == 0 || !imaptest.MatchStatus(u[0], "OK [CLOSED] *") {
		t.Fatalf("EXAMINE after SELECT: %s", u)
	}

	// The IMAP4rev1 session still gets "* SEARCH".
	c1.OK("NOOP")
	imaptest.Expect(t, c1.OK("SEARCH ALL"), "* SEARCH 1 2 3")
}

// SELECT of the IMAP4rev1 session: RECENT and [UNSEEN], no LIST (the
// rev2 session's SELECT above left the messages \Recent to nobody else).
func TestRev2LeavesRev1Select(t *testing.T) {
	e := newEnv(t)
	e.deliver("INBOX", testMsg("one"), store.Flags{Seen: true})
	e.deliver("INBOX", testMsg("two"), store.Flags{})
	c := e.dial()
	u := c.OK("SELECT INBOX")
	var got []string
	for _, r := range u {
		got = append(got, r.String())
	}
	s := strings.Join(got, "\n")
	if !strings.Contains(s, "2 RECENT") || !strings.Contains(s, "[UNSEEN 2]") || strings.Contains(s, "LIST") {
		t.Errorf("IMAP4rev1 SELECT changed:\n%s", s)
	}
	imaptest.Expect(t, c.OK("SEARCH ALL"), "* SEARCH 1 2")
}

// Mailbox names: UTF-8 both ways after ENABLE IMAP4rev2 (quoted strings
// may carry it), modified UTF-7 before and for other sessions; "&" is an
// ordinary character; a name that is not NFC cannot be created.
func TestRev2MailboxNames(t *testing.T) {
	e := newEnv(t)
	c := e.dial()
	c.OK("ENABLE IMAP4rev2")
	c.OK(`CREATE "Grüße"`)
	c.OK(`CREATE "R&D"`)
	raw := rawLines(t, c, `LIST "" "Gr*"`, `LIST "" "R*"`)
	want := []string{
		"* LIST (\\HasNoChildren) \"/\" \"Grüße\"\r\n",
		"* LIST (\\HasNoChildren) \"/\" \"R&D\"\r\n",
	}
	if !slices.Equal(raw, want) {
		t.Errorf("LIST of the IMAP4rev2 session:\n%q\nwant\n%q", raw, want)
	}
	imaptest.Expect(t, c.OK(`STATUS "Grüße" (MESSAGES)`), `* STATUS "Grüße" (MESSAGES 0)`)
	u := c.OK(`SELECT "R&D"`)
	imaptest.Expect(t, u[2:3], `* LIST (\HasNoChildren) "/" "R&D"`)
	// "u" and a combining diaeresis: not Net-Unicode (NFC).
	if _, done := c.Do("CREATE \"Gru\u0308\u00dfe2\""); !imaptest.MatchStatus(done, "NO [CANNOT] *") {
		t.Errorf("CREATE of a name not in NFC: %s", done)
	}
	if _, done := c.Do(`SELECT "Gr&APwA3w-e"`); !imaptest.MatchStatus(done, "NO [NONEXISTENT] *") {
		t.Errorf("SELECT of the modified UTF-7 form after ENABLE IMAP4rev2: %s", done)
	}

	c1 := e.dial()
	imaptest.Expect(t, c1.OK(`LIST "" ("Gr*" "R*")`),
		`* LIST (\HasNoChildren) "/" "Gr&APwA3w-e"`,
		`* LIST (\HasNoChildren) "/" "R&-D"`)
	c1.OK(`SELECT "Gr&APwA3w-e"`)
	// Before ENABLE the same session gets no UTF-8 quoted strings.
	c2 := e.dial()
	c2.OK(`CREATE "Grüße/Neu"`)
	raw = rawLines(t, c2, `LIST "" "Gr*"`)
	if len(raw) != 2 {
		t.Fatalf("LIST Gr*: %q", raw)
	}
	for _, r := range raw {
		if strings.ContainsFunc(r, func(r rune) bool { return r >= 0x80 }) {
			t.Errorf("8-bit LIST response before ENABLE IMAP4rev2: %q", r)
		}
	}
}

// LIST marks a name without a mailbox \NonExistent for IMAP4rev2 (the
// extended LIST's attribute), \Noselect for IMAP4rev1.
func TestRev2ListNonExistent(t *testing.T) {
	e := newEnv(t)
	if _, err := e.st.DefineMailbox(t.Context(), e.user.ID, "Views/Unread", "UNSEEN"); err != nil {
		t.Fatal(err)
	}
	c := e.dial()
	imaptest.Expect(t, c.OK(`LIST "" "V%"`), `* LIST (\Noselect \HasChildren) "/" "Views"`)
	c.OK("ENABLE IMAP4rev2")
	imaptest.Expect(t, c.OK(`LIST "" "V%"`), `* LIST (\NonExistent \HasChildren) "/" "Views"`)
}

// [CLOSED] comes with IMAP4rev2 also where CONDSTORE, which brings it for
// every session, is switched off.
func TestRev2ClosedWithoutCondstore(t *testing.T) {
	e := newEnv(t)
	_, addr := e.serve(Config{Disabled: map[string]bool{"CONDSTORE": true, "QUOTA": true}})
	c := e.dialAddr(addr)
	c.OK("LOGIN u pw")
	c.OK("ENABLE IMAP4rev2")
	c.OK("SELECT INBOX")
	u := c.OK("SELECT INBOX")
	if len(u) == 0 || !imaptest.MatchStatus(u[0], "OK [CLOSED] *") {
		t.Fatalf("reselect: %s", u)
	}
	// STATUS DELETED is IMAP4rev2's own: there without QUOTA.
	imaptest.Expect(t, c.OK("STATUS INBOX (DELETED)"), `* STATUS "INBOX" (DELETED 0)`)
	c1 := e.dialAddr(addr)
	c1.OK("LOGIN u pw")
	if _, done := c1.Do("STATUS INBOX (DELETED)"); done.Status != "BAD" {
		t.Errorf("STATUS DELETED without QUOTA nor IMAP4rev2: %s", done)
	}
}

// The off-switch: imapd_disable IMAP4rev2 (global or per user), or one of
// the extensions IMAP4rev2 folds in, or AUTH=PLAIN, takes IMAP4rev2 away; ENABLE then
// enables nothing and the session stays IMAP4rev1.
func TestRev2Disabled(t *testing.T) {
	e := newEnv(t)
	e.deliver("INBOX", testMsg("one"), store.Flags{})
	for _, cfg := range []Config{
		{Disabled: map[string]bool{"IMAP4REV2": true}},
		{PerUserDisabled: func(string) map[string]bool { return map[string]bool{"imap4rev2": true} }},
		{Disabled: map[string]bool{"ESEARCH": true}},
		{Disabled: map[string]bool{"AUTH=PLAIN": true}},
	} {
		_, addr := e.serve(cfg)
		c := e.dialAddr(addr)
		c.OK("LOGIN u pw")
		if all := caps(t, c); slices.Contains(all, "IMAP4rev2") || !slices.Contains(all, "IMAP4rev1") {
			t.Errorf("%v: CAPABILITY %s", cfg.Disabled, all)
		}
		imaptest.Expect(t, c.OK("ENABLE IMAP4rev2"), "* ENABLED")
		u := c.OK("SELECT INBOX")
		if s := fmt.Sprint(u); !strings.Contains(s, " RECENT") || strings.Contains(s, "LIST") {
			t.Errorf("%v: SELECT %s", cfg.Disabled, s)
		}
		imaptest.Expect(t, c.OK("SEARCH ALL"), "* SEARCH 1")
	}
}

// rawLines runs the commands and returns their untagged responses as sent.
func rawLines(t *testing.T, c *imaptest.TestClient, cmds ...string) []string {
	t.Helper()
	var raw []string
	for _, cmd := range cmds {
		if err := c.Stream(cmd, func(r *imaptest.Raw) { raw = append(raw, string(r.Bytes)) }); err != nil {
			t.Fatalf("%s: %v", cmd, err)
		}
	}
	return raw
}

// IMAP4rev2's number64 arguments (rfc9051.txt:6923-6939: "LARGER" SP
// number64; rfc9051.txt:6841: partial) are accepted: larger than any
// message matches none, a partial past the end of the part is empty; one
// past 63 bits is still BAD.
func TestNumber64Arguments(t *testing.T) {
	e := newEnv(t)
	e.deliver("INBOX", testMsg("one"), store.Flags{})
	c := e.dial()
	c.OK("ENABLE IMAP4rev2")
	c.OK("SELECT INBOX")
	u, _ := c.DoTag("s1", "UID SEARCH LARGER 9223372036854775807")
	imaptest.Expect(t, u, `* ESEARCH (TAG "s1") UID`)
	u, _ = c.DoTag("s2", "UID SEARCH SMALLER 4294967296")
	imaptest.Expect(t, u, `* ESEARCH (TAG "s2") UID ALL 1`)
	imaptest.Expect(t, c.OK("FETCH 1 BODY.PEEK[]<4294967296.8589934592>"), `* 1 FETCH (BODY[]<4294967296> "")`)
	for _, cmd := range []string{"UID SEARCH LARGER 9223372036854775808", "FETCH 1 BODY.PEEK[]<9223372036854775808.1>"} {
		if _, done := c.Do(cmd); done.Status != "BAD" {
			t.Errorf("%s: %s, want BAD", cmd, done)
		}
	}
}
