package store_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"decimail/server/pgrun"
	"decimail/server/store"
)

// FetchText serves a message's text by id to its user only; a second read
// of the same message makes no round trip; the cache stays within its bound
// and keeps no message larger than TextCacheMax.
func TestFetchTextCache(t *testing.T) {
	ctx := context.Background()
	const bound = 64 << 10
	s, err := store.Open(ctx, pgrun.TestDB(t), store.Options{SpoolDir: t.TempDir(), PasswordCost: bcrypt.MinCost, TextCache: bound})
	must(t, err)
	defer s.Close()
	u, err := s.CreateUser(ctx, "u", "pw")
	must(t, err)
	eve, err := s.CreateUser(ctx, "eve", "pw")
	must(t, err)
	d := deliver(t, s, u, msg("cached", "the body"), store.DeliverOptions{})
	h, b, err := s.FetchText(ctx, d.Box(), d.MessageID)
	must(t, err)
	if !strings.Contains(string(h), "Subject: cached") || !strings.Contains(string(b), "the body") {
		t.Fatalf("header %q body %q", h, b)
	}
	before := s.RoundTrips()
	h2, _, err := s.FetchText(ctx, d.Box(), d.MessageID)
	must(t, err)
	if n := s.RoundTrips() - before; n != 0 || string(h2) != string(h) {
		t.Fatalf("second read: %d round trips, same header %v", n, string(h2) == string(h))
	}
	// Another user asking for the id (through a Box of theirs) gets nothing,
	// from the cache or the table.
	ib, err := s.Mailbox(ctx, eve.ID, "INBOX")
	must(t, err)
	if _, _, err := s.FetchText(ctx, ib.Box(), d.MessageID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("another user's read: %v", err)
	}
	if _, _, err := s.FetchText(ctx, ib.Box(), 1<<40); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("no such message: %v", err)
	}
	// Many messages: the cache holds at most its bound.
	for i := range 40 {
		d := deliver(t, s, u, msg(fmt.Sprint("m", i), strings.Repeat("x", 4000)), store.DeliverOptions{})
		_, _, err := s.FetchText(ctx, d.Box(), d.MessageID)
		must(t, err)
		if size, max := s.TextCacheSize(); size > max || max != bound {
			t.Fatalf("cache %d bytes, bound %d", size, max)
		}
	}
	if size, _ := s.TextCacheSize(); size < bound/2 {
		t.Fatalf("cache %d bytes after 160 KB of reads: it keeps nothing", size)
	}
}

// STATUS numbers are answered from the status cache while nothing of the
// mailbox or its user was signalled, and are never stale after a change
// through this process (signalled before the change returns) or, once its
// notification has arrived (Barrier), through another.
func TestStatusCache(t *testing.T) {
	ctx := context.Background()
	s, u := newStore(t)
	other := secondStore(t, s)
	must(t, s.Barrier(ctx)) // the listener is up
	st := func(name string) store.MailboxStatus {
		t.Helper()
		v, err := s.Status(ctx, u.ID, name)
		must(t, err)
		return v
	}
	st("INBOX")
	before := s.RoundTrips()
	if v := st("INBOX"); v.Messages != 0 {
		t.Fatalf("INBOX: %d messages", v.Messages)
	}
	if n := s.RoundTrips() - before; n != 0 {
		t.Fatalf("a second STATUS of an unchanged mailbox: %d round trips", n)
	}
	deliver(t, s, u, msg("local", "x"), store.DeliverOptions{})
	recent := func(v store.MailboxStatus) int {
		t.Helper()
		must(t, s.CountRecent(ctx, &v))
		return v.Recent
	}
	if v := st("INBOX"); v.Messages != 1 || recent(v) != 1 || v.Unseen != 1 {
		t.Fatalf("after a delivery through this process: %+v", v)
	}
	must(t, s.Barrier(ctx))
	st("INBOX")                                                    // cached after every notification so far
	if _, err := s.Select(ctx, u.ID, "INBOX", false); err != nil { // claims \Recent
		t.Fatal(err)
	}
	if v := st("INBOX"); recent(v) != 0 {
		t.Fatalf("after the claim: RECENT %d", recent(v))
	}
	deliver(t, other, u, msg("remote", "x"), store.DeliverOptions{})
	must(t, s.Barrier(ctx))
	if v := st("INBOX"); v.Messages != 2 {
		t.Fatalf("after a delivery through another process: %+v", v)
	}
	_, err := s.CreateMailbox(ctx, u.ID, "Old", "", "")
	must(t, err)
	st("Old")
	must(t, other.RenameMailbox(ctx, u.ID, "Old", "New"))
	must(t, s.Barrier(ctx))
	if _, err := s.Status(ctx, u.ID, "Old"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("STATUS of a name another process renamed: %v", err)
	}
}

// TestSortKeysByIDUserScoped: the process's cache of sort keys serves a
// message's keys to its own user only, cached or not; a second read comes
// from the cache (no round trip).
func TestSortKeysByIDUserScoped(t *testing.T) {
	s, u := newStore(t)
	ctx := context.Background()
	d := deliver(t, s, u, msg("sorted", "x"), store.DeliverOptions{})
	v, err := s.CreateUser(ctx, "v", "pw")
	if err != nil {
		t.Fatal(err)
	}
	mine, err := s.Mailbox(ctx, u.ID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := s.Mailbox(ctx, v.ID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.SortKeysByID(ctx, theirs.Box(), []int64{d.MessageID}); err != nil || got[0] != nil {
		t.Fatalf("another user's message, not cached: %+v %v", got, err)
	}
	got, err := s.SortKeysByID(ctx, mine.Box(), []int64{d.MessageID, d.MessageID})
	if err != nil || got[0] == nil || got[1] == nil || got[0].Subject != "sorted" || got[1].Subject != "sorted" {
		t.Fatalf("own message, twice: %+v %v", got, err)
	}
	trips := s.RoundTrips()
	if got, err := s.SortKeysByID(ctx, mine.Box(), []int64{d.MessageID}); err != nil || got[0] == nil || got[0].Subject != "sorted" || s.RoundTrips() != trips {
		t.Fatalf("cached read: %+v %v, %d round trips", got, err, s.RoundTrips()-trips)
	}
	if got, err := s.SortKeysByID(ctx, theirs.Box(), []int64{d.MessageID}); err != nil || got[0] != nil {
		t.Fatalf("another user's message, cached: %+v %v", got, err)
	}
}

// TestSearchDataByIDUserScoped: the process's cache of search data
// (internal day in the internal date's zone, sent day in the Date:
// header's, size) serves a message's data to its own user only, cached or
// not; a second read comes from the cache (no round trip); a message
// without a Date: header has no sent day.
func TestSearchDataByIDUserScoped(t *testing.T) {
	s, u := newStore(t)
	ctx := context.Background()
	// 23:30 on 2 Nov at -05:00 is 3 Nov in UTC; the header's 00:10 on
	// 5 Nov at +14:00 is 4 Nov in UTC.
	raw := "From: a@example.com\r\nSubject: s\r\nDate: Thu, 5 Nov 2026 00:10:00 +1400\r\n\r\nbody\r\n"
	d := deliver(t, s, u, []byte(raw), store.DeliverOptions{InternalDate: time.Date(2026, 11, 2, 23, 30, 0, 0, time.FixedZone("", -5*3600))})
	nd := deliver(t, s, u, []byte("From: a@example.com\r\nSubject: no date\r\n\r\nx\r\n"), store.DeliverOptions{})
	v, err := s.CreateUser(ctx, "v", "pw")
	if err != nil {
		t.Fatal(err)
	}
	mine, err := s.Mailbox(ctx, u.ID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := s.Mailbox(ctx, v.ID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.SearchDataByID(ctx, theirs.Box(), []int64{d.MessageID}); err != nil || got[0].Found {
		t.Fatalf("another user's message, not cached: %+v %v", got, err)
	}
	want := store.SearchData{Found: true, InternalDay: int32(time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC).Unix() / 86400),
		SentDay: int32(time.Date(2026, 11, 5, 0, 0, 0, 0, time.UTC).Unix() / 86400), Size: int32(len(raw))}
	got, err := s.SearchDataByID(ctx, mine.Box(), []int64{d.MessageID, nd.MessageID, d.MessageID})
	if err != nil || got[0] != want || got[2] != want || !got[1].Found || got[1].SentDay != store.NoDay {
		t.Fatalf("own messages: %+v %v, want %+v and one without a sent day", got, err, want)
	}
	if day := store.Day(got[0].InternalDay); day.Format("2006-01-02") != "2026-11-02" {
		t.Fatalf("Day: %v", day)
	}
	trips := s.RoundTrips()
	if got, err := s.SearchDataByID(ctx, mine.Box(), []int64{d.MessageID}); err != nil || got[0] != want || s.RoundTrips() != trips {
		t.Fatalf("cached read: %+v %v, %d round trips", got, err, s.RoundTrips()-trips)
	}
	if got, err := s.SearchDataByID(ctx, theirs.Box(), []int64{d.MessageID}); err != nil || got[0].Found {
		t.Fatalf("another user's message, cached: %+v %v", got, err)
	}
}
