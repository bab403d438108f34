package main

import (
	"context"
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
