package imapd

import (
	"fmt"
	"regexp"
	"testing"

	"decimail/internal/imaptest"
	"decimail/server/store"
)

func TestCreateDeleteRenameErrors(t *testing.T) {
	e := newEnv(t)
	c := e.dial()
	for _, tc := range []struct{ cmd, want string }{
		{"CREATE INBOX", "NO [ALREADYEXISTS] INBOX always exists"},
		{"CREATE inbox", "NO [ALREADYEXISTS] INBOX always exists"},
		{"CREATE a/b/c", "OK [MAILBOXID (?)] CREATE completed"},
		{"CREATE a/b/c", "NO [ALREADYEXISTS] mailbox already exists"},
		{"CREATE a", "NO [ALREADYEXISTS] mailbox already exists"},
		{"CREATE Folder/", "OK [MAILBOXID (?)] CREATE completed"},
		{"CREATE Folder", "NO [ALREADYEXISTS] mailbox already exists"},
		{"CREATE bad//name", "NO [CANNOT] invalid mailbox name"},
		{`CREATE "x%"`, "NO [CANNOT] invalid mailbox name"},
		{`CREATE Tmpl (USE (\Drafts))`, "OK [MAILBOXID (?)] CREATE completed"},
		{`CREATE T2 (USE (\Bogus))`, `NO [USEATTR] unsupported special-use attribute \Bogus`},
		{"CREATE", "BAD syntax error: CREATE mailbox [(USE (attributes))]"},
		{"DELETE INBOX", "NO [CANNOT] INBOX cannot be deleted"},
		{"DELETE nosuch", "NO [NONEXISTENT] no such mailbox"},
		{"DELETE a", "NO [HASCHILDREN] mailbox has inferiors; delete them first"},
		{"DELETE a/b/c", "OK DELETE completed"},
		{"RENAME nosuch x", "NO [NONEXISTENT] no such mailbox"},
		{"RENAME a Folder", "NO [ALREADYEXISTS] target mailbox already exists"},
		{"RENAME a INBOX", "NO [ALREADYEXISTS] target mailbox already exists"},
		{"RENAME a a/b/z", "NO [CANNOT] cannot rename to that name"},
		{"RENAME a z/y", "OK RENAME completed"},
		{"RENAME Foo", "BAD syntax error: RENAME from to"},
		{"SUBSCRIBE nosuch", "OK SUBSCRIBE completed"},
		{"UNSUBSCRIBE never", "OK UNSUBSCRIBE completed"},
	} {
		// The text after a code is exact (no "*"): MatchStatus compares all of it.
		if _, done := c.Do(tc.cmd); !imaptest.MatchStatus(done, tc.want) || done.CodeName() == "MAILBOXID" && !mailboxIDRe.MatchString(done.Code[1].String()) {
			t.Errorf("%s: got %q, want %q", tc.cmd, done, tc.want)
		}
	}
	imaptest.Expect(t, c.OK(`LIST "" z*`),
		`* LIST (\HasChildren) "/" "z"`,
		`* LIST (\HasChildren) "/" "z/y"`,
		`* LIST (\HasNoChildren) "/" "z/y/b"`)
	imaptest.Expect(t, c.OK(`LIST "" Tmpl`), `* LIST (\HasNoChildren \Drafts) "/" "Tmpl"`)
}

// A recreated well-known folder gets its special use back, unless another
// mailbox has it.
func TestCreateDefaultSpecialUse(t *testing.T) {
	e := newEnv(t)
	c := e.dial()
	c.OK("DELETE Sent")
	c.OK("CREATE Sent")
	imaptest.Expect(t, c.OK(`LIST "" Sent`), `* LIST (\HasNoChildren \Sent) "/" "Sent"`)
	c.OK("RENAME Drafts Old")
	c.OK("CREATE Drafts")
	imaptest.Expect(t, c.OK(`LIST "" Drafts`), `* LIST (\HasNoChildren) "/" "Drafts"`)
}

// MAILBOXID survives RENAME (rfc8474.txt:175-179); RENAME INBOX moves messages.
func TestRenameKeepsMailboxID(t *testing.T) {
	e := newEnv(t)
	e.deliver("Archive", testMsg("one"), store.Flags{})
	c := e.dial()
	ar, _ := e.st.Mailbox(t.Context(), e.user.ID, "Archive")
	imaptest.Expect(t, c.OK("STATUS Archive (MAILBOXID MESSAGES)"), fmt.Sprintf(`* STATUS "Archive" (MAILBOXID (%s) MESSAGES 1)`, e.st.ObjectIDs().Mailbox(ar.ID)))
	c.OK("RENAME Archive Old/Archive")
	imaptest.Expect(t, c.OK("STATUS Old/Archive (MESSAGES MAILBOXID)"), fmt.Sprintf(`* STATUS "Old/Archive" (MESSAGES 1 MAILBOXID (%s))`, e.st.ObjectIDs().Mailbox(ar.ID)))
	_, done := c.Do("STATUS Archive (MESSAGES)")
	imaptest.ExpectDone(t, done, "NO [NONEXISTENT] no such mailbox")
	e.deliver("INBOX", testMsg("two"), store.Flags{})
	c.OK("RENAME inbox Moved")
	imaptest.Expect(t, c.OK("STATUS Moved (MESSAGES UIDNEXT)"), `* STATUS "Moved" (MESSAGES 1 UIDNEXT 2)`)
	imaptest.Expect(t, c.OK("STATUS INBOX (MESSAGES)"), `* STATUS "INBOX" (MESSAGES 0)`)
}

// mailboxIDRe is our MAILBOXID: "M" and 20 base32 characters of a keyed
// hash of the mailbox id (an objectid, rfc8474.txt:523).
var mailboxIDRe = regexp.MustCompile(`^\(M[A-Z2-7]{20}\)$`)
