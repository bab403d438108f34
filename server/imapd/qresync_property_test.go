package imapd

// Property test of QRESYNC (RFC 7162 §3.2, §6) end to end, on two real
// server processes and Postgres: a client caches a mailbox (a folder or a view) as RFC 7162
// §6 describes, then random changes happen (other sessions' flag changes
// that move messages into and out of views, expunges, deliveries, the
// client's own STOREs, EXPUNGEs and MOVEs, tombstones pruned past the
// horizon), with the client
// connected (NOOP, FETCH with MODSEQ, IDLE-less polling) or away. Whenever
// it comes back it resynchronises with SELECT (QRESYNC (uidvalidity
// modseq known-uids)) and a UID FETCH of the new messages, and its cache
// must be exactly what a fresh SELECT shows: every UID, every flag.
//
// The client's HIGHESTMODSEQ follows RFC 7162 §6: at each tagged response,
// the last HIGHESTMODSEQ code received in the command if any ("the client
// MUST use it even if it has seen higher mod-sequences",
// rfc7162.txt:2286-2297), else the highest MODSEQ of its FETCH responses
// if that is higher.

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	"decimail/internal/imaptest"
	"decimail/server/store"
)

// qrClient is the caching client.
type qrClient struct {
	c      *imaptest.TestClient
	mbox   string
	uv     string
	hms    int64
	cache  map[uint32]string // UID -> flags (flagKey, \Recent left out)
	top    uint32            // every message up to this UID was fetched (newMessages)
	rt     *rapid.T
	logged []string
}

// do runs a command and records its responses in the cache (VANISHED,
// VANISHED (EARLIER), FETCH UID FLAGS) and its HIGHESTMODSEQ.
func (q *qrClient) do(cmd string) []*imaptest.Resp {
	u, done := q.c.Do(cmd)
	if done.Status != "OK" && done.CodeName() != "EXPUNGEISSUED" { // RFC 2180 §4.1.2
		q.rt.Fatalf("%s: %s", cmd, done)
	}
	code, maxMS := int64(-1), int64(0)
	for _, r := range append(u, done) {
		if r.CodeName() == "HIGHESTMODSEQ" {
			code, _ = strconv.ParseInt(r.Code[1].S, 10, 64)
		}
	}
	for _, r := range u {
		switch r.Name() {
		case "VANISHED":
			set := r.Data[len(r.Data)-1].S
			ks, ok := parseKnownSet(Value{Kind: Atom, S: set})
			if !ok {
				q.rt.Fatalf("%s: bad VANISHED %s", cmd, r)
			}
			for u := range q.cache {
				if ks.contains(u) {
					delete(q.cache, u)
				}
			}
		case "FETCH":
			a := r.Attrs()
			uidTok, hasUID := a["UID"]
			fl, hasFlags := a["FLAGS"]
			if !hasUID || !hasFlags {
				// A FETCH without UID (FETCH 1:* (FLAGS MODSEQ): RFC 7162
				// §3.2.4 says the server "MUST automatically include both
				// UID and mod-sequence data" only in the other responses,
				// rfc7162.txt:1421-1430) is not applied by this client,
				// which keeps no sequence numbers; nor may its MODSEQ
				// raise the mod-sequence the client resyncs from, or the
				// change it carried would never be reported again.
				continue
			}
			if m, ok := a["MODSEQ"]; ok {
				ms, _ := strconv.ParseInt(m.L[0].S, 10, 64)
				maxMS = max(maxMS, ms)
			}
			uid, _ := strconv.ParseUint(uidTok.S, 10, 32)
			var names []string
			for _, f := range fl.L {
				if !strings.EqualFold(f.S, `\Recent`) {
					names = append(names, f.S)
				}
			}
			f, _ := store.ParseFlags(names)
			q.cache[uint32(uid)] = flagKey(f)
		}
	}
	if code >= 0 {
		q.hms = code // "MUST use it even if it has seen higher mod-sequences"
	} else {
		q.hms = max(q.hms, maxMS)
	}
	q.logged = append(q.logged, fmt.Sprintf("%s -> hms %d, cache %v", cmd, q.hms, q.cache))
	return u
}

// newMessages fetches the messages above those it fetched before (RFC
// 7162 §6 step 2, "Discover new messages"). Not above the highest UID
// cached: an unsolicited FETCH may have told it of a later message
// before it fetched the earlier ones an EXISTS announced.
func (q *qrClient) newMessages() {
	for _, r := range q.do(fmt.Sprintf("UID FETCH %d:* (FLAGS)", q.top+1)) {
		if a := r.Attrs(); a != nil && r.Name() == "FETCH" {
			u, _ := strconv.ParseUint(a["UID"].S, 10, 32)
			q.top = max(q.top, uint32(u))
		}
	}
}

// resync connects anew and resynchronises.
func (q *qrClient) resync(e *testEnv, user string) {
	if q.c != nil {
		q.c.OK("LOGOUT")
		q.c.Close()
	}
	q.c = e.dialAddr(e.addr)
	q.c.OK("LOGIN " + user + " pw")
	q.c.OK("ENABLE QRESYNC")
	known := normalise(ranges(slices.Sorted(maps.Keys(q.cache))))
	param := fmt.Sprintf("(QRESYNC (%s %d))", q.uv, q.hms)
	if len(known) > 0 {
		param = fmt.Sprintf("(QRESYNC (%s %d %s))", q.uv, q.hms, known)
	}
	q.do("SELECT " + imaptest.Quote(q.mbox) + " " + param)
	q.newMessages()
}

// truth is what a fresh SELECT shows: UID -> flags.
func truth(t *rapid.T, e *testEnv, user, mbox string) map[uint32]string {
	c := e.dialAddr(e.addr)
	defer c.Close()
	c.OK("LOGIN " + user + " pw")
	c.OK("EXAMINE " + imaptest.Quote(mbox))
	out := map[uint32]string{}
	for _, r := range c.OK("UID FETCH 1:* (FLAGS)") {
		a := r.Attrs()
		uid, _ := strconv.ParseUint(a["UID"].S, 10, 32)
		var names []string
		for _, f := range a["FLAGS"].L {
			if !strings.EqualFold(f.S, `\Recent`) {
				names = append(names, f.S)
			}
		}
		f, _ := store.ParseFlags(names)
		out[uint32(uid)] = flagKey(f)
	}
	c.OK("LOGOUT")
	return out
}

var qrFlags = []string{`\Seen`, `\Flagged`, `\Deleted`, "$Work"}

func TestPropertyQresync(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	// The other sessions run on a second server process (its own store,
	// pool and LISTEN connection), as on a host with two `decimail serve`.
	st2, err := store.Open(ctx, e.st.Pool().Config().ConnString(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	_, addr2 := (&testEnv{t: t, st: st2, user: e.user}).serve(Config{AuthFailDelay: time.Millisecond})
	n := 0
	rapid.Check(t, func(rt *rapid.T) {
		n++
		user := fmt.Sprintf("p%d", n)
		u, err := e.st.CreateUser(ctx, user, "pw")
		if err != nil {
			rt.Fatal(err)
		}
		msgs := 0
		deliver := func(seen, flagged bool) {
			msgs++
			if _, err := e.st.Deliver(ctx, u.ID, []byte(testMsg(fmt.Sprintf("%s-%d", user, msgs))),
				store.DeliverOptions{Mailbox: "INBOX", Flags: store.Flags{Seen: seen, Flagged: flagged}}); err != nil {
				rt.Fatal(err)
			}
		}
		for range rapid.IntRange(0, 6).Draw(rt, "messages") {
			deliver(rapid.Bool().Draw(rt, "seen"), rapid.Bool().Draw(rt, "flagged"))
		}
		q := &qrClient{mbox: rapid.SampledFrom([]string{"INBOX", "Unread", "Flagged"}).Draw(rt, "mailbox"), cache: map[uint32]string{}, rt: rt}
		// First synchronisation: a plain SELECT and every message.
		q.c = e.dialAddr(e.addr)
		q.c.OK("LOGIN " + user + " pw")
		q.c.OK("ENABLE QRESYNC")
		sel := q.do("SELECT " + imaptest.Quote(q.mbox))
		for _, r := range sel {
			if r.CodeName() == "UIDVALIDITY" {
				q.uv = r.Code[1].S
			}
		}
		q.newMessages()
		other := e.dialAddr(addr2)
		other.OK("LOGIN " + user + " pw")
		other.OK("SELECT INBOX")
		inbox := func() []uint32 { // the INBOX UIDs now, for the other session
			var us []uint32
			for _, r := range only(other.OK("UID SEARCH ALL"), "SEARCH") {
				for _, d := range r.Data[1:] {
					x, _ := strconv.ParseUint(d.S, 10, 32)
					us = append(us, uint32(x))
				}
			}
			return us
		}
		pick := func(us []uint32, label string) string {
			if len(us) == 0 {
				return ""
			}
			s := rapid.SliceOfNDistinct(rapid.SampledFrom(us), 1, 3, func(u uint32) uint32 { return u }).Draw(rt, label)
			slices.Sort(s)
			return numSet(s)
		}
		away := false
		steps := rapid.IntRange(1, 12).Draw(rt, "steps")
		for i := range steps {
			switch rapid.IntRange(0, 10).Draw(rt, fmt.Sprintf("step %d", i)) {
			case 0, 1: // another session changes flags (in or out of views)
				if set := pick(inbox(), "other store"); set != "" {
					op := rapid.SampledFrom([]string{"+FLAGS.SILENT", "-FLAGS.SILENT"}).Draw(rt, "op")
					other.OK("UID STORE " + set + " " + op + " (" + rapid.SampledFrom(qrFlags).Draw(rt, "flag") + ")")
				}
			case 2: // another session expunges
				if set := pick(inbox(), "other expunge"); set != "" {
					other.OK("UID STORE " + set + " +FLAGS.SILENT (\\Deleted)")
					other.OK("UID EXPUNGE " + set)
				}
			case 3:
				deliver(rapid.Bool().Draw(rt, "seen"), rapid.Bool().Draw(rt, "flagged"))
			case 4: // the client's own STORE (a message may leave its view: held)
				if !away {
					if set := pick(slices.Sorted(maps.Keys(q.cache)), "own store"); set != "" {
						op := rapid.SampledFrom([]string{"+FLAGS", "-FLAGS"}).Draw(rt, "own op")
						q.do("UID STORE " + set + " " + op + " (" + rapid.SampledFrom(qrFlags).Draw(rt, "own flag") + ")")
					}
				}
			case 5: // the client polls, or reads MODSEQs (VANISHED not allowed during FETCH)
				if !away {
					switch rapid.IntRange(0, 2).Draw(rt, "poll") {
					case 0:
						q.do("NOOP")
					case 1:
						if len(q.cache) > 0 {
							q.do("FETCH 1:* (FLAGS MODSEQ)")
						}
					case 2:
						q.do("CHECK")
					}
					q.newMessages()
				}
			case 6: // the client goes away, or comes back
				if away {
					q.resync(e, user)
				} else {
					q.c.OK("LOGOUT")
					q.c.Close()
					q.c = nil
				}
				away = !away
			case 7: // tombstones pruned while the client is away: past the horizon
				if !away {
					break
				}
				if _, err := e.st.PruneExpunges(ctx, time.Now().Add(time.Hour), 1000); err != nil {
					rt.Fatal(err)
				}
				// The other session's history is gone too: it gets BYE.
				other.Close()
				other = e.dialAddr(addr2)
				other.OK("LOGIN " + user + " pw")
				other.OK("SELECT INBOX")
			case 8: // the client's own EXPUNGE
				if !away {
					q.do("EXPUNGE")
				}
			case 10: // another session moves messages out of INBOX
				if set := pick(inbox(), "other move"); set != "" {
					other.OK("UID MOVE " + set + " Archive")
				}
			case 9: // the client moves messages out (its held ones stay held)
				if !away {
					if set := pick(slices.Sorted(maps.Keys(q.cache)), "move"); set != "" {
						q.do("UID MOVE " + set + " Archive")
					}
				}
			}
		}
		q.resync(e, user)
		want := truth(rt, e, user, q.mbox)
		if !maps.Equal(q.cache, want) {
			rt.Fatalf("after QRESYNC of %s the client has\n  %v\na fresh SELECT shows\n  %v\nclient log:\n  %s",
				q.mbox, q.cache, want, strings.Join(q.logged, "\n  "))
		}
		q.c.OK("LOGOUT")
		q.c.Close()
		other.OK("LOGOUT")
		other.Close()
	})
}
