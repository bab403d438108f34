package store_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"decimail/server/store"
)

func sentMsg(id, extra string) []byte {
	return []byte("From: U <u@example.test>\r\nTo: bob@elsewhere.example\r\n" + extra +
		"Subject: report\r\nMessage-ID: <" + id + "@example.test>\r\nDate: Mon, 2 Nov 2026 10:00:00 +0100\r\n\r\nthe report\r\n")
}

// TestAppendClaimsSubmittedSentCopy pins issue 14 item 10: an APPEND to the
// \Sent mailbox of a message the submission server filed there (Thunderbird
// appends its own copy after sending) is answered with the filed copy and
// stores nothing; the APPEND's flags are added to it. Only a copy filed by
// submission, in the \Sent mailbox, within the window, counts, and only
// once: a deliberate second APPEND stores a copy.
func TestAppendClaimsSubmittedSentCopy(t *testing.T) {
	s, u := newStore(t)
	ctx := context.Background()
	sent := mailbox(t, s, u, "Sent")
	filed := deliver(t, s, u, sentMsg("a1", ""), store.DeliverOptions{Mailbox: "Sent", Flags: store.Flags{Seen: true}, Submitted: true})
	modseq := func() int64 {
		ms, err := s.Mailboxes(ctx, u.ID)
		must(t, err)
		for _, m := range ms {
			if m.ID == sent.ID {
				return m.HighestModSeq
			}
		}
		t.Fatal("no Sent")
		return 0
	}
	before := modseq()
	appendSent := func(raw []byte, f store.Flags, window time.Duration) store.Delivered {
		t.Helper()
		return deliver(t, s, u, raw, store.DeliverOptions{Mailbox: "Sent", Flags: f, SentWindow: window})
	}

	// The client's copy (with its Bcc: field, which the submitted one lacks).
	d := appendSent(sentMsg("a1", "Bcc: carol@example.test\r\n"), store.Flags{Seen: true}, 10*time.Minute)
	if !d.Existing || d.UID != filed.UID || d.MessageID != filed.MessageID || d.UIDValidity != filed.UIDValidity {
		t.Fatalf("APPEND of the submitted message: %+v, want the filed copy %+v", d, filed)
	}
	if got := uids(t, s, u, "Sent"); !slices.Equal(got, []uint32{filed.UID}) {
		t.Fatalf("Sent holds %v after the APPEND, want only %d", got, filed.UID)
	}
	if after := modseq(); after != before {
		t.Errorf("Sent's HIGHESTMODSEQ moved from %d to %d: the claim changed something", before, after)
	}

	// Claimed once: the same APPEND again is a deliberate duplicate.
	again := appendSent(sentMsg("a1", ""), store.Flags{Seen: true}, 10*time.Minute)
	if again.Existing || again.UID <= filed.UID {
		t.Fatalf("second APPEND: %+v, want a new message", again)
	}

	// The APPEND's flags are added to the claimed copy.
	f2 := deliver(t, s, u, sentMsg("a2", ""), store.DeliverOptions{Mailbox: "Sent", Flags: store.Flags{Seen: true}, Submitted: true})
	d2 := appendSent(sentMsg("a2", ""), store.Flags{Seen: true, Keywords: []string{"$Forwarded"}}, 10*time.Minute)
	if !d2.Existing || d2.UID != f2.UID {
		t.Fatalf("APPEND with a keyword: %+v, want the filed copy %d", d2, f2.UID)
	}
	snap, err := s.Select(ctx, u.ID, "Sent", true)
	must(t, err)
	var kws []string
	for i, uid := range snap.UIDs {
		if uid == f2.UID {
			kws = snap.Flags[i].Keywords
		}
	}
	if !slices.Contains(kws, "$Forwarded") {
		t.Errorf("claimed copy's keywords %v, want $Forwarded added", kws)
	}

	// What does not count: no window (an APPEND elsewhere than IMAP, or
	// the setting off), the window passed, another Message-ID, a copy the
	// client appended itself, a mailbox other than \Sent.
	deliver(t, s, u, sentMsg("b1", ""), store.DeliverOptions{Mailbox: "Sent", Submitted: true})
	deliver(t, s, u, sentMsg("b2", ""), store.DeliverOptions{Mailbox: "Sent", Submitted: true})
	deliver(t, s, u, sentMsg("b3", ""), store.DeliverOptions{Mailbox: "Sent"})
	deliver(t, s, u, sentMsg("b4", ""), store.DeliverOptions{Mailbox: "INBOX", Submitted: true})
	for _, c := range []struct {
		what   string
		raw    []byte
		mb     string
		window time.Duration
	}{
		{"no window", sentMsg("b1", ""), "Sent", 0},
		{"window passed", sentMsg("b2", ""), "Sent", time.Nanosecond},
		{"other Message-ID", sentMsg("zz", ""), "Sent", time.Hour},
		{"appended, not submitted", sentMsg("b3", ""), "Sent", time.Hour},
		{"not the \\Sent mailbox", sentMsg("b4", ""), "INBOX", time.Hour},
		{"no Message-ID", []byte("Subject: x\r\n\r\nbody\r\n"), "Sent", time.Hour},
	} {
		n := len(uids(t, s, u, c.mb))
		d := deliver(t, s, u, c.raw, store.DeliverOptions{Mailbox: c.mb, SentWindow: c.window})
		if d.Existing || len(uids(t, s, u, c.mb)) != n+1 {
			t.Errorf("%s: %+v, want a new message in %s", c.what, d, c.mb)
		}
	}
}
