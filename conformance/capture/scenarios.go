package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"decimail/conformance"
)

// The scenarios of issue 14: acting inside views. Each Thunderbird scenario
// starts with a new profile (first start: folder discovery, full offline
// sync), waits until the account is quiet, acts, waits again, quits with
// ctrl+q.
func init() {
	const tbStart = "Thunderbird 153 ESR under Xvfb, new profile (client-configs/thunderbird-user.js with the tap's port, one IMAP connection, no offline download; password stored by Thunderbird beforehand), first start and first sync until 5s quiet; then "
	register(&scenario{client: "thunderbird", name: "03-unread-read-delete", account: conformance.AccountSeedViews,
		text: tbStart + "open Unread, select its first message (Thunderbird marks it read), wait 5s quiet, press Delete, wait 5s quiet, ctrl+q",
		run:  tbDeleteFirst("Unread")})
	register(&scenario{client: "thunderbird", name: "04-allmail-delete", account: conformance.AccountSeedViews,
		text: tbStart + "open All Mail, select its first message, wait 5s quiet, press Delete, wait 5s quiet, ctrl+q",
		run:  tbDeleteFirst("All Mail")})
	register(&scenario{client: "thunderbird", name: "05-flagged-unflag-flag", account: conformance.AccountSeedViews,
		text: tbStart + "open Flagged, select its first message, wait 5s quiet, press s (star: unflag), wait 5s quiet, press s again (flag), wait 5s quiet, ctrl+q",
		run: tbScenario(func(ctx context.Context, t *tbird) error {
			if err := t.open("Flagged"); err != nil {
				return err
			}
			t.settle(3*time.Second, 30*time.Second)
			if err := t.selectRow(0); err != nil {
				return err
			}
			t.settle(5*time.Second, 30*time.Second)
			t.logState("after selecting")
			for i, what := range []string{"unflagged", "flagged"} {
				t.r.logf("key s (%d)", i+1)
				if err := t.key("s"); err != nil {
					return err
				}
				t.settle(5*time.Second, 30*time.Second)
				t.logState("after s")
				t.screenshot(what)
			}
			return nil
		})})
	register(&scenario{client: "thunderbird", name: "06-inbox-new-mail", account: conformance.AccountSeedViews,
		text: tbStart + "open INBOX, wait 5s quiet, deliver seed/extra-thunderbird-idle.eml into INBOX through the store, wait 10s quiet, ctrl+q",
		run: tbScenario(func(ctx context.Context, t *tbird) error {
			if err := t.open("INBOX"); err != nil {
				return err
			}
			t.settle(5*time.Second, 30*time.Second)
			t.r.logf("deliver extra-thunderbird-idle.eml into INBOX (store)")
			if err := t.r.srv.deliver(ctx, "extra-thunderbird-idle.eml"); err != nil {
				return err
			}
			t.settle(10*time.Second, 60*time.Second)
			t.logState("after the delivery")
			t.screenshot("new-mail")
			return nil
		})})
	// Issue 16: Thunderbird with CONDSTORE on (use_condstore is false by
	// default, mailnews.js). Thunderbird 153 uses CONDSTORE on a
	// connection only once a SELECT answer carried an [HIGHESTMODSEQ] it
	// did not ask for (its IMAP_CS log: useCS=false until then); it sends
	// no ENABLE CONDSTORE and no SELECT (CONDSTORE) first. Decimail sends
	// HIGHESTMODSEQ only after a CONDSTORE enabling command
	// (rfc7162.txt:417-420), so against Decimail this capture shows
	// Thunderbird resyncing without CONDSTORE (UID fetch 1:* (FLAGS));
	// TRANSCRIPTS.md "Thunderbird and CONDSTORE".
	register(&scenario{client: "thunderbird", name: "07-condstore-resync", account: conformance.AccountSeedViews,
		text: tbStart + "with mail.server.server1.use_condstore true: open INBOX, wait 5s quiet, ctrl+q; another client (its own IMAP connection, not captured: conformance.OtherSessions \"flags\") marks INBOX 2 read, flags 3, marks 29 unread; Thunderbird starts again on the same profile, open INBOX, wait 5s quiet, ctrl+q; the other client (\"expunge\") flags INBOX 30, expunges 16; Thunderbird starts again, open INBOX, wait 5s quiet, ctrl+q",
		run: tbScenarioPrefs([]string{`user_pref("mail.server.server1.use_condstore", true);`}, func(ctx context.Context, t *tbird) error {
			if err := t.open("INBOX"); err != nil {
				return err
			}
			t.settle(5*time.Second, 30*time.Second)
			t.logState("INBOX")
			t.logMessages("before", "INBOX")
			for i, step := range []struct {
				other string
				want  map[string]bool // "uid:flags" shown, or absent (false)
			}{
				{"flags", map[string]bool{"2:r": true, "3:rf": true, "29:-": true}},
				{"expunge", map[string]bool{"30:f": true, "16:-": false, "16:r": false}},
			} {
				err := t.restart(fmt.Sprintf("thunderbird-%d.log", i+2), func() error {
					t.r.logf("other session %q: %v", step.other, conformance.OtherSessions[step.other])
					return conformance.RunOtherSession(t.r.srv.addr, step.other)
				})
				if err != nil {
					return err
				}
				if err := t.open("INBOX"); err != nil {
					return err
				}
				t.settle(5*time.Second, 30*time.Second)
				t.logState("INBOX after the restart")
				t.screenshot("resynced-" + step.other)
				got, err := t.messages("INBOX")
				if err != nil {
					return err
				}
				t.r.logf("after %q: INBOX as Thunderbird has it: %s", step.other, got)
				have := map[string]bool{}
				for _, f := range strings.Fields(got) {
					have[f] = true
				}
				for m, want := range step.want {
					if have[m] != want {
						return fmt.Errorf("after %q Thunderbird shows %s: %v, want %v", step.other, m, have[m], want)
					}
				}
				t.r.logf("after %q: Thunderbird shows the other client's changes %v", step.other, step.want)
			}
			return nil
		})})
}

// tbDeleteFirst opens folder, selects its first message and presses Delete.
func tbDeleteFirst(folder string) func(context.Context, *runCtx) error {
	return tbScenario(func(ctx context.Context, t *tbird) error {
		if err := t.open(folder); err != nil {
			return err
		}
		t.settle(3*time.Second, 30*time.Second)
		if err := t.selectRow(0); err != nil {
			return err
		}
		t.settle(5*time.Second, 30*time.Second)
		t.logState("after selecting")
		t.screenshot("selected")
		t.r.logf("key Delete")
		if err := t.key("Delete"); err != nil {
			return err
		}
		t.settle(5*time.Second, 30*time.Second)
		t.logState("after Delete")
		t.screenshot("deleted")
		return nil
	})
}
