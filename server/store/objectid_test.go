package store_test

import (
	"regexp"
	"strconv"
	"testing"

	"decimail/server/store"
)

// Object ids tell a user nothing about other users (issue 13: EMAILID and
// MAILBOXID were the global row ids, so one user could watch another's
// delivery rate): they are keyed hashes, stable for the database (a second
// process gives the same id) and different in another database.
func TestObjectIDsRevealNothing(t *testing.T) {
	st, u := newStore(t)
	ids := st.ObjectIDs()
	re := regexp.MustCompile(`^[MET][A-Z2-7]{20}$`)
	seen := map[string]bool{}
	for n := int64(1); n <= 200; n++ {
		for _, id := range []string{ids.Mailbox(n), ids.Email(n), ids.Thread(n)} {
			if !re.MatchString(id) || id[1:] == strconv.FormatInt(n, 10) {
				t.Fatalf("object id %q for row %d", id, n)
			}
			if seen[id] {
				t.Fatalf("object id %q given twice", id)
			}
			seen[id] = true
		}
	}
	// Consecutive rows do not give ordered ids.
	ordered := 0
	for n := int64(1); n < 200; n++ {
		if ids.Mailbox(n) < ids.Mailbox(n+1) {
			ordered++
		}
	}
	if ordered < 60 || ordered > 140 {
		t.Errorf("%d of 199 consecutive MAILBOXIDs ascend: they follow the row ids", ordered)
	}
	other, err := store.Open(t.Context(), st.Pool().Config().ConnString(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	ib, err := st.Mailbox(t.Context(), u.ID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if a, b := ids.Mailbox(ib.ID), other.ObjectIDs().Mailbox(ib.ID); a != b {
		t.Errorf("INBOX's MAILBOXID is %s in one process and %s in another", a, b)
	}
	elsewhere, _ := newStore(t)
	if a, b := ids.Mailbox(ib.ID), elsewhere.ObjectIDs().Mailbox(ib.ID); a == b {
		t.Errorf("two databases give row %d the same MAILBOXID %s", ib.ID, a)
	}
}
