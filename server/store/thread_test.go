package store_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"decimail/server/store"
)

// threadMsg is a message with the given Message-ID and References (ids
// without brackets; "" for none).
func threadMsg(id string, refs ...string) []byte {
	var h strings.Builder
	h.WriteString("From: a@example.com\r\nSubject: t\r\n")
	if id != "" {
		fmt.Fprintf(&h, "Message-ID: <%s@x>\r\n", id)
	}
	if len(refs) > 0 {
		h.WriteString("References:")
		for _, r := range refs {
			fmt.Fprintf(&h, " <%s@x>", r)
		}
		h.WriteString("\r\n")
	}
	h.WriteString("\r\nbody\r\n")
	return []byte(h.String())
}

func threadOf(t testing.TB, st *store.Store, id int64) int64 {
	t.Helper()
	var th int64
	if err := st.Pool().QueryRow(context.Background(), `SELECT thread_id FROM messages WHERE id = $1`, id).Scan(&th); err != nil {
		t.Fatal(err)
	}
	return th
}

// TestThreadIDLinks (issue 17): a message joins the thread of the stored
// messages it is linked to whichever arrived first (a reply before its
// parent, two replies to a parent never stored, a duplicate Message-ID,
// quoting variants of one msg-id); a message linked to two threads joins
// the older and leaves both as they were ("MUST NOT change the THREADID of
// a message once reported", rfc8474.txt:332).
func TestThreadIDLinks(t *testing.T) {
	st, u := newStore(t)
	ctx := t.Context()
	deliver := func(raw []byte, box string) int64 {
		t.Helper()
		d, err := st.Deliver(ctx, u.ID, raw, store.DeliverOptions{Mailbox: box})
		if err != nil {
			t.Fatal(err)
		}
		return d.MessageID
	}
	reply := deliver(threadMsg("b", "a"), "INBOX")
	parent := deliver(threadMsg("a"), "Archive") // another mailbox: THREADID is per user
	sibling := deliver(threadMsg("c", "a"), "INBOX")
	quoted := deliver([]byte("Message-ID: <z@x>\r\nIn-Reply-To: <\"b\"@x> (b's)\r\n\r\nq\r\n"), "INBOX")
	dup := deliver(threadMsg("a"), "INBOX")
	th := threadOf(t, st, reply)
	if th != reply {
		t.Errorf("the first message of a thread has thread %d, want its own id %d", th, reply)
	}
	for name, id := range map[string]int64{"parent after its reply": parent, "sibling": sibling,
		"quoted In-Reply-To": quoted, "duplicate Message-ID": dup} {
		if got := threadOf(t, st, id); got != th {
			t.Errorf("%s: thread %d, want %d", name, got, th)
		}
	}
	// Two threads that exist, then a message linked to both: it joins the
	// older one; neither changes.
	other := deliver(threadMsg("x"), "INBOX")
	otherReply := deliver(threadMsg("y", "x"), "INBOX")
	bridge := deliver(threadMsg("w", "x", "a"), "INBOX")
	if got := threadOf(t, st, other); got != other || threadOf(t, st, otherReply) != other {
		t.Errorf("a second thread: %d and %d, want %d", got, threadOf(t, st, otherReply), other)
	}
	if got := threadOf(t, st, bridge); got != th {
		t.Errorf("a message linking two threads: thread %d, want the older %d", got, th)
	}
	if threadOf(t, st, reply) != th || threadOf(t, st, other) != other {
		t.Errorf("a thread's THREADID changed (RFC 8474 §5.2)")
	}
	// No valid msg-id: a thread of its own.
	lone := deliver([]byte("Message-ID: not-an-id\r\n\r\nx\r\n"), "INBOX")
	if got := threadOf(t, st, lone); got != lone {
		t.Errorf("a message without msg-ids: thread %d, want %d", got, lone)
	}
	// Another user's mail is never linked.
	u2, err := st.CreateUser(ctx, "u2", "pw")
	if err != nil {
		t.Fatal(err)
	}
	d, err := st.Deliver(ctx, u2.ID, threadMsg("a"), store.DeliverOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := threadOf(t, st, d.MessageID); got != d.MessageID {
		t.Errorf("another user's message joined thread %d, want its own %d", got, d.MessageID)
	}
}

// TestThreadIDOneDelivery: messages of one delivery link to each other: a
// MULTIAPPEND (RFC 3502) of a reply before its parent, and one message to
// two addresses of the same user.
func TestThreadIDOneDelivery(t *testing.T) {
	st, u := newStore(t)
	ctx := t.Context()
	ds, err := st.DeliverAll(ctx, u.ID, []*store.Incoming{store.IncomingBytes(threadMsg("b", "a")), store.IncomingBytes(threadMsg("n")),
		store.IncomingBytes(threadMsg("a"))}, []store.DeliverOptions{{}, {}, {}})
	if err != nil {
		t.Fatal(err)
	}
	if a, b, n := threadOf(t, st, ds[0].MessageID), threadOf(t, st, ds[2].MessageID), threadOf(t, st, ds[1].MessageID); a != b || a != ds[0].MessageID || n != ds[1].MessageID {
		t.Errorf("MULTIAPPEND of a reply, another, its parent: threads %d %d %d, want %d %d %d",
			a, n, b, ds[0].MessageID, ds[1].MessageID, ds[0].MessageID)
	}
	r, err := st.DeliverIncoming(ctx, store.IncomingBytes(threadMsg("c", "q")), store.Delivery{Copies: []store.Copy{
		{UserID: u.ID, Prefix: []byte("Delivered-To: one@example.test\r\n")},
		{UserID: u.ID, Prefix: []byte("Delivered-To: two@example.test\r\n"), DeliverOptions: store.DeliverOptions{Mailbox: "Archive"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if a, b := threadOf(t, st, r.Copies[0].MessageID), threadOf(t, st, r.Copies[1].MessageID); a != b {
		t.Errorf("two copies of one message for one user: threads %d and %d", a, b)
	}
}

// TestThreadIDConcurrent: related messages delivered at the same time
// share a thread: the thread read before the user's lock is only a guess,
// decided again under it (threadSQL).
func TestThreadIDConcurrent(t *testing.T) {
	st, u := newStore(t)
	ctx := t.Context()
	for round := range 8 {
		parent := fmt.Sprintf("p%d", round)
		raws := [][]byte{threadMsg(parent)}
		for i := range 5 {
			raws = append(raws, threadMsg(fmt.Sprintf("r%d.%d", round, i), parent))
		}
		ids := make([]int64, len(raws))
		var wg sync.WaitGroup
		for i, raw := range raws {
			wg.Go(func() {
				d, err := st.Deliver(ctx, u.ID, raw, store.DeliverOptions{})
				if err != nil {
					t.Error(err)
				}
				ids[i] = d.MessageID
			})
		}
		wg.Wait()
		if t.Failed() {
			return
		}
		th := threadOf(t, st, ids[0])
		for _, id := range ids[1:] {
			if got := threadOf(t, st, id); got != th {
				t.Fatalf("round %d: concurrent deliveries of one thread: message %d in thread %d, message %d in %d",
					round, ids[0], th, id, got)
			}
		}
	}
}

// TestThreadIDAfterExpunge: a thread's links outlive its messages
// (thread_keys): a reply to a message expunged meanwhile gets its
// THREADID.
func TestThreadIDAfterExpunge(t *testing.T) {
	st, u := newStore(t)
	ctx := t.Context()
	d, err := st.Deliver(ctx, u.ID, threadMsg("gone"), store.DeliverOptions{Flags: store.Flags{Deleted: true}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Expunge(ctx, d.Box(), nil); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := st.Pool().QueryRow(ctx, `SELECT count(*) FROM messages WHERE id = $1`, d.MessageID).Scan(&n); err != nil || n != 0 {
		t.Fatalf("the expunged message: %d rows, %v", n, err)
	}
	r, err := st.Deliver(ctx, u.ID, threadMsg("late", "gone"), store.DeliverOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := threadOf(t, st, r.MessageID); got != d.MessageID {
		t.Errorf("a reply to an expunged message: thread %d, want the expunged one's %d", got, d.MessageID)
	}
	if err := st.Pool().QueryRow(ctx, `SELECT count(*) FROM thread_keys WHERE user_id = $1`, u.ID).Scan(&n); err != nil || n != 2 {
		t.Errorf("thread_keys rows: %d (%v), want 2 (<gone@x>, <late@x>)", n, err)
	}
}
