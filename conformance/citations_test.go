package conformance

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// The citation checker. Code, scenarios and notes cite RFCs by line,
// "rfcNNNN.txt:L", "rfcNNNN.txt:L-M", "rfcNNNN.txt:Lff" (the passage that
// starts at L) or a list "rfcNNNN.txt:L, L2-M2", and by section, "RFC NNNN
// §6.4.5". TestCitations fails when a line number does not point at what the
// comment talks about; TestCitationSections when a section does not exist.
//
// The context of a citation is the comment paragraph it stands in (a code
// line with a trailing comment or a string: that line; a Markdown table row:
// that row; a scenario header: its title, rfc:, covers: and requires:
// lines). The context offers anchors:
//
//   - sections: "§6.4.4", "RFC 3501 section 6.4.4" (a bare "§" belongs to
//     the RFC named last before it), and every section whose heading the
//     context names: all the keywords of "6.4.4.  SEARCH Command" or "3.3.
//     Semantics of MOVE and UID MOVE", or the words of a heading without
//     keywords in a row ("formal syntax");
//   - tokens: UPPERCASE keywords (but OK, NO, BAD, MUST and the like),
//     flags (\Seen), hyphenated identifiers (sequence-set, in any case),
//     single quoted words, and lower-case names of ABNF rules of the cited
//     RFC (astring);
//   - phrases: quoted or backticked text of two words or more ("..." splits
//     one into several).
//
// A citation passes when its lines hold text (not only blank lines or page
// furniture), a range L-M begins a paragraph or a sentence and ends a
// paragraph (or a page), and one anchor verifies:
//
//   - a section, when the cited lines lie in it (or in sections the context
//     names too) and begin at its head, the heading and the paragraph after
//     it (at most headLines lines), or at the head of a subsection, or cover
//     half of it;
//   - a token, when it occurs on the first cited lines: L and up to winSpan
//     more text lines, and winPad text lines before and after them in the
//     same paragraph. A token on more than maxShare of the RFC's text lines
//     (IDLE in RFC 2177) does not count, nor one that is the keyword of a
//     section the lines are in (SEARCH within RFC 3501 §6.4.4): it names it.
//     An ABNF rule name counts only on its definition line;
//   - a phrase, when it occurs in the RFC overlapping those lines.
//
// TestCitationShift measures how much this proves: moved by ten lines, few
// citations still pass.

// citeRe finds a line citation; citeMoreRe continues a list of them.
var (
	citeRe     = regexp.MustCompile(`\brfc(\d+)\.txt:(\d+)(?:-(\d+))?(ff)?`)
	citeMoreRe = regexp.MustCompile(`^,\s*(\d{2,})(?:-(\d+))?(ff)?`)
	// secRefRe finds section citations: "RFC 3501 §6.4.5" (and a bare "§7.1"
	// after it), "rfc2971.txt §3.1", "RFC 5258 section 4".
	secRefRe = regexp.MustCompile(`(?:\b(?:RFC|rfc) ?(\d{3,4})(?:\.txt)?,? *)?(?:§ ?((?:\d+|[A-Z])(?:\.\d+)*)|\b[Ss]ection (\d+(?:\.\d+)*))`)
	// rfcNameRe finds any mention of an RFC, to bind a bare "§6.4.5".
	rfcNameRe = regexp.MustCompile(`\b(?:RFC|rfc) ?(\d{3,4})\b`)
	wordRe    = regexp.MustCompile(`[.\\]?[A-Za-z][A-Za-z0-9]*(?:[.\-][A-Za-z0-9]+)*`)
	quoteRe   = regexp.MustCompile("\"([^\"\n]*)\"|`([^`\n]*)`") // "" pairs too, not to mismatch the quotes after it
)

// The checker's tuning (see TestCitationShift).
const (
	headParas = 1    // paragraphs after a heading that belong to the head of a section
	headLines = 8    // the longest head of a section
	winSpan   = 4    // cited lines after the first where a token may stand
	winPad    = 2    // lines before and after those where a token may stand
	maxShare  = 0.03 // tokens on more than this fraction of an RFC's text lines do not count
)

// keywordStop are upper-case words too common in the RFCs to anchor
// anything.
var keywordStop = map[string]bool{
	"OK": true, "NO": true, "BAD": true, // in the result block of every command
	"MUST": true, "SHOULD": true, "SHALL": true, "MAY": true, "NOT": true, // BCP 14
	"REQUIRED": true, "RECOMMENDED": true, "OPTIONAL": true,
	"RFC": true, "IMAP": true, "IMAP4": true,
}

// isKeyword reports whether w is an upper-case word of two letters or more
// (digits, dots and hyphens allowed: RFC822.SIZE, BODY.PEEK, UTF-8).
func isKeyword(w string) bool {
	letters := 0
	for _, c := range w {
		switch {
		case c >= 'A' && c <= 'Z':
			letters++
		case c >= '0' && c <= '9', c == '.', c == '-':
		default:
			return false
		}
	}
	return letters >= 2
}

// citation is one line citation found in the repository.
type citation struct {
	file     string // path from the repository root
	line     int
	text     string // as written, e.g. "rfcNNNN.txt:L-M", or "L2" in a list
	rfc      string // "rfc3501.txt"
	from, to int
	ff       bool // "Lff": the passage starts at L
	ctx      string
}

func (c citation) String() string { return fmt.Sprintf("%s:%d: %s", c.file, c.line, c.text) }

// repoRoot is the module root as seen from the conformance package.
const repoRoot = ".."

// citedDirs are the directories whose files are checked.
var citedDirs = []string{"server", "conformance", "scenarios"}

// srcFile is one text file of citedDirs.
type srcFile struct {
	path      string // from the repository root
	lines     []string
	scnHeader int // .scn: the number of header lines
}

func readSources(t *testing.T) []*srcFile {
	t.Helper()
	var out []*srcFile
	for _, dir := range citedDirs {
		err := filepath.WalkDir(filepath.Join(repoRoot, dir), func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			if bytes.IndexByte(data, 0) >= 0 {
				return nil // binary
			}
			rel, _ := filepath.Rel(repoRoot, path)
			out = append(out, newSrcFile(filepath.ToSlash(rel), string(data)))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].path < out[j].path })
	return out
}

func newSrcFile(path, data string) *srcFile {
	f := &srcFile{path: path, lines: strings.Split(data, "\n")}
	if strings.HasSuffix(path, ".scn") {
		f.scnHeader = len(f.lines)
		for i, l := range f.lines {
			l = strings.TrimSpace(l)
			if l == "" || strings.HasPrefix(l, "#") {
				continue
			}
			if k, _, ok := strings.Cut(l, ":"); !ok || strings.ContainsAny(k, " <>|") {
				f.scnHeader = i
				break
			}
		}
	}
	return f
}

// context returns the text that a citation on line i (0-based) speaks in.
func (f *srcFile) context(i int) string {
	line := strings.TrimSpace(f.lines[i])
	switch {
	case f.scnHeader > 0 && i < f.scnHeader:
		var b []string
		title := false
		for _, l := range f.lines[:f.scnHeader] {
			l = strings.TrimSpace(l)
			switch {
			case strings.HasPrefix(l, "#") && !title:
				title = true
				b = append(b, l)
			case strings.HasPrefix(l, "rfc:"), strings.HasPrefix(l, "covers:"), strings.HasPrefix(l, "requires:"):
				b = append(b, l)
			}
		}
		return strings.Join(b, "\n")
	case strings.HasPrefix(line, "rfc:"):
		// a scenario header quoted in a test or a README: its block
		return f.block(i, func(l string) bool { return l != "" })
	case strings.HasPrefix(line, "//"):
		return f.block(i, commentLine("//"))
	case strings.HasPrefix(line, "#") && f.scnHeader > 0:
		return f.block(i, commentLine("#"))
	case strings.HasSuffix(f.path, ".go"), strings.HasPrefix(line, "|"):
		return line
	default:
		return f.block(i, func(l string) bool { return l != "" })
	}
}

// commentLine matches the non-empty comment lines with the given marker.
func commentLine(marker string) func(string) bool {
	return func(l string) bool {
		rest, ok := strings.CutPrefix(l, marker)
		return ok && strings.TrimSpace(rest) != ""
	}
}

// block joins the run of lines around i (trimmed) that satisfy in.
func (f *srcFile) block(i int, in func(string) bool) string {
	a, b := i, i
	for a > 0 && in(strings.TrimSpace(f.lines[a-1])) {
		a--
	}
	for b+1 < len(f.lines) && in(strings.TrimSpace(f.lines[b+1])) {
		b++
	}
	var out []string
	for _, l := range f.lines[a : b+1] {
		out = append(out, strings.TrimSpace(l))
	}
	return strings.Join(out, "\n")
}

// citations returns the line citations of f.
func (f *srcFile) citations() []citation {
	var out []citation
	for i, l := range f.lines {
		for _, m := range citeRe.FindAllStringSubmatchIndex(l, -1) {
			rfc := "rfc" + l[m[2]:m[3]] + ".txt"
			add := func(text, from, to string, ff bool) {
				c := citation{file: f.path, line: i + 1, text: text, rfc: rfc, ctx: f.context(i)}
				c.from, _ = strconv.Atoi(from)
				c.to = c.from
				if to != "" {
					c.to, _ = strconv.Atoi(to)
				}
				c.ff = ff
				out = append(out, c)
			}
			sub := func(k int) string {
				if m[2*k] < 0 {
					return ""
				}
				return l[m[2*k]:m[2*k+1]]
			}
			add(l[m[0]:m[1]], sub(2), sub(3), sub(4) != "")
			rest := l[m[1]:]
			for {
				n := citeMoreRe.FindStringSubmatchIndex(rest)
				if n == nil || (n[1] < len(rest) && isWordByte(rest[n[1]])) {
					break
				}
				s := func(k int) string {
					if n[2*k] < 0 {
						return ""
					}
					return rest[n[2*k]:n[2*k+1]]
				}
				add(rfc+":"+strings.TrimLeft(rest[:n[1]], ", "), s(1), s(2), s(3) != "")
				rest = rest[n[1]:]
			}
		}
	}
	return out
}

func isWordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_'
}

// secRef is a section named in a context: "RFC 3501 §6.4.4" is {"rfc3501.txt", "6.4.4"}.
type secRef struct {
	rfc, num string
	text     string
	pos      int // offset in the text searched
}

// sectionRefs returns the section citations of a text; a bare "§6.4.4" is
// bound to the RFC named last before it (or else first after it) and stays
// unbound (rfc "") when the text names no RFC.
func sectionRefs(text string) []secRef {
	names := rfcNameRe.FindAllStringSubmatchIndex(text, -1)
	var out []secRef
	for _, m := range secRefRe.FindAllStringSubmatchIndex(text, -1) {
		r := secRef{text: strings.TrimSpace(text[m[0]:m[1]]), pos: m[0]}
		if m[4] >= 0 {
			r.num = text[m[4]:m[5]]
		} else {
			r.num = text[m[6]:m[7]]
		}
		switch {
		case m[2] >= 0:
			r.rfc = "rfc" + text[m[2]:m[3]] + ".txt"
		default:
			for _, n := range names {
				if n[0] < m[0] || r.rfc == "" {
					r.rfc = "rfc" + text[n[2]:n[3]] + ".txt"
				}
				if n[0] > m[0] {
					break
				}
			}
		}
		out = append(out, r)
	}
	return out
}

// anchors are what a context offers to verify a citation.
type anchors struct {
	secs    []secRef
	tokens  []string        // matched case-sensitively, whole words (but see fold)
	fold    map[string]bool // tokens matched in any case: hyphenated identifiers (sequence-set, us-ascii)
	lower   []string        // lower-case words: ABNF rule names, checked on their definition
	phrases []string        // lower case, blanks collapsed
	words   map[string]bool // every word as written, for keyword headings
	prose   string          // " w1 w2 ... " the words in lower case without stop words, for other headings
}

func contextAnchors(ctx string) anchors {
	a := anchors{secs: sectionRefs(ctx), words: map[string]bool{}, fold: map[string]bool{}}
	// One line of text: comment markers go, so that a quote may span lines.
	var lines []string
	for _, l := range strings.Split(ctx, "\n") {
		l = strings.TrimSpace(l)
		if rest, ok := strings.CutPrefix(l, "//"); ok {
			l = rest
		} else if rest, ok := strings.CutPrefix(l, "#"); ok {
			l = rest
		}
		lines = append(lines, l)
	}
	plain := citeRe.ReplaceAllString(strings.Join(lines, " "), " ")
	plain = secRefRe.ReplaceAllString(plain, " ")
	addToken := func(w string) {
		if !slices.Contains(a.tokens, w) {
			a.tokens = append(a.tokens, w)
		}
	}
	var prose []string
	for _, w := range wordRe.FindAllString(plain, -1) {
		a.words[w] = true
		if lw := strings.ToLower(w); !titleStop[lw] && len(lw) > 1 {
			prose = append(prose, lw)
		}
		switch {
		case strings.HasPrefix(w, `\`) && len(w) > 2:
			addToken(w)
		case isKeyword(w):
			if !keywordStop[w] {
				addToken(w)
			}
		case strings.Contains(w, "-") && strings.ToLower(w) == w:
			addToken(w)
			a.fold[w] = true
		case strings.ToLower(w) == w && len(w) > 2 && !slices.Contains(a.lower, w):
			a.lower = append(a.lower, w)
		}
	}
	a.prose = " " + strings.Join(prose, " ") + " "
	for _, m := range quoteRe.FindAllStringSubmatch(plain, -1) {
		q := m[1] + m[2]
		for _, part := range strings.Split(strings.ReplaceAll(q, "…", "..."), "...") {
			part = strings.Trim(strings.TrimSpace(part), ".,;:")
			words := strings.Fields(part)
			switch {
			case len(words) == 1 && letters(part) >= 2 && !keywordStop[part]:
				addToken(part)
			case len(words) >= 2 && letters(part) >= 6:
				a.phrases = append(a.phrases, normalize(part))
			}
		}
	}
	return a
}

func letters(s string) int {
	n := 0
	for _, c := range s {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' {
			n++
		}
	}
	return n
}

// normalize lower-cases s and collapses its blanks.
// Double quotes are dropped: the RFCs quote keywords ("SPECIAL-USE") that a
// quoted phrase of a comment cannot.
func normalize(s string) string {
	return strings.ToLower(strings.Join(strings.Fields(strings.ReplaceAll(s, `"`, "")), " "))
}

// names reports whether the context names section s by its heading: all
// its keywords, in any order ("UID MOVE"), or the other words of a heading
// without keywords in a row ("formal syntax", "mailbox naming").
func (a anchors) names(s *rfcSection) bool {
	if len(s.keys) == 0 {
		return false
	}
	if !s.caps {
		return strings.Contains(a.prose, " "+strings.Join(s.keys, " ")+" ")
	}
	for _, k := range s.keys {
		if !a.words[k] {
			return false
		}
	}
	return true
}

// verdict is the outcome of checking one citation.
type verdict struct {
	ok    bool
	by    string   // the anchor that verified it
	why   string   // for a failure
	tried []string // the anchors tried
	first int      // the first and last text line cited
	last  int
}

// check verifies citation c of r (with its lines moved by shift).
func check(r *rfcText, c citation, shift int) verdict {
	from, to := c.from+shift, c.to+shift
	n := r.lineCount()
	if from < 1 || to < from || to > n {
		return verdict{why: fmt.Sprintf("lines %d-%d are outside %s (%d lines)", from, to, r.name, n)}
	}
	v := verdict{first: -1}
	for i := from; i <= to; i++ {
		if r.text[i] {
			if v.first < 0 {
				v.first = i
			}
			v.last = i
		}
	}
	if v.first < 0 {
		v.why = "the cited lines are blank or page furniture"
		return v
	}
	a := contextAnchors(c.ctx)
	l, m := v.first, v.last
	if c.ff {
		m = l
	}
	if m > l && !r.paraEnd(m) {
		v.why = fmt.Sprintf("the range ends inside a paragraph (line %d goes on)", m)
		return v
	}
	if m > l && !r.paraStart(l) && !r.sentenceStart(l) {
		v.why = fmt.Sprintf("the range starts inside a sentence (line %d goes on from above)", l)
		return v
	}

	// Sections.
	var secs []*rfcSection
	for _, ref := range a.secs {
		if ref.rfc != r.name {
			continue
		}
		if s := r.num[ref.num]; s != nil && !slices.Contains(secs, s) {
			secs = append(secs, s)
		}
	}
	for _, s := range r.secs {
		if a.names(s) && !slices.Contains(secs, s) {
			secs = append(secs, s)
		}
	}
	for _, s := range secs {
		v.tried = append(v.tried, s.String())
	}
	if s := sectionsHold(r, secs, l, m); s != nil {
		v.ok, v.by = true, s.String()
		return v
	}

	// Tokens, rule names and phrases in the first lines cited.
	win := window(r, l, m, c.ff)
	subject := map[string]bool{} // the keywords of the sections the lines are in
	for i := l; i <= m; i++ {
		if !r.text[i] || i > l && r.section(i) == r.section(i-1) {
			continue
		}
		for _, s := range r.within(i) {
			if s.caps {
				for _, k := range s.keys {
					subject[k] = true
				}
			}
		}
	}
	for _, tok := range a.tokens {
		if subject[tok] || r.share(tok, a.fold[tok]) > maxShare {
			continue
		}
		v.tried = append(v.tried, tok)
		for _, i := range win {
			if occurs(r.lines[i], tok, a.fold[tok]) {
				v.ok, v.by = true, tok
				return v
			}
		}
	}
	for _, w := range a.lower {
		defs := r.abnf[w]
		if len(defs) == 0 {
			continue
		}
		v.tried = append(v.tried, w+" (ABNF)")
		for _, d := range defs {
			if slices.Contains(win, d) {
				v.ok, v.by = true, w+" (ABNF)"
				return v
			}
		}
	}
	for _, p := range a.phrases {
		v.tried = append(v.tried, strconv.Quote(p))
		if r.phraseAt(p, win[0], win[len(win)-1]) {
			v.ok, v.by = true, strconv.Quote(p)
			return v
		}
	}
	v.why = "no anchor of the context is found there"
	return v
}

// sectionsHold returns the section of secs that text lines l..m begin in
// when they lie in secs (a range may run on into the next section only if
// the context names that one too) and begin at the head of that section or
// of one of its subsections, or cover half of it.
func sectionsHold(r *rfcText, secs []*rfcSection, l, m int) *rfcSection {
	in := func(i int) bool {
		for _, s := range secs {
			if i >= s.from && i <= s.end {
				return true
			}
		}
		return false
	}
	for i := l; i <= m; i++ {
		if r.text[i] && !in(i) {
			return nil
		}
	}
	for _, s := range secs {
		if l < s.from || l > s.end {
			continue
		}
		if 2*(min(m, s.end)-l+1) >= s.end-s.from+1 {
			return s
		}
		for _, t := range r.secs {
			if t.from >= s.from && t.from <= s.end && l >= t.from && l <= t.head {
				return s
			}
		}
	}
	return nil
}

// window returns the text lines a token of a citation of l..m may stand on,
// counted in text lines (page furniture does not count): the cited lines
// from l, at most 1+winSpan of them ("Lff" counts as L and the winSpan lines
// after it), and winPad lines before and after them in the same paragraph.
func window(r *rfcText, l, m int, ff bool) []int {
	var out []int
	for i, k := l-1, 0; i >= 1 && k < winPad; i-- {
		if r.text[i] {
			if r.para[i] != r.para[l] {
				break
			}
			out = append([]int{i}, out...)
			k++
		}
	}
	i, k := l, 0 // the cited lines: l and up to winSpan more
	for ; i <= r.lineCount() && k <= winSpan && (i <= m || ff); i++ {
		if r.text[i] {
			out = append(out, i)
			k++
		}
	}
	last := out[len(out)-1]
	for k = 0; i <= r.lineCount() && k < winPad; i++ { // and winPad lines after them
		if !r.text[i] {
			continue
		}
		if r.para[i] != r.para[last] {
			break
		}
		out = append(out, i)
		k++
	}
	return out
}

// occurs reports whether tok occurs in line as a whole word, in any case if
// fold.
func occurs(line, tok string, fold bool) bool {
	if fold {
		return containsWord(strings.ToLower(line), tok)
	}
	return containsWord(line, tok)
}

// containsWord reports whether tok occurs in line as a whole word.
func containsWord(line, tok string) bool {
	for off := 0; ; {
		i := strings.Index(line[off:], tok)
		if i < 0 {
			return false
		}
		i += off
		j := i + len(tok)
		before := i == 0 || !isTokByte(line[i-1])
		after := j == len(line) || !isTokByte(line[j]) ||
			line[j] == '.' && (j+1 == len(line) || !isWordByte(line[j+1])) // "FETCH." ends a sentence
		if before && after {
			return true
		}
		off = i + 1
	}
}

func isTokByte(c byte) bool { return isWordByte(c) || c == '-' || c == '.' || c == '\\' }

// phraseAt reports whether phrase p occurs in r on text that overlaps lines
// lo..hi.
func (r *rfcText) phraseAt(p string, lo, hi int) bool {
	var b strings.Builder
	var at []int // at[k]: the line of byte k of b
	for i := max(1, lo-10); i <= min(r.lineCount(), hi+10); i++ {
		if !r.text[i] {
			continue
		}
		s := normalize(strings.TrimLeft(r.lines[i], " ;")) + " " // ";" continues an ABNF comment
		b.WriteString(s)
		for range len(s) {
			at = append(at, i)
		}
	}
	text := b.String()
	for off := 0; ; {
		k := strings.Index(text[off:], p)
		if k < 0 {
			return false
		}
		k += off
		if at[k] <= hi && at[k+len(p)-1] >= lo {
			return true
		}
		off = k + 1
	}
}

// describe renders the cited lines for a failure message.
func describe(r *rfcText, c citation, v verdict) string {
	var b strings.Builder
	from, to := max(1, c.from), min(r.lineCount(), c.to)
	shown := 0
	for i := from; i <= to && shown < 4; i++ {
		if r.text[i] {
			fmt.Fprintf(&b, "\n\t\t%s:%d |%s", r.name, i, r.lines[i])
			shown++
		}
	}
	if s := r.section(max(1, min(from, r.lineCount()))); s != nil {
		fmt.Fprintf(&b, "\n\tin %s (lines %d-%d)", s, s.from, s.to)
	}
	tried := "none"
	if len(v.tried) > 0 {
		tried = strings.Join(v.tried, ", ")
	}
	fmt.Fprintf(&b, "\n\tanchors tried: %s\n\tcontext: %q", tried, c.ctx)
	return b.String()
}

// allCitations returns every line citation of the repository.
func allCitations(t *testing.T) []citation {
	var out []citation
	for _, f := range readSources(t) {
		out = append(out, f.citations()...)
	}
	return out
}

func haveRFCDir(t *testing.T) {
	if _, err := os.Stat(rfcDir); err != nil {
		t.Skipf("%s not found: citations not checked", rfcDir)
	}
}

// TestCitations checks every line citation in server/, conformance/ and
// scenarios/ against the RFC texts (see the rule at the top of this file).
func TestCitations(t *testing.T) {
	haveRFCDir(t)
	cites := allCitations(t)
	failed := 0
	for _, c := range cites {
		r, err := loadRFC(c.rfc)
		if err != nil {
			t.Errorf("%s: %v", c, err)
			failed++
			continue
		}
		if v := check(r, c, 0); !v.ok {
			t.Errorf("%s: %s%s", c, v.why, describe(r, c, v))
			failed++
		}
	}
	t.Logf("%d line citations checked, %d failed", len(cites), failed)
}

// TestCitationSections checks that every section citation ("RFC 3501
// §6.4.5", a bare "§7.1" after it, "rfc2971.txt §3.1") names a section of an
// RFC in rfcDir.
func TestCitationSections(t *testing.T) {
	haveRFCDir(t)
	checked := 0
	for _, f := range readSources(t) {
		for i, l := range f.lines {
			if !secRefRe.MatchString(l) {
				continue
			}
			ctx := f.context(i)
			off := strings.Index(ctx, strings.TrimSpace(l))
			for _, ref := range sectionRefs(ctx) {
				if ref.pos < off || ref.pos >= off+len(strings.TrimSpace(l)) {
					continue // on another line of the context
				}
				if ref.rfc == "" {
					continue
				}
				if why, ok := absentRFCs[ref.rfc]; ok {
					t.Logf("%s:%d: %s not checked: %s", f.path, i+1, ref.text, why)
					continue
				}
				checked++
				r, err := loadRFC(ref.rfc)
				if err != nil {
					t.Errorf("%s:%d: %s: %v", f.path, i+1, ref.text, err)
					continue
				}
				if r.num[ref.num] == nil {
					t.Errorf("%s:%d: %s: %s has no section %s", f.path, i+1, ref.text, ref.rfc, ref.num)
				}
			}
		}
	}
	t.Logf("%d section citations checked", checked)
}

// absentRFCs are RFCs cited by section that rfcDir does not hold.
var absentRFCs = map[string]string{
	"rfc2180.txt": "IMAP4 Multi-Accessed Mailbox Practice",
	"rfc3463.txt": "Enhanced Mail System Status Codes",
	"rfc1035.txt": "Domain Names - Implementation and Specification",
	"rfc5957.txt": "Display-Based Address Sorting for the IMAP4 SORT Extension (SORT=DISPLAY)",
	"rfc6376.txt": "DomainKeys Identified Mail (DKIM) Signatures",
	"rfc7889.txt": "The IMAP APPENDLIMIT Extension",
	"rfc3516.txt": "IMAP4 Binary Content Extension (BINARY; RFC 9051 §6.4.5 includes it)",
	"rfc5092.txt": "IMAP URL Scheme (CATENATE's URLs)",
	"rfc5802.txt": "Salted Challenge Response Authentication Mechanism (SCRAM)",
	"rfc7677.txt": "SCRAM-SHA-256 and SCRAM-SHA-256-PLUS SASL Mechanisms",
	"rfc9266.txt": "Channel Bindings for TLS 1.3 (tls-exporter)",
	"rfc4013.txt": "SASLprep: Stringprep Profile for User Names and Passwords",
}

// TestCitationShift measures how strict the checker is: every citation that
// passes is moved by -10 and +10 lines, and at most a small fraction of the
// moved citations may still pass.
func TestCitationShift(t *testing.T) {
	haveRFCDir(t)
	ok, still := 0, 0
	for _, c := range allCitations(t) {
		r, err := loadRFC(c.rfc)
		if err != nil || !check(r, c, 0).ok {
			continue
		}
		for _, d := range []int{-10, 10} {
			ok++
			if v := check(r, c, d); v.ok {
				still++
				if testing.Verbose() {
					t.Logf("%s%+d still passes (by %s)", c, d, v.by)
				}
			}
		}
	}
	frac := float64(still) / float64(max(ok, 1))
	t.Logf("shifted by ±10: %d of %d citations still pass (%.1f%%)", still, ok, 100*frac)
	if frac > 0.10 {
		t.Errorf("%.1f%% of the citations shifted by ±10 lines still pass: the checker is too lenient", 100*frac)
	}
}

// TestCitationMutation pins the checker's point on real citations: each
// passes as written and fails when its line number is moved by ten.
func TestCitationMutation(t *testing.T) {
	haveRFCDir(t)
	for _, tc := range []struct {
		file, on string // the cited line holds on
		shifts   []int
	}{
		{"server/imapd/misc.go", "// CAPABILITY, rfc", []int{-10, 10}},
		{"server/imapd/misc.go", "// LOGOUT, rfc", []int{-10}},
		{"server/query/compile.go", `case "RECENT": // rfc`, []int{10}},
		{"server/query/compile.go", `case "NEW": // rfc`, []int{-10, 10}},
		{"server/imapd/auth.go", "// LOGIN, rfc", []int{-10, 10}},
	} {
		data, err := os.ReadFile(filepath.Join(repoRoot, tc.file))
		if err != nil {
			t.Fatal(err)
		}
		var found []citation
		for _, c := range newSrcFile(tc.file, string(data)).citations() {
			if strings.Contains(strings.Split(string(data), "\n")[c.line-1], tc.on) {
				found = append(found, c)
			}
		}
		if len(found) != 1 {
			t.Fatalf("%s: %d citations on a line with %q, want 1", tc.file, len(found), tc.on)
		}
		c := found[0]
		r, err := loadRFC(c.rfc)
		if err != nil {
			t.Fatal(err)
		}
		if v := check(r, c, 0); !v.ok {
			t.Errorf("%s: %s%s", c, v.why, describe(r, c, v))
		}
		for _, d := range tc.shifts {
			if v := check(r, c, d); v.ok {
				t.Errorf("%s moved by %+d still passes (by %s)", c, d, v.by)
			}
		}
	}
}

// TestCitationRules checks each rule of the checker on RFC 3501 and RFC 2177.
func TestCitationRules(t *testing.T) {
	haveRFCDir(t)
	for _, tc := range []struct {
		ctx      string
		rfc      int
		from, to int
		ff, want bool
	}{
		{"// CAPABILITY, rfc3501", 3501, 1300, 1300, false, true},  // the section's heading
		{"// CAPABILITY, rfc3501", 3501, 1296, 1296, false, false}, // a blank line before it
		{"// CAPABILITY, rfc3501", 3501, 1310, 1310, false, false}, // in the section, past its head
		{"// LOGOUT", 3501, 1402, 1402, false, false},              // the page footer before it
		{`case "RECENT": //`, 3501, 2878, 2878, false, true},
		{`case "RECENT": //`, 3501, 2888, 2888, false, false},
		{"// SEARCH keys", 3501, 2800, 2810, false, false}, // SEARCH names §6.4.4, the range is deep in it
		// ranges: a paragraph (or sentence) start, a paragraph end
		{"// substring, case-insensitive", 3501, 2776, 2778, false, true},
		{"// substring, case-insensitive", 3501, 2776, 2777, false, false},
		{`// EXAMINE: "No changes to the permanent state"`, 3501, 1870, 1872, false, true},
		{`// EXAMINE: "No changes to the permanent state"`, 3501, 1869, 1872, false, false},
		{`// "No changes to the permanent state"`, 3501, 1880, 1880, false, false},
		// sections by number and by heading
		{"# SELECT INBOX (RFC 3501 §6.3.1)", 3501, 1743, 1854, false, true},
		{"# SELECT INBOX (RFC 3501 §6.3.1)", 3501, 1753, 1864, false, false},
		{"// Grammar: (§9), rfc3501", 3501, 4487, 4487, true, true},
		{"// the formal syntax of RFC 3501", 3501, 4487, 4487, true, true},
		{"// the syntax of RFC 3501", 3501, 4487, 4487, true, false},
		// ABNF rule names on their definition
		{"// an astring argument", 3501, 4550, 4550, false, true},
		{"// an astring argument", 3501, 4560, 4560, false, false},
		// IDLE is on a fifth of RFC 2177's lines: it anchors nothing there
		{"// IDLE ends with DONE", 2177, 85, 85, false, false},
		{`// "terminated by the receipt of a DONE continuation"`, 2177, 85, 85, false, true},
	} {
		r, err := loadRFC(fmt.Sprintf("rfc%d.txt", tc.rfc))
		if err != nil {
			t.Fatal(err)
		}
		c := citation{file: "test", rfc: r.name, from: tc.from, to: tc.to, ff: tc.ff, ctx: tc.ctx,
			text: fmt.Sprintf("%s %d-%d", r.name, tc.from, tc.to)}
		if v := check(r, c, 0); v.ok != tc.want {
			t.Errorf("%q at %s: ok=%v (%s%s), want %v", tc.ctx, c.text, v.ok, v.by, v.why, tc.want)
		}
	}
}

// TestCitationParse checks how citations and their contexts are read.
func TestCitationParse(t *testing.T) {
	const cite = "rfc3501" + ".txt:" // not a citation of this file
	f := newSrcFile("x.go", "package x\n"+
		"// Recent is RECENT, NEW or OLD ("+cite+"2851, 2866, 2878); and\n"+
		"// CHILDINFO ("+cite+"526, example 9), grammar "+cite+"4533ff, "+cite+"4749-4755.\n"+
		"//\n"+
		"x := 1 // "+cite+"2878\n")
	var got []string
	for _, c := range f.citations() {
		got = append(got, fmt.Sprintf("%d:%d-%d:%v", c.line, c.from, c.to, c.ff))
	}
	want := []string{"2:2851-2851:false", "2:2866-2866:false", "2:2878-2878:false",
		"3:526-526:false", "3:4533-4533:true", "3:4749-4755:false", "5:2878-2878:false"}
	if !slices.Equal(got, want) {
		t.Errorf("citations = %v, want %v", got, want)
	}
	if ctx := f.context(1); !strings.Contains(ctx, "CHILDINFO") || strings.Contains(ctx, "x := 1") {
		t.Errorf("context of a comment line = %q, want its comment paragraph", ctx)
	}
	if ctx := f.context(4); ctx != "x := 1 // "+cite+"2878" {
		t.Errorf("context of a code line = %q, want the line", ctx)
	}
	scn := newSrcFile("s.scn", "# Title (RFC 3501 §6.3.1)\nrfc: "+cite+"1743-1854\nfixture: basic\ncovers: command=SELECT\n\nc1> a1 NOOP\n# body\n")
	if ctx := scn.context(1); ctx != "# Title (RFC 3501 §6.3.1)\nrfc: "+cite+"1743-1854\ncovers: command=SELECT" {
		t.Errorf("scenario header context = %q", ctx)
	}
	refs := sectionRefs("see RFC 5258 §3.1 and §4, rfc2971.txt §3.2, §9")
	var secs []string
	for _, r := range refs {
		secs = append(secs, r.rfc+" "+r.num)
	}
	if want := []string{"rfc5258.txt 3.1", "rfc5258.txt 4", "rfc2971.txt 3.2", "rfc2971.txt 9"}; !slices.Equal(secs, want) {
		t.Errorf("sectionRefs = %v, want %v", secs, want)
	}
}
