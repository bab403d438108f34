package imapd

import (
	"context"
	"strings"
	"testing"
	"time"

	"decimail/internal/imaptest"
	"decimail/server/store"
)

// SAVEDATE (RFC 8514): the save date is when the message entered the
// mailbox, not its internal date, shown in UTC; a COPY gets its own
// (rfc8514.txt:142-152) and the source's does not change. A view's save
// date is when the message came to match it: a message flagged today
// enters Flagged today, whatever its INBOX save date. SEARCH SAVED* compares
// days in UTC.
func TestSaveDate(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.deliver("INBOX", testMsg("a"), store.Flags{}) // internal date 2-Nov-2026
	e.deliver("INBOX", testMsg("b"), store.Flags{})
	// Pretend both were saved in INBOX on 5 January 2020.
	if _, err := e.st.Pool().Exec(ctx, `UPDATE mailbox_messages mm SET saved_at = '2020-01-05 23:30:00+00'
		FROM mailboxes b WHERE b.id = mm.mailbox_id AND b.name = 'INBOX'`); err != nil {
		t.Fatal(err)
	}
	c := e.dial()
	if caps := c.OK("CAPABILITY")[0].String(); !strings.Contains(caps, " SAVEDATE") {
		t.Fatalf("capabilities: %s", caps)
	}
	c.OK("SELECT INBOX")
	imaptest.Expect(t, c.OK("FETCH 1 (SAVEDATE INTERNALDATE)"),
		`* 1 FETCH (SAVEDATE "05-Jan-2020 23:30:00 +0000" INTERNALDATE "02-Nov-2026 10:00:00 +0000")`)
	imaptest.Expect(t, c.OK("SEARCH SAVEDON 5-Jan-2020"), `* SEARCH 1 2`)
	imaptest.Expect(t, c.OK("SEARCH SAVEDBEFORE 6-Jan-2020"), `* SEARCH 1 2`)
	imaptest.Expect(t, c.OK("SEARCH SAVEDBEFORE 5-Jan-2020"), `* SEARCH`)
	imaptest.Expect(t, c.OK("SEARCH SAVEDSINCE 6-Jan-2020"), `* SEARCH`)
	imaptest.Expect(t, c.OK("SEARCH SAVEDATESUPPORTED NOT SAVEDSINCE 1-Jan-2021"), `* SEARCH 1 2`)
	imaptest.Expect(t, c.OK("SEARCH ON 2-Nov-2026"), `* SEARCH 1 2`) // the internal date is another

	today := time.Now().UTC().Format("02-Jan-2006")
	defer func() { // (unless the test ran across midnight)
		if t.Failed() && time.Now().UTC().Format("02-Jan-2006") != today {
			t.Skip("ran across midnight UTC")
		}
	}()
	c.OK("COPY 1 Archive")
	c.OK(`STORE 2 +FLAGS.SILENT (\Flagged)`)
	imaptest.Expect(t, c.OK("FETCH 1 (SAVEDATE)"), `* 1 FETCH (SAVEDATE "05-Jan-2020 23:30:00 +0000")`) // unchanged in the source
	for _, box := range []string{"Archive", "Flagged"} {
		c.OK("SELECT " + box)
		got := c.OK("FETCH 1 (SAVEDATE)")[0].String()
		if !strings.Contains(got, `SAVEDATE "`+today+" ") {
			t.Errorf("%s: %s, want a save date of today (%s)", box, got, today)
		}
		imaptest.Expect(t, c.OK("SEARCH SAVEDSINCE "+today), `* SEARCH 1`)
		imaptest.Expect(t, c.OK("SEARCH SAVEDON 5-Jan-2020"), `* SEARCH`)
	}
}

// Switched off, SAVEDATE's FETCH item and SEARCH keys are BAD.
func TestSaveDateDisabled(t *testing.T) {
	e := newEnv(t)
	e.deliver("INBOX", testMsg("a"), store.Flags{})
	_, addr := e.serve(Config{Disabled: map[string]bool{"SAVEDATE": true}})
	c := e.dialAddr(addr)
	c.OK("LOGIN u pw")
	if caps := c.OK("CAPABILITY")[0].String(); strings.Contains(caps, "SAVEDATE") {
		t.Fatalf("SAVEDATE advertised though switched off: %s", caps)
	}
	c.OK("SELECT INBOX")
	for _, cmd := range []string{"FETCH 1 (SAVEDATE)", "SEARCH SAVEDON 1-Jan-2020", "SEARCH SAVEDATESUPPORTED", "SORT (DATE) UTF-8 SAVEDATESUPPORTED"} {
		if _, done := c.Do(cmd); done.Status != "BAD" {
			t.Fatalf("%s switched off: %s", cmd, done)
		}
	}
}
