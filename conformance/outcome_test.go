package conformance

import (
	"context"
	"strings"
	"testing"
)

// TestOutcome checks the outcome the replay compares (checkOutcome): on a
// fresh seed+views account every seed message is where the manifest puts
// it, with its view UIDs; after a delete over IMAP the change shows in the
// message's line and in the mailbox counts.
func TestOutcome(t *testing.T) {
	env := startAccountServer(t, AccountSeedViews)
	ctx := context.Background()
	before, err := Outcome(ctx, env.st, env.user)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"02-INBOX.eml           <lunch-0002@example.test>        was INBOX 2 ()                   now (): INBOX 2, All Mail (view) 2, Unread (view) 1\n",
		"# 0 seed messages gone\n",
		`#   Unread         view "UNSEEN" uidnext 19, 18 messages, 18 unseen, subscribed true` + "\n",
	} {
		if !strings.Contains(before, want) {
			t.Errorf("fresh account: no line %q in\n%s", want, before)
		}
	}
	c, err := Dial("outcome", env.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(SeedUser, SeedPassword); err != nil {
		t.Fatal(err)
	}
	for i, cmd := range []string{"SELECT INBOX", `UID STORE 2 +FLAGS.SILENT (\Deleted)`, "EXPUNGE"} {
		if _, done, err := c.Command(string(rune('a'+i)), cmd); err != nil || done.Status != "OK" {
			t.Fatalf("%s: %v %v", cmd, done, err)
		}
	}
	after, err := Outcome(ctx, env.st, env.user)
	if err != nil {
		t.Fatal(err)
	}
	d := lineDiff(before, after)
	for _, want := range []string{
		"+ 02-INBOX.eml           <lunch-0002@example.test>        was INBOX 2 ()                   now GONE\n",
		"+ # 1 seed messages gone\n",
		`+ #   INBOX          uidnext 31, 29 messages, 13 unseen, subscribed false` + "\n",
	} {
		if !strings.Contains(d, want) {
			t.Errorf("after expunging INBOX 2: no %q in the difference\n%s", want, d)
		}
	}
}
