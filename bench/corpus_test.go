package bench

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"decimail/server/message"
)

// TestCorpusShape pins the properties the benchmarks rely on: deterministic,
// median size near 8.8 KB, ~20% attachments, ~1% hits per marker word,
// threads, list mail, flags, and every message parseable.
func TestCorpusShape(t *testing.T) {
	const n = 1000
	a, b := Corpus(n, 7), Corpus(n, 7)
	for i := range a {
		if !bytes.Equal(a[i].Raw, b[i].Raw) || !a[i].Date.Equal(b[i].Date) {
			t.Fatalf("message %d differs between two runs with the same seed", i)
		}
	}
	sizes := make([]int, n)
	var att, alt, list, reply, seen, flagged, enc, marker int
	for i, m := range a {
		sizes[i] = len(m.Raw)
		s := string(m.Raw)
		if strings.Contains(s, "Content-Disposition: attachment") {
			att++
		}
		if strings.Contains(s, "multipart/alternative") {
			alt++
		}
		if strings.Contains(s, "\r\nList-Id: ") {
			list++
		}
		if strings.Contains(s, "\r\nIn-Reply-To: ") {
			reply++
		}
		if strings.Contains(s, "\r\nSubject: =?utf-8?") {
			enc++
		}
		if strings.Contains(strings.ToLower(s), MarkerWords[0]) {
			marker++
		}
		if m.Seen {
			seen++
		}
		if m.Flagged {
			flagged++
		}
		if i > 0 && m.Date.Before(a[i-1].Date) {
			t.Fatalf("message %d is older than its predecessor", i)
		}
		if p := message.Parse(m.Raw); p.Broken {
			t.Fatalf("message %d does not parse:\n%s", i, m.Raw[:min(2000, len(m.Raw))])
		}
	}
	slices.Sort(sizes)
	pct := func(k int) float64 { return 100 * float64(k) / n }
	t.Logf("median %d B, p90 %d B, max %d B; attachments %.1f%%, alternative %.1f%%, list %.1f%%, replies %.1f%%, encoded subjects %.1f%%, %q %.2f%%, seen %.1f%%, flagged %.1f%%",
		sizes[n/2], sizes[n*9/10], sizes[n-1], pct(att), pct(alt), pct(list), pct(reply), pct(enc), MarkerWords[0], pct(marker), pct(seen), pct(flagged))
	check := func(what string, got, lo, hi float64) {
		if got < lo || got > hi {
			t.Errorf("%s = %.2f, want in [%.2f, %.2f]", what, got, lo, hi)
		}
	}
	check("median size", float64(sizes[n/2]), 7000, 10500)
	check("attachments %", pct(att), 16, 24)
	check("marker word hit %", pct(marker), 0.4, 2.5)
	check("seen %", pct(seen), 65, 75)
	check("flagged %", pct(flagged), 3, 7)
	check("list %", pct(list), 25, 35)
	check("replies %", pct(reply), 33, 47)
}
