// Package bench holds Decimail's benchmarks and the side-by-side comparison
// with Dovecot: a deterministic corpus generator, loaders (through the store,
// or over IMAP APPEND into any server), a small raw IMAP client that times
// commands precisely, private server targets (ours on a fresh database,
// a private Dovecot) and the measurements both are put through.
//
// Everything here is test tooling: nothing in server/ imports it.
package bench

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"mime"
	"mime/quotedprintable"
	"strings"
	"time"
)

// Message is one corpus message with the metadata a loader needs.
type Message struct {
	Raw                     []byte // CRLF line endings
	Date                    time.Time
	Seen, Flagged, Answered bool
}

// FlagList is the message's flags as an IMAP parenthesised list.
func (m *Message) FlagList() string {
	var f []string
	if m.Seen {
		f = append(f, `\Seen`)
	}
	if m.Answered {
		f = append(f, `\Answered`)
	}
	if m.Flagged {
		f = append(f, `\Flagged`)
	}
	return "(" + strings.Join(f, " ") + ")"
}

// MarkerWords each appear (in the body, sometimes the subject) of about 1% of
// the messages, so `SEARCH TEXT word` hits ~1%. They contain q, x or z, which
// the filler vocabulary never does, so substring matches stay exact.
var MarkerWords = []string{"quokka", "zeppelin", "xylophone", "quasar", "zircon", "oxbow", "quetzal", "zigzag",
	"lynx", "kazoo", "quince", "fjordquake", "zephyr", "quixote", "sphinx", "vortex", "waltz", "jukebox"}

// CorpusStart and CorpusEnd bound the messages' dates (two years).
var (
	CorpusStart = time.Date(2024, 11, 1, 0, 0, 0, 0, time.UTC)
	CorpusEnd   = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
)

// Corpus generates n messages deterministically from seed, in date order.
func Corpus(n int, seed uint64) []Message {
	g := newGen(seed)
	out := make([]Message, n)
	span := CorpusEnd.Sub(CorpusStart)
	for i := range out {
		// Even spread with jitter, kept monotonic (arrival order = date order).
		at := CorpusStart.Add(time.Duration(float64(span) * (float64(i) + g.r.Float64()*0.9) / float64(n)))
		out[i] = g.message(i, at.Truncate(time.Second))
	}
	return out
}

// WriteMbox writes messages as an mboxrd file (LF line endings, ">From " quoted).
func WriteMbox(w io.Writer, msgs []Message) error {
	for _, m := range msgs {
		if _, err := fmt.Fprintf(w, "From MAILER-DAEMON %s\n", m.Date.UTC().Format(time.ANSIC)); err != nil {
			return err
		}
		body := bytes.ReplaceAll(m.Raw, []byte("\r\n"), []byte("\n"))
		for _, line := range bytes.SplitAfter(body, []byte("\n")) {
			if bytes.HasPrefix(bytes.TrimLeft(line, ">"), []byte("From ")) {
				if _, err := w.Write([]byte(">")); err != nil {
					return err
				}
			}
			if _, err := w.Write(line); err != nil {
				return err
			}
		}
		if _, err := w.Write([]byte("\n")); err != nil {
			return err
		}
	}
	return nil
}

type person struct{ name, addr string }

type list struct{ id, addr, name string }

type sent struct {
	msgID, subject string
	refs           []string
	from           person
}

type gen struct {
	r      *rand.Rand
	vocab  []string
	zipf   *rand.Zipf
	people []person
	lists  []list
	recent []sent // candidates for replies
}

var syllables = strings.Fields("ba be bi bo bu da de di do du fa fe fi fo fu ga ge go gu ha he hi ho hu ka ke ki ko ku " +
	"la le li lo lu ma me mi mo mu na ne ni no nu pa pe pi po pu ra re ri ro ru sa se si so su ta te ti to tu va ve vi vo " +
	"wa we wi an en in on ar er ir or al el il ol st tr pr gr bl cl ch sh th")

var firstNames = []string{"Alice", "Bob", "Carol", "David", "Erin", "Frank", "Grace", "Heidi", "Ivan", "Judy", "Mallory",
	"Niaj", "Olivia", "Peggy", "Rupert", "Sybil", "Trent", "Victor", "Walter", "Jürgen", "Zoë", "François", "Søren",
	"José", "Björk", "Łukasz", "Ølaf", "Małgorzata", "Renée", "Dmitri"}

var lastNames = []string{"Smith", "Jones", "Müller", "García", "Nakamura", "Dubois", "Kowalski", "O'Brien", "Nguyen",
	"Andersson", "Rossi", "Novák", "Petrov", "Schmidt", "Fernández", "Ivanova", "Hansen", "Costa"}

var nonASCII = []string{
	"Grüße aus München, die Bücher sind endlich da. Schöne Woche!",
	"Voilà le résumé de la réunion : élèves, café, déjà vu, naïve façade.",
	"Здравствуйте! Отчёт за квартал готов, посмотрите, пожалуйста.",
	"お疲れ様です。資料を添付しましたのでご確認ください。",
	"Ζωή καλή, ευχαριστώ για το μήνυμα.",
	"Hej! Vi ses på fredag, så tar vi en fika på kaféet vid ån.",
}

func newGen(seed uint64) *gen {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	g := &gen{r: r}
	seen := map[string]bool{}
	for len(g.vocab) < 3000 {
		n := 1 + r.IntN(3)
		var b strings.Builder
		for range n {
			b.WriteString(syllables[r.IntN(len(syllables))])
		}
		if w := b.String(); !seen[w] {
			seen[w] = true
			g.vocab = append(g.vocab, w)
		}
	}
	g.zipf = rand.NewZipf(r, 1.1, 2, uint64(len(g.vocab)-1))
	domains := []string{"example.com", "example.org", "mail.example.net", "corp.example", "uni.example.edu", "gmail.example"}
	for i := range 400 {
		fn, ln := firstNames[r.IntN(len(firstNames))], lastNames[r.IntN(len(lastNames))]
		local := strings.ToLower(asciiFold(fn)) + "." + strings.ToLower(asciiFold(ln))
		g.people = append(g.people, person{fn + " " + ln, fmt.Sprintf("%s%d@%s", local, i, domains[r.IntN(len(domains))])})
	}
	for _, l := range []string{"golang-nuts", "postgres-hackers", "dovecot", "debian-devel", "ietf-imap", "bike-club"} {
		g.lists = append(g.lists, list{l + ".lists.example.org", l + "@lists.example.org", l})
	}
	return g
}

func asciiFold(s string) string {
	var b strings.Builder
	for _, c := range s {
		switch {
		case c < 128 && c != '\'':
			b.WriteRune(c)
		case c == '\'':
		default:
			b.WriteByte('x')
		}
	}
	return b.String()
}

func (g *gen) word() string { return g.vocab[g.zipf.Uint64()] }

func (g *gen) sentence() string {
	n := 5 + g.r.IntN(12)
	ws := make([]string, n)
	for i := range ws {
		ws[i] = g.word()
	}
	s := strings.Join(ws, " ")
	return strings.ToUpper(s[:1]) + s[1:] + "."
}

// text returns about size bytes of paragraphs, wrapped at 72 columns.
func (g *gen) text(size int, markers []string, nonASCIILine bool) string {
	var b strings.Builder
	col := 0
	emit := func(w string) {
		if col+len(w)+1 > 72 {
			b.WriteString("\r\n")
			col = 0
		} else if col > 0 {
			b.WriteByte(' ')
			col++
		}
		b.WriteString(w)
		col += len(w)
	}
	if nonASCIILine {
		b.WriteString(nonASCII[g.r.IntN(len(nonASCII))] + "\r\n\r\n")
	}
	for b.Len() < size {
		for _, w := range strings.Fields(g.sentence()) {
			emit(w)
		}
		if len(markers) > 0 && g.r.IntN(3) == 0 {
			emit(markers[0])
			markers = markers[1:]
		}
		if g.r.IntN(6) == 0 {
			b.WriteString("\r\n\r\n")
			col = 0
		}
	}
	for _, m := range markers {
		emit(m)
	}
	b.WriteString("\r\n")
	return b.String()
}

// logNormal returns exp(N(ln median, sigma)) clamped to [lo, hi].
func (g *gen) logNormal(median, sigma float64, lo, hi int) int {
	v := int(median * math.Exp(g.r.NormFloat64()*sigma))
	return min(max(v, lo), hi)
}

func (g *gen) message(i int, date time.Time) Message {
	r := g.r
	from := g.people[r.IntN(len(g.people))]
	to := person{"Bench User", "u@bench.test"}
	var markers []string
	for _, w := range MarkerWords {
		if r.IntN(100) == 0 {
			markers = append(markers, w)
		}
	}
	msgID := fmt.Sprintf("<%d.%x@%s>", i, r.Uint32(), strings.SplitN(from.addr, "@", 2)[1])
	var subject string
	var refs []string
	var inReplyTo string
	if len(g.recent) > 0 && r.IntN(100) < 40 {
		p := g.recent[r.IntN(len(g.recent))]
		subject = p.subject
		if !strings.HasPrefix(subject, "Re: ") {
			subject = "Re: " + subject
		}
		refs = append(append([]string{}, p.refs...), p.msgID)
		if len(refs) > 10 {
			refs = append(refs[:1], refs[len(refs)-9:]...)
		}
		inReplyTo = p.msgID
	} else {
		ws := make([]string, 3+r.IntN(6))
		for j := range ws {
			ws[j] = g.word()
		}
		if len(markers) > 0 && r.IntN(4) == 0 {
			ws[len(ws)-1] = markers[0]
		}
		subject = strings.ToUpper(ws[0][:1]) + strings.Join(ws, " ")[1:]
		if r.IntN(8) == 0 {
			subject += " — " + []string{"Grüße", "résumé", "Überblick", "café", "naïve", "ご確認"}[r.IntN(6)]
		}
	}
	g.recent = append(g.recent, sent{msgID, subject, refs, from})
	if len(g.recent) > 60 {
		g.recent = g.recent[1:]
	}
	var lst *list
	if r.IntN(100) < 30 {
		lst = &g.lists[r.IntN(len(g.lists))]
		to = person{lst.name, lst.addr}
	}

	var h strings.Builder
	hdr := func(k, v string) { h.WriteString(k + ": " + v + "\r\n") }
	// Received chain and a DKIM signature: real mail carries 1.5-4 KB of header.
	for j := 2 + r.IntN(3); j > 0; j-- {
		hdr("Received", fmt.Sprintf("from mx%d.%s (mx%d.%s [192.0.2.%d])\r\n\tby mail.bench.test (Decimail) with ESMTPS id %x\r\n\tfor <u@bench.test>; %s",
			j, "example.net", j, "example.net", r.IntN(250)+1, r.Uint64(), date.Add(-time.Duration(j)*time.Second).Format(time.RFC1123Z)))
	}
	sig := make([]byte, 256)
	for j := range sig {
		sig[j] = byte(r.Uint32())
	}
	bh := base64.StdEncoding.EncodeToString(sig)
	hdr("DKIM-Signature", "v=1; a=rsa-sha256; c=relaxed/relaxed; d="+strings.SplitN(from.addr, "@", 2)[1]+"; s=sel1;\r\n\th=from:to:subject:date:message-id; bh="+bh[:44]+";\r\n\tb="+wrapB64(bh, 70, "\t"))
	hdr("Date", date.In(time.FixedZone("", (r.IntN(25)-12)*3600)).Format(time.RFC1123Z))
	hdr("From", mime.QEncoding.Encode("utf-8", from.name)+" <"+from.addr+">")
	hdr("To", mime.QEncoding.Encode("utf-8", to.name)+" <"+to.addr+">")
	if r.IntN(5) == 0 {
		cc := g.people[r.IntN(len(g.people))]
		hdr("Cc", mime.QEncoding.Encode("utf-8", cc.name)+" <"+cc.addr+">")
	}
	enc := mime.QEncoding
	if r.IntN(2) == 0 {
		enc = mime.BEncoding
	}
	if r.IntN(10) == 0 || !isASCII(subject) {
		hdr("Subject", enc.Encode("utf-8", subject)) // RFC 2047
	} else {
		hdr("Subject", subject)
	}
	hdr("Message-ID", msgID)
	if inReplyTo != "" {
		hdr("In-Reply-To", inReplyTo)
		hdr("References", strings.Join(refs, "\r\n "))
	}
	if lst != nil {
		hdr("List-Id", fmt.Sprintf("%s <%s>", lst.name, lst.id))
		hdr("List-Unsubscribe", "<mailto:"+lst.name+"-unsubscribe@lists.example.org>")
		hdr("List-Archive", "<https://lists.example.org/archive/"+lst.name+">")
		hdr("Precedence", "list")
	}
	hdr("X-Mailer", []string{"Thunderbird 128.3", "Apple Mail (2.3774)", "Mutt/2.2.12", "Outlook 16.0"}[r.IntN(4)])
	hdr("MIME-Version", "1.0")

	textSize := g.logNormal(4300, 0.9, 120, 200_000)
	utf := r.IntN(100) < 15
	body := g.text(textSize, markers, utf)
	if inReplyTo != "" {
		body = "On an earlier day someone wrote:\r\n> " + g.sentence() + "\r\n\r\n" + body
	}
	plain := func() string {
		if utf {
			var b bytes.Buffer
			q := quotedprintable.NewWriter(&b)
			q.Write([]byte(strings.ReplaceAll(body, "\r\n", "\n")))
			q.Close()
			return "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" +
				strings.ReplaceAll(strings.ReplaceAll(b.String(), "\r\n", "\n"), "\n", "\r\n")
		}
		return "Content-Type: text/plain; charset=us-ascii; format=flowed\r\nContent-Transfer-Encoding: 7bit\r\n\r\n" + body
	}
	html := func() string {
		var b strings.Builder
		b.WriteString("Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n<html><body>\r\n")
		for _, p := range strings.Split(body, "\r\n\r\n") {
			b.WriteString("<p style=\"margin:0 0 1em 0;font-family:sans-serif\">" + p + "</p>\r\n")
		}
		b.WriteString("</body></html>\r\n")
		return b.String()
	}
	boundary := func() string { return fmt.Sprintf("=_b%016x", r.Uint64()) }
	alt := func() string {
		bd := boundary()
		return "Content-Type: multipart/alternative; boundary=\"" + bd + "\"\r\n\r\n--" + bd + "\r\n" + plain() +
			"\r\n--" + bd + "\r\n" + html() + "\r\n--" + bd + "--\r\n"
	}
	var content string
	switch k := r.IntN(100); {
	case k < 20: // multipart/mixed with a base64 attachment
		bd := boundary()
		inner := plain()
		if r.IntN(2) == 0 {
			inner = alt()
		}
		att := make([]byte, g.logNormal(24_000, 1.1, 2_000, 3_000_000))
		for j := 0; j < len(att); j += 8 {
			v := r.Uint64()
			for k := 0; k < 8 && j+k < len(att); k++ {
				att[j+k] = byte(v >> (8 * k))
			}
		}
		name, ctype := []struct{ n, t string }{{"report.pdf", "application/pdf"}, {"photo.jpg", "image/jpeg"},
			{"Übersicht.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"},
			{"notes.zip", "application/zip"}}[r.IntN(4)].n, ""
		switch {
		case strings.HasSuffix(name, ".pdf"):
			ctype = "application/pdf"
		case strings.HasSuffix(name, ".jpg"):
			ctype = "image/jpeg"
		case strings.HasSuffix(name, ".zip"):
			ctype = "application/zip"
		default:
			ctype = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
		}
		ename := mime.QEncoding.Encode("utf-8", name)
		content = "Content-Type: multipart/mixed; boundary=\"" + bd + "\"\r\n\r\nThis is a multi-part message in MIME format.\r\n--" + bd + "\r\n" +
			inner + "\r\n--" + bd + "\r\nContent-Type: " + ctype + "; name=\"" + ename + "\"\r\nContent-Transfer-Encoding: base64\r\n" +
			"Content-Disposition: attachment; filename=\"" + ename + "\"\r\n\r\n" +
			wrapB64(base64.StdEncoding.EncodeToString(att), 76, "") + "\r\n--" + bd + "--\r\n"
	case k < 45:
		content = alt()
	default:
		content = plain()
	}
	raw := []byte(h.String() + content)
	return Message{
		Raw:      raw,
		Date:     date,
		Seen:     r.IntN(100) < 70,
		Flagged:  r.IntN(100) < 5,
		Answered: r.IntN(100) < 10,
	}
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// wrapB64 breaks s into lines of n characters joined by CRLF + indent.
func wrapB64(s string, n int, indent string) string {
	var b strings.Builder
	for len(s) > n {
		b.WriteString(s[:n] + "\r\n" + indent)
		s = s[n:]
	}
	b.WriteString(s)
	return b.String()
}
