package imapd

import (
	"context"
	"errors"
	"strings"
	"testing"

	"decimail/internal/imaptest"
	"decimail/server/store"
)

// sized is a message of exactly n octets.
func sized(subject string, n int) string {
	m := "Subject: " + subject + "\r\n\r\n"
	return m + strings.Repeat("x", n-len(m)-2) + "\r\n"
}

// QUOTA (RFC 9208): one root "" per user; usage counts each stored message
// once. A message that brings usage exactly to the limit is taken, the next
// octet is refused with NO [OVERQUOTA]; COPY into another folder stores
// nothing (membership) and is allowed at the limit, a COPY that really
// copies (into a folder holding the message) is refused; EXPUNGE frees room.
func TestQuotaStorage(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if err := e.st.SetUserSetting(ctx, "u", store.QuotaStorageKey, "2"); err != nil {
		t.Fatal(err)
	}
	c := e.dial()
	if caps := c.OK("CAPABILITY")[0].String(); !strings.Contains(caps, " QUOTA QUOTA=RES-STORAGE QUOTA=RES-MESSAGE") || strings.Contains(caps, "QUOTASET") {
		t.Fatalf("capabilities: %s", caps)
	}
	imaptest.Expect(t, c.OK(`GETQUOTA ""`), `* QUOTA "" (STORAGE 0 2)`)
	c.OK(appendCmd("INBOX", "", sized("one", 1024)))
	imaptest.Expect(t, c.OK(`GETQUOTA ""`), `* QUOTA "" (STORAGE 1 2)`)
	c.OK(appendCmd("INBOX", "", sized("two", 1024))) // exactly at the limit: taken
	imaptest.Expect(t, c.OK("GETQUOTAROOT INBOX"), `* QUOTAROOT INBOX ""`, `* QUOTA "" (STORAGE 2 2)`)
	_, done := c.Do(appendCmd("INBOX", "", sized("three", 20)))
	imaptest.ExpectDone(t, done, "NO [OVERQUOTA] over quota")

	c.OK("SELECT INBOX")
	c.OK("COPY 1 Archive") // membership only: no storage
	_, done = c.Do("COPY 1 INBOX")
	imaptest.ExpectDone(t, done, "NO [OVERQUOTA] over quota")
	imaptest.Expect(t, c.OK(`STATUS Archive (MESSAGES)`), `* STATUS "Archive" (MESSAGES 1)`)

	c.OK(`STORE 2 +FLAGS.SILENT (\Deleted)`)
	imaptest.Expect(t, c.OK(`STATUS INBOX (MESSAGES DELETED DELETED-STORAGE)`), `* STATUS "INBOX" (MESSAGES 2 DELETED 1 DELETED-STORAGE 1024)`)
	c.OK("EXPUNGE")
	imaptest.Expect(t, c.OK(`GETQUOTA ""`), `* QUOTA "" (STORAGE 1 2)`)
	c.OK(appendCmd("INBOX", "", sized("three", 20)))
	imaptest.Expect(t, c.OK(`GETQUOTA ""`), `* QUOTA "" (STORAGE 2 2)`) // 1044 octets, rounded up

	// No limit: "an empty list means there are no administrative resource
	// limits" (rfc9208.txt:440-442).
	if err := e.st.SetUserSetting(ctx, "u", store.QuotaStorageKey, ""); err != nil {
		t.Fatal(err)
	}
	imaptest.Expect(t, c.OK(`GETQUOTA ""`), `* QUOTA "" ()`)
	c.OK(appendCmd("INBOX", "", sized("four", 4000)))
}

func TestQuotaMessages(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.deliver("INBOX", testMsg("a"), store.Flags{})
	if err := e.st.SetUserSetting(ctx, "u", store.QuotaMessagesKey, "2"); err != nil {
		t.Fatal(err)
	}
	c := e.dial()
	imaptest.Expect(t, c.OK(`GETQUOTAROOT "No such box"`), `* QUOTAROOT "No such box" ""`, `* QUOTA "" (MESSAGE 1 2)`)
	c.OK(appendCmd("Drafts", "", testMsg("b")))
	_, done := c.Do(appendCmd("Drafts", "", testMsg("c")))
	imaptest.ExpectDone(t, done, "NO [OVERQUOTA] over quota")
	imaptest.Expect(t, c.OK(`GETQUOTA ""`), `* QUOTA "" (MESSAGE 2 2)`)
	// The store refuses a delivery too (SMTP answers 552, smtpd).
	if _, err := e.st.Deliver(ctx, e.user.ID, []byte(testMsg("d")), store.DeliverOptions{}); !errors.Is(err, store.ErrOverQuota) {
		t.Fatalf("delivery over quota: %v", err)
	}
	_, done = c.Do(`GETQUOTA "other"`)
	imaptest.ExpectDone(t, done, "NO [NONEXISTENT] no such quota root")
	_, done = c.Do(`SETQUOTA "" (STORAGE 100)`)
	imaptest.ExpectDone(t, done, "NO [NOPERM] quota limits are set by the administrator")
}

// Switched off, QUOTA takes its resources, commands and STATUS items along.
func TestQuotaDisabled(t *testing.T) {
	e := newEnv(t)
	_, addr := e.serve(Config{Disabled: map[string]bool{"QUOTA": true}})
	c := e.dialAddr(addr)
	c.OK("LOGIN u pw")
	if caps := c.OK("CAPABILITY")[0].String(); strings.Contains(caps, "QUOTA") {
		t.Fatalf("QUOTA advertised though switched off: %s", caps)
	}
	for _, cmd := range []string{`GETQUOTA ""`, "GETQUOTAROOT INBOX", "STATUS INBOX (DELETED)"} {
		if _, done := c.Do(cmd); done.Status != "BAD" {
			t.Fatalf("%s switched off: %s", cmd, done)
		}
	}
}
