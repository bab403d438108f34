package imapd

import (
	"testing"

	"decimail/internal/imaptest"
	"decimail/server/store"
)

// SEARCH / UID SEARCH RETURN (...) answer one ESEARCH response with the
// TAG correlator, UID for UID SEARCH, ALL as a compressed sequence-set, and
// no MIN/MAX/ALL when nothing matched (rfc4731.txt:94-151). searchFixture:
// seq 1-4 = UID 2-5; 1 \Seen, 2 \Flagged, 3 \Deleted, 4 none. Programs that
// read only flags are answered from the view, the others by the store:
// both paths are covered.
func TestESearch(t *testing.T) {
	e := searchFixture(t)
	c := e.dial()
	c.OK("SELECT INBOX")
	for _, tc := range []struct{ tag, cmd, want string }{
		{"a1", "SEARCH RETURN (MIN MAX COUNT ALL) ALL", `* ESEARCH (TAG "a1") MIN 1 MAX 4 ALL 1:4 COUNT 4`},
		{"a2", "UID SEARCH RETURN (MIN MAX COUNT ALL) ALL", `* ESEARCH (TAG "a2") UID MIN 2 MAX 5 ALL 2:5 COUNT 4`},
		{"a3", "SEARCH RETURN () UNSEEN", `* ESEARCH (TAG "a3") ALL 2:4`},
		{"a4", "SEARCH RETURN () NOT FLAGGED", `* ESEARCH (TAG "a4") ALL 1,3:4`},
		{"a5", "UID SEARCH RETURN (ALL) FROM alice", `* ESEARCH (TAG "a5") UID ALL 2,4`},
		{"a6", "SEARCH RETURN (COUNT) FROM nobody", `* ESEARCH (TAG "a6") COUNT 0`},
		{"a7", "SEARCH RETURN (MIN MAX ALL) FROM nobody", `* ESEARCH (TAG "a7")`},
		{"a8", "UID SEARCH RETURN (MIN) KEYWORD $Nothing", `* ESEARCH (TAG "a8") UID`},
		{"a9", "SEARCH RETURN (min) UNSEEN", `* ESEARCH (TAG "a9") MIN 2`},
		{"b1", "SEARCH RETURN (MAX) CHARSET UTF-8 SUBJECT budget", `* ESEARCH (TAG "b1") MAX 3`},
		{"b2", "SEARCH RETURN (COUNT MIN) 2:4 UNDELETED", `* ESEARCH (TAG "b2") MIN 2 COUNT 2`},
	} {
		u, done := c.DoTag(tc.tag, tc.cmd)
		if done.Status != "OK" {
			t.Errorf("%s: %s", tc.cmd, done)
		}
		imaptest.Expect(t, u, tc.want)
	}
	// Unknown options are BAD, "Any options not defined by extensions that the
	// server supports" (rfc9051.txt:3745-3746), as is a RETURN without a list.
	for _, cmd := range []string{"SEARCH RETURN (FOO) ALL", "SEARCH RETURN ALL", "SEARCH RETURN (MIN)", "UID SEARCH RETURN ((MIN)) ALL"} {
		if u, done := c.Do(cmd); done.Status != "BAD" || len(u) != 0 {
			t.Errorf("%s: %s %s, want BAD and nothing else", cmd, u, done)
		}
	}
	// A plain SEARCH still answers "* SEARCH".
	imaptest.Expect(t, c.OK("SEARCH UNSEEN"), "* SEARCH 2 3 4")
}

// The off-switch: without ESEARCH (imapd_disable) it is not advertised and
// RETURN is no search key (BAD); SEARCHRES goes with it.
func TestESearchDisabled(t *testing.T) {
	e := newEnv(t)
	e.deliver("INBOX", testMsg("one"), store.Flags{})
	_, addr := e.serve(Config{Disabled: map[string]bool{"ESEARCH": true}})
	c := e.dialAddr(addr)
	c.OK("LOGIN u pw")
	for _, r := range c.OK("CAPABILITY") {
		for _, tk := range r.Data {
			if tk.S == "ESEARCH" || tk.S == "SEARCHRES" {
				t.Errorf("advertised although disabled: %s", r)
			}
		}
	}
	c.OK("SELECT INBOX")
	for _, cmd := range []string{"SEARCH RETURN (ALL) ALL", "SEARCH RETURN (SAVE) ALL", "FETCH $ FLAGS"} {
		if _, done := c.Do(cmd); done.Status != "BAD" {
			t.Errorf("%s with ESEARCH off: %s", cmd, done)
		}
	}
	// Per user (imapd_disable:<user>) the same.
	_, addr = e.serve(Config{PerUserDisabled: func(string) map[string]bool { return map[string]bool{"esearch": true} }})
	c = e.dialAddr(addr)
	c.OK("LOGIN u pw")
	c.OK("SELECT INBOX")
	if _, done := c.Do("UID SEARCH RETURN () ALL"); done.Status != "BAD" {
		t.Errorf("UID SEARCH RETURN with ESEARCH off for the user: %s", done)
	}
}
