package imapd

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	"decimail/internal/imaptest"
	"decimail/server/query"
	"decimail/server/store"
)

// The session answers SEARCH programs of flags, keywords, \Recent, UID and
// sequence sets, dates and sizes from its view and the process's cache of
// each message's days and size (searchView, store.SearchDataByID), and so
// do SORT and THREAD (fromView); the store answers them with one query
// (query.Compile). Random programs of exactly those keys run through both
// on the same mailbox state, over two sessions of two servers on one
// store, one of which never searches in its view (Config.storeSearch), and
// the answers must be equal: the SEARCH, ESEARCH, SORT or THREAD response
// and the tagged reply's code. The messages' internal dates fall near
// midnight in zones from -12:00 to +14:00, their Date: headers too, or
// are absent or unparseable; LARGER and SMALLER take the sizes of the
// messages and their neighbours. Between SELECT and the searches, another
// session changes flags, delivers, expunges and moves messages out (their
// EXPUNGE not sent yet: still searched).

var (
	svZones = []int{-12 * 3600, -9*3600 - 1800, -5 * 3600, 0, 3600, 5*3600 + 1800, 14 * 3600}
	svBase  = time.Date(2026, 10, 20, 0, 0, 0, 0, time.UTC)
	svKws   = []string{"$Work", "Junk"}
)

// svTime draws an instant on one of a few days, most near midnight, in a
// zone of svZones.
func svTime(t *rapid.T, label string) time.Time {
	day := rapid.IntRange(0, 3).Draw(t, label+" day")
	var min int
	switch rapid.IntRange(0, 3).Draw(t, label+" when") {
	case 0:
		min = rapid.IntRange(0, 24*60-1).Draw(t, label+" minute")
	case 1:
		min = rapid.IntRange(0, 30).Draw(t, label+" after midnight")
	default:
		min = 24*60 - 1 - rapid.IntRange(0, 30).Draw(t, label+" before midnight")
	}
	loc := time.FixedZone("", rapid.SampledFrom(svZones).Draw(t, label+" zone"))
	return time.Date(svBase.Year(), svBase.Month(), svBase.Day()+day, 0, min, rapid.IntRange(0, 59).Draw(t, label+" second"), 0, loc)
}

// svMessage draws a message: a Date: header near midnight, absent or
// unparseable, and a body of a drawn length.
func svMessage(t *rapid.T, i int) string {
	var h strings.Builder
	h.WriteString(fmt.Sprintf("From: a%d@example.com\r\nTo: u@example.test\r\nSubject: m%d\r\nMessage-ID: <sv%d@example.com>\r\n", i, i, i))
	switch rapid.IntRange(0, 4).Draw(t, "date header") {
	case 0: // absent
	case 1:
		h.WriteString("Date: the day after tomorrow\r\n")
	case 2: // no day of the week, no seconds
		h.WriteString("Date: " + svTime(t, "sent").Format("2 Jan 2006 15:04 -0700") + "\r\n")
	default:
		h.WriteString("Date: " + svTime(t, "sent").Format("Mon, 02 Jan 2006 15:04:05 -0700") + "\r\n")
	}
	return h.String() + "\r\n" + strings.Repeat("x", rapid.IntRange(0, 3).Draw(t, "body")) + "\r\n"
}

// svGen draws programs of the keys the view answers.
type svGen struct {
	n     int      // messages in the client's view
	sizes []int    // their sizes
	days  []string // dates around theirs, as IMAP dates
	max   uint32   // the largest UID delivered
}

func (g svGen) node(t *rapid.T, depth int) query.Node {
	// No RECENT, NEW or OLD: only one of the two sessions gets a message's
	// \Recent (TestSearchFlagsFromViewAreCurrent has them).
	kinds := []string{"ALL", "flag", "keyword", "uid", "date", "date", "date", "size", "size"}
	if g.n > 0 {
		kinds = append(kinds, "seq")
	}
	if depth < 3 {
		kinds = append(kinds, "NOT", "OR", "list", "list")
	}
	ranges := func(hi uint32) [][2]uint32 {
		rs := make([][2]uint32, rapid.IntRange(1, 3).Draw(t, "ranges"))
		for i := range rs {
			a := rapid.Uint32Range(0, hi).Draw(t, "from")
			b := a
			if rapid.Bool().Draw(t, "range") {
				b = rapid.Uint32Range(0, hi).Draw(t, "to")
			}
			rs[i] = [2]uint32{a, b}
		}
		return rs
	}
	switch rapid.SampledFrom(kinds).Draw(t, "key") {
	case "ALL":
		return query.All{}
	case "flag":
		return query.Flag{Key: rapid.SampledFrom([]string{"ANSWERED", "DELETED", "DRAFT", "FLAGGED", "SEEN"}).Draw(t, "flag"),
			Set: rapid.Bool().Draw(t, "set")}
	case "keyword":
		return query.Keyword{Flag: rapid.SampledFrom(append([]string{`\Seen`, "junk", "none"}, svKws...)).Draw(t, "keyword"),
			Set: rapid.Bool().Draw(t, "set")}
	case "uid":
		return query.UID{Set: uidSetOfRanges(ranges(g.max + 2))}
	case "seq":
		return query.Seq{Set: seqSetOf(ranges(uint32(g.n)))}
	case "date":
		d, err := time.Parse("2-Jan-2006", rapid.SampledFrom(g.days).Draw(t, "day"))
		if err != nil {
			t.Fatal(err)
		}
		return query.Date{Key: rapid.SampledFrom([]string{"BEFORE", "ON", "SINCE", "SENTBEFORE", "SENTON", "SENTSINCE"}).Draw(t, "date key"), Day: d}
	case "size":
		n := rapid.IntRange(0, 400).Draw(t, "size")
		if len(g.sizes) > 0 && rapid.IntRange(0, 3).Draw(t, "a message's size") > 0 {
			n = max(0, rapid.SampledFrom(g.sizes).Draw(t, "of")+rapid.IntRange(-1, 1).Draw(t, "+"))
		}
		return query.Size{Larger: rapid.Bool().Draw(t, "larger"), N: uint64(n)}
	case "NOT":
		return query.Not{X: g.node(t, depth+1)}
	case "OR":
		return query.Or{A: g.node(t, depth+1), B: g.node(t, depth+1)}
	default:
		var a query.And
		for range rapid.IntRange(2, 3).Draw(t, "list length") {
			a = append(a, g.node(t, depth+1))
		}
		return a
	}
}

// svAnswer is what a SEARCH, SORT or THREAD answered: its SEARCH,
// ESEARCH, SORT or THREAD responses and the tagged reply's status and
// code.
func svAnswer(untagged []*imaptest.Resp, done *imaptest.Resp) string {
	var out []string
	for _, r := range untagged {
		if len(r.Data) > 0 && slices.Contains([]string{"SEARCH", "ESEARCH", "SORT", "THREAD"}, strings.ToUpper(r.Data[0].S)) {
			out = append(out, r.Raw)
		}
	}
	code := ""
	if done.HasCode && len(done.Code) > 0 {
		code = done.Code[0].S
	}
	return strings.Join(out, "\n") + "\n" + done.Status + " " + code
}

func TestPropertySearchViewMatchesStore(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	_, sqlAddr := e.serve(Config{AuthFailDelay: time.Millisecond, storeSearch: true})
	other := e.dial()
	run, programs, partial, data := 0, 0, 0, 0
	defer func() {
		t.Logf("%d programs, %d matched some but not all messages, %d read dates or sizes", programs, partial, data)
	}()
	rapid.Check(t, func(rt *rapid.T) {
		run++
		name := fmt.Sprintf("sv%d", run)
		mb, err := e.st.CreateMailbox(ctx, e.user.ID, name, "", "")
		if err != nil {
			rt.Fatal(err)
		}
		defer e.st.DeleteMailbox(ctx, e.user.ID, name)
		deliver := func(i int) store.Delivered {
			kws := rapid.SliceOfDistinct(rapid.SampledFrom(svKws), func(s string) string { return s }).Draw(rt, "keywords")
			f := store.Flags{Seen: rapid.Bool().Draw(rt, "seen"), Flagged: rapid.Bool().Draw(rt, "flagged"),
				Deleted: rapid.Bool().Draw(rt, "deleted"), Answered: rapid.Bool().Draw(rt, "answered"), Keywords: kws}
			d, err := e.st.Deliver(ctx, e.user.ID, []byte(svMessage(rt, i)),
				store.DeliverOptions{Mailbox: name, Flags: f, InternalDate: svTime(rt, "internal")})
			if err != nil {
				rt.Fatal(err)
			}
			return d
		}
		n := rapid.IntRange(0, 12).Draw(rt, "messages")
		var uids []uint32
		for i := range n {
			uids = append(uids, deliver(i).UID)
		}

		view, sql := e.dial(), e.dialAddr(sqlAddr)
		sql.OK("LOGIN u pw")
		for _, c := range []*imaptest.TestClient{view, sql} {
			c.OK("SELECT " + name)
		}
		// Changes by another session, not announced yet to these two.
		other.OK("SELECT " + name)
		for range rapid.IntRange(0, 3).Draw(rt, "changes") {
			switch rapid.IntRange(0, 4).Draw(rt, "change") {
			case 0, 1:
				if len(uids) > 0 {
					set := uidSetOfRanges([][2]uint32{{rapid.SampledFrom(uids).Draw(rt, "from"), rapid.SampledFrom(uids).Draw(rt, "to")}})
					other.OK(fmt.Sprintf("UID STORE %s %sFLAGS.SILENT (%s)", set, rapid.SampledFrom([]string{"+", "-"}).Draw(rt, "op"),
						rapid.SampledFrom([]string{`\Seen`, `\Flagged`, `\Deleted`, "$Work", `\Seen $Work`}).Draw(rt, "flags")))
				}
			case 2:
				d := deliver(n + 100)
				uids = append(uids, d.UID)
			case 3:
				if len(uids) > 0 {
					// Deleted: no other folder holds it.
					u := rapid.SampledFrom(uids).Draw(rt, "expunge")
					other.OK(fmt.Sprintf(`UID STORE %d +FLAGS.SILENT (\Deleted)`, u))
					other.OK(fmt.Sprintf("UID EXPUNGE %d", u))
				}
			case 4:
				if len(uids) > 0 {
					other.OK(fmt.Sprintf("UID MOVE %d Archive", rapid.SampledFrom(uids).Draw(rt, "move")))
				}
			}
		}
		other.OK("UNSELECT")

		// The client's view: what SELECT showed.
		var sz []int
		err = e.st.Fetch(ctx, mb.Box(), uids, store.FetchCols{Size: true}, func(r *store.FetchRow) error {
			sz = append(sz, int(r.Size))
			return nil
		})
		if err != nil {
			rt.Fatal(err)
		}
		var days []string
		for d := -1; d <= 5; d++ {
			days = append(days, svBase.AddDate(0, 0, d).Format("2-Jan-2006"))
		}
		var maxUID uint32
		if len(uids) > 0 {
			maxUID = slices.Max(uids)
		}
		g := svGen{n: n, sizes: sz, days: days, max: maxUID}
		for i := range rapid.IntRange(1, 8).Draw(rt, "programs") {
			prog := g.node(rt, 0)
			if _, d := viewTerms(prog); d {
				data++
			}
			cmd := rapid.SampledFrom([]string{"UID SEARCH", "SEARCH", "UID SEARCH RETURN (MIN MAX COUNT ALL)", "SEARCH RETURN ()",
				"UID SORT (SIZE) UTF-8", "SORT (REVERSE DATE) UTF-8", "UID SORT RETURN (MIN COUNT PARTIAL 1:2) (ARRIVAL) UTF-8",
				"THREAD ORDEREDSUBJECT UTF-8"}).Draw(rt, "command") + " " + query.String(prog)
			tag := fmt.Sprintf("p%d", i)
			vu, vd := view.DoTag(tag, cmd)
			su, sd := sql.DoTag(tag, cmd)
			got, want := svAnswer(vu, vd), svAnswer(su, sd)
			programs++
			if strings.HasPrefix(cmd, "UID SEARCH ") && sd.Status == "OK" && len(su) > 0 {
				if hits := strings.Count(su[0].Raw, " ") - 1; hits > 0 && hits < n {
					partial++
				}
			}
			if got != want {
				rt.Fatalf("%s %s\nfrom the view:  %q\nfrom the store: %q", tag, cmd, got, want)
			}
		}
		view.OK("LOGOUT")
		sql.OK("LOGOUT")
	})
}
