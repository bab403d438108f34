package imapd

import (
	"fmt"
	"strings"
	"testing"

	"decimail/server/store"
)

func TestCreateDeleteRenameErrors(t *testing.T) {
	e := newEnv(t)
	c := e.dial()
	for _, tc := range []struct{ cmd, want string }{
		{"CREATE INBOX", "NO [ALREADYEXISTS] INBOX always exists"},
		{"CREATE inbox", "NO [ALREADYEXISTS] INBOX always exists"},
		{"CREATE a/b/c", "OK [MAILBOXID (M*)] CREATE completed"},
		{"CREATE a/b/c", "NO [ALREADYEXISTS] mailbox already exists"},
		{"CREATE a", "NO [ALREADYEXISTS] mailbox already exists"},
		{"CREATE Folder/", "OK [MAILBOXID (M*)] CREATE completed"},
		{"CREATE Folder", "NO [ALREADYEXISTS] mailbox already exists"},
		{"CREATE bad//name", "NO [CANNOT] invalid mailbox name"},
		{`CREATE "x%"`, "NO [CANNOT] invalid mailbox name"},
		{`CREATE Tmpl (USE (\Drafts))`, "OK [MAILBOXID (M*)] CREATE completed"},
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
		if _, st := c.do(tc.cmd); !statusMatch(st, tc.want) {
			t.Errorf("%s: got %q, want %q", tc.cmd, st, tc.want)
		}
	}
	expect(t, c.ok(`LIST "" z*`),
		`* LIST (\HasChildren) "/" "z"`,
		`* LIST (\HasChildren) "/" "z/y"`,
		`* LIST (\HasNoChildren) "/" "z/y/b"`)
	expect(t, c.ok(`LIST "" Tmpl`), `* LIST (\HasNoChildren \Drafts) "/" "Tmpl"`)
}

// A recreated well-known folder gets its special use back, unless another
// mailbox has it.
func TestCreateDefaultSpecialUse(t *testing.T) {
	e := newEnv(t)
	c := e.dial()
	c.ok("DELETE Sent")
	c.ok("CREATE Sent")
	expect(t, c.ok(`LIST "" Sent`), `* LIST (\HasNoChildren \Sent) "/" "Sent"`)
	c.ok("RENAME Drafts Old")
	c.ok("CREATE Drafts")
	expect(t, c.ok(`LIST "" Drafts`), `* LIST (\HasNoChildren) "/" "Drafts"`)
}

// MAILBOXID survives RENAME (rfc8474.txt:175-179); RENAME INBOX moves messages.
func TestRenameKeepsMailboxID(t *testing.T) {
	e := newEnv(t)
	e.deliver("Archive", testMsg("one"), store.Flags{})
	c := e.dial()
	ar, _ := e.st.Mailbox(t.Context(), e.user.ID, "Archive")
	expect(t, c.ok("STATUS Archive (MAILBOXID MESSAGES)"), fmt.Sprintf(`* STATUS "Archive" (MAILBOXID (M%d) MESSAGES 1)`, ar.ID))
	c.ok("RENAME Archive Old/Archive")
	expect(t, c.ok("STATUS Old/Archive (MESSAGES MAILBOXID)"), fmt.Sprintf(`* STATUS "Old/Archive" (MESSAGES 1 MAILBOXID (M%d))`, ar.ID))
	if _, st := c.do("STATUS Archive (MESSAGES)"); st != "NO [NONEXISTENT] no such mailbox" {
		t.Fatal(st)
	}
	e.deliver("INBOX", testMsg("two"), store.Flags{})
	c.ok("RENAME inbox Moved")
	expect(t, c.ok("STATUS Moved (MESSAGES UIDNEXT)"), `* STATUS "Moved" (MESSAGES 1 UIDNEXT 2)`)
	expect(t, c.ok("STATUS INBOX (MESSAGES)"), `* STATUS "INBOX" (MESSAGES 0)`)
}

// statusMatch compares a tagged status with want, where "*" in want stands
// for any run of digits (MAILBOXID values).
func statusMatch(got, want string) bool {
	pre, post, ok := strings.Cut(want, "*")
	if !ok {
		return got == want
	}
	if !strings.HasPrefix(got, pre) || !strings.HasSuffix(got, post) || len(got) <= len(pre)+len(post) {
		return false
	}
	return strings.Trim(got[len(pre):len(got)-len(post)], "0123456789") == ""
}
