package imapd

import (
	"strings"
	"testing"

	"decimail/internal/imaptest"
	"decimail/server/store"
)

// ESORT and CONTEXT (RFC 5267): SORT's result options answered in sort
// order (MIN and MAX are the first and last sorted message; ALL keeps the
// order, with ranges only where numbers ascend); PARTIAL for SEARCH (in
// mailbox order) and SORT (in sort order); UPDATE accepted (its updates:
// ctxupdate_test.go).
func TestESort(t *testing.T) {
	e := newEnv(t)
	for i, n := range []int{300, 100, 400, 200} { // sizes of 1..4
		e.deliver("INBOX", sized(string(rune('a'+i)), n), store.Flags{})
	}
	c := e.dial()
	caps := c.OK("CAPABILITY")[0].String()
	for _, cp := range []string{" ESORT", " CONTEXT=SEARCH", " CONTEXT=SORT"} {
		if !strings.Contains(caps, cp) {
			t.Fatalf("capabilities lack %s: %s", cp, caps)
		}
	}
	c.OK("SELECT INBOX")
	do := func(cmd string, want ...string) {
		t.Helper()
		got, done := c.DoTag("x", cmd)
		name, _, _ := strings.Cut(cmd, " RETURN")
		imaptest.ExpectDone(t, done, "OK "+name+" completed")
		imaptest.Expect(t, got, want...)
	}
	do("SORT RETURN (MIN MAX COUNT ALL) (SIZE) UTF-8 ALL", `* ESEARCH (TAG "x") MIN 2 MAX 3 ALL 2,4,1,3 COUNT 4`)
	do("SORT RETURN () (REVERSE SIZE) UTF-8 ALL", `* ESEARCH (TAG "x") ALL 3,1,4,2`)
	do("SORT RETURN () (ARRIVAL) UTF-8 ALL", `* ESEARCH (TAG "x") ALL 1:4`)
	do("UID SORT RETURN (COUNT MAX) (SIZE) UTF-8 LARGER 150", `* ESEARCH (TAG "x") UID MAX 3 COUNT 3`)
	do("SORT RETURN (MIN MAX COUNT) (SIZE) UTF-8 LARGER 1000", `* ESEARCH (TAG "x") COUNT 0`)
	do("SORT RETURN (PARTIAL 2:3) (REVERSE SIZE) UTF-8 ALL", `* ESEARCH (TAG "x") PARTIAL (2:3 1,4)`)
	do("SEARCH RETURN (PARTIAL 3:2) ALL", `* ESEARCH (TAG "x") PARTIAL (2:3 2:3)`)
	do("UID SEARCH RETURN (PARTIAL 4:10 COUNT) ALL", `* ESEARCH (TAG "x") UID PARTIAL (4:10 4) COUNT 4`)
	do("SEARCH RETURN (PARTIAL 5:9) ALL", `* ESEARCH (TAG "x") PARTIAL (5:9 NIL)`)
	do("SEARCH RETURN (CONTEXT COUNT) ALL", `* ESEARCH (TAG "x") COUNT 4`)
	do("SEARCH RETURN (UPDATE COUNT) ALL", `* ESEARCH (TAG "x") COUNT 4`) // updates: ctxupdate_test.go
	c.OK(`CANCELUPDATE "x"`)
	do("SORT RETURN (UPDATE) (SIZE) UTF-8 ALL", `* ESEARCH (TAG "x")`) // UPDATE is an option: no ALL implied
	c.OK(`CANCELUPDATE "x"`)
	for _, cmd := range []string{
		"SEARCH RETURN (PARTIAL 1:2 ALL) ALL", "SEARCH RETURN (PARTIAL 0:2) ALL", "SEARCH RETURN (PARTIAL 1:*) ALL",
		"SEARCH RETURN (PARTIAL) ALL", "SORT RETURN (SAVE) (SIZE) UTF-8 ALL",
	} {
		if _, done := c.Do(cmd); done.Status != "BAD" {
			t.Errorf("%s: %s", cmd, done)
		}
	}
	imaptest.Expect(t, c.OK("SORT (SIZE) UTF-8 ALL"), `* SORT 2 4 1 3`) // without RETURN: as before

	_, addr := e.serve(Config{Disabled: map[string]bool{"ESORT": true}})
	d := e.dialAddr(addr)
	d.OK("LOGIN u pw")
	if caps := d.OK("CAPABILITY")[0].String(); strings.Contains(caps, "ESORT") || strings.Contains(caps, "CONTEXT=SORT") || !strings.Contains(caps, "CONTEXT=SEARCH") {
		t.Fatalf("ESORT switched off: %s", caps)
	}
	d.OK("SELECT INBOX")
	if _, done := d.Do("SORT RETURN () (SIZE) UTF-8 ALL"); done.Status != "BAD" {
		t.Fatalf("SORT RETURN with ESORT off: %s", done)
	}
	if _, done := d.Do("SEARCH RETURN (PARTIAL 1:2) ALL"); done.Status != "OK" {
		t.Fatalf("SEARCH PARTIAL with ESORT off: %s", done)
	}
}
