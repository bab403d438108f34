package imapd

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"decimail/server/store"
)

// synthThreadItems are n messages shaped like the bench corpus
// (bench/corpus.go): 40% replies to one of the last 60 messages, with
// References and In-Reply-To, the others new threads.
func synthThreadItems(n int, seed uint64) []*sortItem {
	r := rand.New(rand.NewPCG(seed, 1))
	type sent struct {
		id, subj string
		refs     []string
	}
	var recent []sent
	day := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	items := make([]*sortItem, n)
	for i := range n {
		m := &store.SortMsg{UID: uint32(i + 1), Arrival: day.Add(time.Duration(i) * time.Minute)}
		m.Sent = m.Arrival.Add(-time.Duration(r.IntN(3600)) * time.Second)
		m.MsgID = fmt.Sprintf("<%d.%x@example.net>", i, r.Uint32())
		if len(recent) > 0 && r.IntN(100) < 40 {
			p := recent[r.IntN(len(recent))]
			m.Subject, m.Reply = p.subj, true
			m.Refs = append(append([]string{}, p.refs...), p.id)
			if len(m.Refs) > 10 {
				m.Refs = append(m.Refs[:1], m.Refs[len(m.Refs)-9:]...)
			}
			m.InReply = p.id
		} else {
			m.Subject = strings.Repeat(string(rune('a'+r.IntN(26))), 1+r.IntN(3)) + fmt.Sprint(r.IntN(5000))
		}
		recent = append(recent, sent{m.MsgID, m.Subject, m.Refs})
		if len(recent) > 60 {
			recent = recent[1:]
		}
		items[i] = &sortItem{SortMsg: m, UID: m.UID, seq: m.UID}
	}
	return items
}

func BenchmarkThreadReferences100k(b *testing.B) {
	items := synthThreadItems(100_000, 1)
	b.ResetTimer()
	for range b.N {
		threadReferencesOnce(items)
	}
}

func threadInputs(items []*sortItem) ([]*store.SortMsg, []uint32) {
	ks := make([]*store.SortMsg, len(items))
	uids := make([]uint32, len(items))
	for j, m := range items {
		ks[j], uids[j] = m.SortMsg, m.UID
	}
	return ks, uids
}

// BenchmarkThreadState100k: a kept threading of 100,000 messages made
// from scratch, updated with one new message, and written out.
func BenchmarkThreadState100k(b *testing.B) {
	items := synthThreadItems(100_001, 1)
	ks, uids := threadInputs(items)
	b.Run("build", func(b *testing.B) {
		for range b.N {
			newThreadState().add(ks, uids)
		}
	})
	b.Run("add1", func(b *testing.B) {
		for range b.N {
			b.StopTimer()
			st := newThreadState()
			st.add(ks[:100_000], uids[:100_000])
			b.StartTimer()
			st.add(ks[100_000:], uids[100_000:])
		}
	})
	b.Run("write", func(b *testing.B) {
		st := newThreadState()
		st.add(ks, uids)
		buf := make([]byte, 0, 1<<20)
		b.ResetTimer()
		for range b.N {
			buf = st.write(buf[:0], uids)
		}
	})
}
