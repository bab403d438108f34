package conformance

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
)

// rfcText is one RFC of rfcDir as the citation checker sees it: its lines,
// which of them are text (not blank, not page furniture), the paragraphs, the
// sections and the ABNF rules it defines. Line numbers are 1-based, as cited.
type rfcText struct {
	name      string   // "rfc3501.txt"
	lines     []string // lines[0] is unused, lines[1] is line 1
	text      []bool   // text[n]: line n is neither blank nor page furniture
	furniture []bool   // furniture[n]: line n is a page footer, form feed or page header
	para      []int    // para[n]: paragraph of text line n (0 for other lines)
	secs      []*rfcSection
	secAt     []int                  // secAt[n]: index in secs of the innermost section holding line n, -1 before the first
	abnf      map[string][]int       // rule name -> lines defining it ("name = ..." / "name ::= ...")
	num       map[string]*rfcSection // section number -> section

	mu     sync.Mutex
	ntext  int                // number of text lines
	shares map[string]float64 // see share
}

// rfcSection is one heading of an RFC: "6.4.4.  SEARCH Command" at column 0,
// "Appendix A.  Examples", "A.1.  ...", or an unnumbered heading such as
// "Abstract" (num "").
type rfcSection struct {
	num, title string
	from       int      // the heading line
	to         int      // the last line before the next heading of any level
	end        int      // the last line of the section with its subsections
	head       int      // the last line of the heading and the headParas paragraphs after it
	keys       []string // the words that name the section in a comment (see headingKeys)
	caps       bool     // keys are IMAP/SMTP keywords, matched case-sensitively
}

func (s *rfcSection) String() string {
	if s.num == "" {
		return `"` + s.title + `"`
	}
	return "§" + s.num + " " + s.title
}

var (
	// numbered headings: "6.4.4.  SEARCH Command", "A.1     Informative
	// References", "Appendix B.  Compatibility with RFC 2086".
	headingRe = regexp.MustCompile(`^(?:Appendix\s+)?((?:\d+|[A-Z])(?:\.\d+)*)\.?(?:\s+|\s*--\s*)(\S.*)$`)
	// unnumbered headings: "Abstract", "Full Copyright Statement".
	plainHeadingRe = regexp.MustCompile(`^[A-Z][A-Za-z'’,() -]{2,60}$`)
	footerRe       = regexp.MustCompile(`\[Page \d+\]\s*$`)
	abnfRuleRe     = regexp.MustCompile(`^ {0,8}([A-Za-z][A-Za-z0-9_-]*)\s*(?:=/?|::=)(?:\s|$)`)
)

var rfcCache sync.Map // file name -> *rfcText (or error)

// loadRFC reads and indexes rfcDir/name once per test binary.
func loadRFC(name string) (*rfcText, error) {
	if v, ok := rfcCache.Load(name); ok {
		if err, isErr := v.(error); isErr {
			return nil, err
		}
		return v.(*rfcText), nil
	}
	data, err := os.ReadFile(filepath.Join(rfcDir, name))
	if err != nil {
		rfcCache.Store(name, err)
		return nil, err
	}
	r := parseRFC(name, string(data))
	rfcCache.Store(name, r)
	return r, nil
}

// parseRFC indexes the text of an RFC.
func parseRFC(name, data string) *rfcText {
	data = strings.TrimPrefix(data, "\uFEFF")
	r := &rfcText{name: name, lines: append([]string{""}, strings.Split(data, "\n")...),
		abnf: map[string][]int{}, num: map[string]*rfcSection{}}
	n := len(r.lines) - 1
	r.text = make([]bool, n+1)
	r.para = make([]int, n+1)
	r.secAt = make([]int, n+1)

	// Page furniture: the form feed line, the footer "[Page N]" before it
	// and the running header after it.
	r.furniture = make([]bool, n+1)
	furniture := r.furniture
	for i := 1; i <= n; i++ {
		l := strings.TrimRight(r.lines[i], "\r")
		r.lines[i] = l
		switch {
		case strings.Contains(l, "\f"):
			furniture[i] = true
			if i+1 <= n {
				furniture[i+1] = true // the running header
			}
		case footerRe.MatchString(l):
			furniture[i] = true
		}
	}
	for i := 1; i <= n; i++ {
		r.text[i] = !furniture[i] && strings.TrimSpace(r.lines[i]) != ""
	}

	// Sections: headings at column 0, after a blank line or furniture.
	for i := 1; i <= n; i++ {
		r.secAt[i] = len(r.secs) - 1
		l := r.lines[i]
		if !r.text[i] || l[0] == ' ' || strings.Contains(l, "....") {
			continue
		}
		if i > 1 && r.text[i-1] {
			continue // a heading follows a blank line (or the page header)
		}
		var s *rfcSection
		if m := headingRe.FindStringSubmatch(l); m != nil {
			s = &rfcSection{num: m[1], title: strings.TrimSpace(m[2])}
		} else if plainHeadingRe.MatchString(strings.TrimSpace(l)) && !strings.HasPrefix(l, "RFC ") {
			s = &rfcSection{title: strings.TrimSpace(l)}
		} else {
			continue
		}
		s.from = i
		if k := len(r.secs); k > 0 {
			r.secs[k-1].to = i - 1
		}
		r.secs = append(r.secs, s)
		r.secAt[i] = len(r.secs) - 1
		if s.num != "" {
			if _, dup := r.num[s.num]; !dup {
				r.num[s.num] = s
			}
		}
	}
	if k := len(r.secs); k > 0 {
		r.secs[k-1].to = n
	}

	// Paragraphs: runs of text lines. Blank lines end a paragraph unless the
	// run of blank lines holds a page break (the paragraph goes on on the
	// next page); a heading is a paragraph of its own.
	p, brk := 0, true
	for i := 1; i <= n; {
		if !r.text[i] {
			j, page := i, false
			for ; j <= n && !r.text[j]; j++ {
				page = page || furniture[j]
			}
			brk = brk || !page
			i = j
			continue
		}
		heading := r.secs != nil && r.secAt[i] >= 0 && r.secs[r.secAt[i]].from == i
		if brk || heading {
			p++
		}
		r.para[i] = p
		brk = heading
		i++
	}

	// Extents, heads and names of the sections.
	for k, s := range r.secs {
		s.end = s.to
		if s.num != "" {
			for _, t := range r.secs[k+1:] {
				if !strings.HasPrefix(t.num, s.num+".") {
					break
				}
				s.end = t.to
			}
		}
		s.head = s.from
		seen, last := 0, r.para[s.from]
		for i := s.from + 1; i <= s.to && i <= s.from+headLines; i++ {
			if !r.text[i] {
				continue
			}
			if r.para[i] != last {
				if seen++; seen > headParas {
					break
				}
				last = r.para[i]
			}
			s.head = i
		}
		s.keys, s.caps = headingKeys(s.title)
	}

	for i := 1; i <= n; i++ {
		if m := abnfRuleRe.FindStringSubmatch(r.lines[i]); m != nil && r.text[i] {
			r.abnf[m[1]] = append(r.abnf[m[1]], i)
		}
	}
	return r
}

// titleStop are words of a heading that do not help to name it.
var titleStop = map[string]bool{"a": true, "an": true, "the": true, "of": true, "and": true, "or": true,
	"to": true, "in": true, "for": true, "on": true, "with": true, "by": true, "from": true, "is": true,
	"as": true, "at": true, "this": true, "be": true}

// headingKeys returns the words a comment must contain to name a section by
// its heading. Headings with keywords ("6.4.4.  SEARCH Command", "7.1.3.
// BAD Response", "2.3.1.1.  Unique Identifier (UID) Message Attribute") are
// named by the keywords, case-sensitively; other headings ("9.  Formal
// Syntax") by all their words but stop words, in any case.
func headingKeys(title string) ([]string, bool) {
	var caps, all []string
	for _, w := range wordRe.FindAllString(title, -1) {
		if isKeyword(w) && w != "RFC" && w != "IMAP" {
			caps = append(caps, w)
		}
		if lw := strings.ToLower(w); !titleStop[lw] && len(lw) > 1 {
			all = append(all, lw)
		}
	}
	if len(caps) > 0 {
		return caps, true
	}
	return all, false
}

// section returns the innermost section holding line n, or nil.
func (r *rfcText) section(n int) *rfcSection {
	if n < 1 || n >= len(r.secAt) || r.secAt[n] < 0 {
		return nil
	}
	return r.secs[r.secAt[n]]
}

// within returns the sections holding line n, innermost first.
func (r *rfcText) within(n int) []*rfcSection {
	s := r.section(n)
	if s == nil {
		return nil
	}
	out := []*rfcSection{s}
	for _, t := range r.secs {
		if t != s && t.num != "" && strings.HasPrefix(s.num, t.num+".") {
			out = append(out, t)
		}
	}
	return out
}

// share returns the fraction of the text lines of r on which tok occurs as
// a whole word (in any case if fold).
func (r *rfcText) share(tok string, fold bool) float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.shares == nil {
		r.shares = map[string]float64{}
		for i := range r.text {
			if r.text[i] {
				r.ntext++
			}
		}
	}
	key := tok
	if fold {
		key = "fold:" + tok
	}
	if f, ok := r.shares[key]; ok {
		return f
	}
	n := 0
	for i, l := range r.lines {
		if r.text[i] && occurs(l, tok, fold) {
			n++
		}
	}
	f := float64(n) / float64(max(r.ntext, 1))
	r.shares[key] = f
	return f
}

// paraEnd reports whether text line n ends its paragraph.
// A page break counts as a paragraph boundary here: the text does not tell
// whether a paragraph goes on on the next page.
func (r *rfcText) paraEnd(n int) bool {
	for i := n + 1; i < len(r.text); i++ {
		if r.furniture[i] {
			return true
		}
		if r.text[i] {
			return r.para[i] != r.para[n]
		}
	}
	return true
}

// paraStart reports whether text line n begins its paragraph.
func (r *rfcText) paraStart(n int) bool {
	for i := n - 1; i >= 1; i-- {
		if r.furniture[i] {
			return true
		}
		if r.text[i] {
			return r.para[i] != r.para[n]
		}
	}
	return true
}

// sentenceStart reports whether a sentence begins on text line n: after a
// line that ends one, or within it after ".  ".
func (r *rfcText) sentenceStart(n int) bool {
	l := strings.TrimSpace(r.lines[n])
	if strings.Contains(l, ".  ") {
		return true
	}
	for i := n - 1; i >= 1; i-- {
		if r.text[i] {
			p := strings.TrimSpace(r.lines[i])
			return strings.HasSuffix(p, ".") || strings.HasSuffix(p, ":")
		}
	}
	return true
}

// lineCount is the number of lines, the largest line a citation may name.
func (r *rfcText) lineCount() int { return len(r.lines) - 1 }
