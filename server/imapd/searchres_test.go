package imapd

import (
	"testing"

	"decimail/internal/imaptest"
	"decimail/server/store"
)

// SEARCH RETURN (SAVE) and "$" (RFC 9051 §6.4.4.1, SEARCHRES). searchFixture:
// seq 1-4 = UID 2-5; 1 \Seen, 2 \Flagged, 3 \Deleted, 4 none.
func TestSearchRes(t *testing.T) {
	e := searchFixture(t)
	c := e.dial()
	// No mailbox selected: SEARCH is not valid, "$" neither.
	if _, done := c.Do("FETCH $ FLAGS"); done.Status != "BAD" {
		t.Fatalf("FETCH $ unselected: %s", done)
	}
	c.OK("SELECT INBOX")
	// A fresh selection: "$" is empty, a "valid, but non-matching, list of
	// messages" (rfc9051.txt:4076-4080).
	imaptest.Expect(t, c.OK("FETCH $ FLAGS"))
	// SAVE alone: no ESEARCH response (rfc9051.txt:3800-3802).
	imaptest.Expect(t, c.OK("SEARCH RETURN (SAVE) UNSEEN"))
	imaptest.Expect(t, c.OK("FETCH $ (UID)"), "* 2 FETCH (UID 3)", "* 3 FETCH (UID 4)", "* 4 FETCH (UID 5)")
	// "$" from a SEARCH used by UID commands: the same messages (rfc9051.txt:4120-4129).
	imaptest.Expect(t, c.OK("UID FETCH $ (UID)"), "* 2 FETCH (UID 3)", "* 3 FETCH (UID 4)", "* 4 FETCH (UID 5)")
	imaptest.Expect(t, c.OK("SEARCH $ FROM alice"), "* SEARCH 3")
	imaptest.Expect(t, c.OK("UID SEARCH UID $ NOT DELETED"), "* SEARCH 3 5")
	imaptest.Expect(t, c.OK("SEARCH OR $ 1"), "* SEARCH 1 2 3 4")
	imaptest.Expect(t, c.OK("SEARCH NOT $"), "* SEARCH 1")
	// "$" is the whole set: "$,1" is no sequence-set.
	for _, cmd := range []string{"FETCH $,1 FLAGS", "FETCH 1,$ FLAGS", "SEARCH $:2", "SEARCH RETURN (SAVE FOO) ALL"} {
		if _, done := c.Do(cmd); done.Status != "BAD" {
			t.Errorf("%s: %s, want BAD", cmd, done)
		}
	}
	// A BAD SEARCH "MUST NOT change the search result variable"
	// (rfc9051.txt:4051-4060).
	imaptest.Expect(t, c.OK("FETCH $ (UID)"), "* 2 FETCH (UID 3)", "* 3 FETCH (UID 4)", "* 4 FETCH (UID 5)")
	// UID SEARCH SAVE with MIN MAX: "$" is those two (rfc9051.txt:4091-4094).
	imaptest.Expect(t, okTag(t, c, "s1", "UID SEARCH RETURN (SAVE MIN MAX) ALL"), `* ESEARCH (TAG "s1") UID MIN 2 MAX 5`)
	imaptest.Expect(t, c.OK("FETCH $ (UID)"), "* 1 FETCH (UID 2)", "* 4 FETCH (UID 5)")
	// SAVE MIN: one message; SAVE with COUNT: all of them.
	imaptest.Expect(t, okTag(t, c, "s2", "SEARCH RETURN (MIN SAVE) UNDELETED"), `* ESEARCH (TAG "s2") MIN 1`)
	imaptest.Expect(t, c.OK("FETCH $ (UID)"), "* 1 FETCH (UID 2)")
	imaptest.Expect(t, okTag(t, c, "s3", "SEARCH RETURN (SAVE MAX COUNT) UNDELETED"), `* ESEARCH (TAG "s3") MAX 4 COUNT 3`)
	imaptest.Expect(t, c.OK("UID FETCH $ (UID)"), "* 1 FETCH (UID 2)", "* 2 FETCH (UID 3)", "* 4 FETCH (UID 5)")
	// STORE and COPY take "$" too.
	imaptest.Expect(t, c.OK("STORE $ +FLAGS (\\Answered)"),
		`* 1 FETCH (FLAGS (\Seen \Answered \Recent))`, `* 2 FETCH (FLAGS (\Flagged \Answered \Recent))`, `* 4 FETCH (FLAGS (\Answered \Recent))`)
	c.OK("CREATE Other")
	imaptest.Expect(t, c.OK("COPY $ Other"))
	// A SAVE that caused the server "to return the NO tagged response"
	// empties "$" (rfc9051.txt:4062-4064).
	if _, done := c.Do("SEARCH RETURN (SAVE) CHARSET KOI8-R ALL"); done.Status != "NO" {
		t.Fatalf("BADCHARSET: %s", done)
	}
	imaptest.Expect(t, c.OK("FETCH $ FLAGS"))
	// An expunged message "is automatically removed from the list"
	// (rfc9051.txt:4066-4070); after SELECT or EXAMINE "the current search
	// result variable is reset" (rfc9051.txt:4042-4044).
	c.OK("SEARCH RETURN (SAVE) ALL")
	imaptest.Expect(t, c.OK("EXPUNGE"), "* 3 EXPUNGE")
	imaptest.Expect(t, c.OK("UID FETCH $ (UID)"), "* 1 FETCH (UID 2)", "* 2 FETCH (UID 3)", "* 3 FETCH (UID 5)")
	c.OK("EXAMINE INBOX")
	imaptest.Expect(t, c.OK("UID FETCH $ (UID)"))
	imaptest.Expect(t, c.OK("SEARCH $"), "* SEARCH")
}

// Commands pipelined after a SEARCH RETURN (SAVE) see its result
// (rfc9051.txt:4133-4141, Example 7): they run in order.
func TestSearchResPipelined(t *testing.T) {
	e := newEnv(t)
	for range 3 {
		e.deliver("INBOX", testMsg("junk"), store.Flags{Keywords: []string{"$Junk"}})
		e.deliver("INBOX", testMsg("ham"), store.Flags{})
	}
	c := e.dial()
	c.OK("SELECT INBOX")
	var uv string
	for _, r := range c.OK("STATUS Junk (UIDVALIDITY)") {
		uv = r.Attrs()["UIDVALIDITY"].S
	}
	c.Send("F282 SEARCH RETURN (SAVE) KEYWORD $Junk\r\nF283 MOVE $ Junk\r\nF284 UID SEARCH RETURN () $")
	u, done := c.Until("F284")
	imaptest.ExpectDone(t, done, "OK UID SEARCH completed")
	imaptest.Expect(t, u, "F282 OK SEARCH completed", "* OK [COPYUID "+uv+" 1,3,5 1:3] moved", "* 1 EXPUNGE", "* 2 EXPUNGE",
		"* 3 EXPUNGE", "F283 OK MOVE completed", `* ESEARCH (TAG "F284") UID`)
}

// okTag runs a command with the given tag that must succeed.
func okTag(t *testing.T, c *imaptest.TestClient, tag, cmd string) []*imaptest.Resp {
	t.Helper()
	u, done := c.DoTag(tag, cmd)
	if done.Status != "OK" {
		t.Fatalf("%s: %s", cmd, done)
	}
	return u
}
