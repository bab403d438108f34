package store_test

import (
	"context"
	"slices"
	"testing"

	"decimail/server/query"
	"decimail/server/store"
)

// TestSearchUnicodeCaseInsensitive pins issue 14 item 8: SEARCH SUBJECT
// MÜNCHEN finds "München", and the other text keys fold beyond ASCII too
// (query.Fold), for texts indexed or not yet indexed, in SEARCH and in a
// view's definition, whether the view is evaluated at delivery (query.Eval)
// or over stored messages (the compiled SQL).
func TestSearchUnicodeCaseInsensitive(t *testing.T) {
	s, u := newStore(t)
	ctx := context.Background()
	_, err := s.CreateMailbox(ctx, u.ID, "Munich", "SUBJECT MÜNCHEN", "")
	must(t, err)
	raw := []byte("From: =?UTF-8?Q?J=C3=BCrgen_Stra=C3=9Fer?= <j@example.de>\r\nTo: u@example.test\r\n" +
		"Subject: Ihr Flug nach =?UTF-8?Q?M=C3=BCnchen?=\r\nMessage-ID: <m1@example.de>\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n\r\nΟΔΥΣΣΕΥΣ grüßt aus İstanbul\r\n")
	d := deliver(t, s, u, raw, store.DeliverOptions{})
	deliver(t, s, u, msg("Munchen without umlaut", "plain ascii"), store.DeliverOptions{})
	inbox := mailbox(t, s, u, "INBOX")
	for _, indexed := range []bool{false, true} {
		if indexed {
			_, err := s.IndexTexts(ctx)
			must(t, err)
		}
		for _, prog := range []string{"SUBJECT MÜNCHEN", "SUBJECT münchen", "FROM JÜRGEN", "FROM strasser", "BODY Grüsst",
			"BODY οδυσσευς", "TEXT ΟΔΥΣΣΕΥΣ", "TEXT İSTANBUL", `HEADER SUBJECT "NACH MÜNCHEN"`} {
			n, err := query.ParseDefinition(prog)
			must(t, err)
			got, err := s.Search(ctx, inbox.Box(), n, &query.Env{})
			must(t, err)
			if !slices.Equal(got, []uint32{d.UID}) {
				t.Errorf("indexed=%v: SEARCH %s = %v, want [%d]", indexed, prog, got, d.UID)
			}
		}
	}
	// Defined before the delivery: the view took the message at delivery.
	if got := uids(t, s, u, "Munich"); len(got) != 1 {
		t.Errorf("view defined before delivery holds %v, want the München message", got)
	}
	// Defined after it: filled by the compiled SQL.
	_, err = s.CreateMailbox(ctx, u.ID, "Munich2", "SUBJECT MÜNCHEN", "")
	must(t, err)
	if got := uids(t, s, u, "Munich2"); len(got) != 1 {
		t.Errorf("view defined after delivery holds %v, want the München message", got)
	}
}
