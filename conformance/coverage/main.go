// Command coverage writes scenarios/COVERAGE.md: which scenarios check each
// section of RFC 3501 and RFC 2177, each RFC 3501 command, FETCH item,
// SEARCH key and response code, and each extension, and what has none.
//
// It reads the scenario headers (rfc: line ranges, covers: keywords,
// requires:, applies:) and the RFC texts in ../shared/rfc. The lists of
// commands (§6), FETCH items (§6.4.5), SEARCH keys (§6.4.4) and response
// codes (§7.1) are taken from the RFC text itself, so nothing is left out by
// hand. Run from the module root: go run ./conformance/coverage
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io/fs"
	"log"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
)

func main() {
	root := flag.String("root", ".", "module root (holds scenarios/)")
	rfcDir := flag.String("rfc", "", "directory of the RFC texts (default ROOT/../shared/rfc)")
	out := flag.String("o", "", "output file (default ROOT/scenarios/COVERAGE.md)")
	flag.Parse()
	if *rfcDir == "" {
		*rfcDir = filepath.Join(*root, "..", "shared", "rfc")
	}
	if *out == "" {
		*out = filepath.Join(*root, "scenarios", "COVERAGE.md")
	}
	rep, err := Build(filepath.Join(*root, "scenarios"), *rfcDir)
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(*out, []byte(rep.Markdown()), 0o644); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s: %d scenarios, %d gaps\n", *out, len(rep.Scenarios), len(rep.RequiredGaps()))
}

// Scenario is the header of one scenario file.
type Scenario struct {
	Name     string // path below scenarios/ without .scn
	Title    string
	Refs     []Ref
	Covers   map[string][]string // key -> values (command -> [FETCH SELECT])
	Requires []string
	Applies  string
}

// Ref is an rfc: reference, a line range of one RFC file.
type Ref struct {
	File     string
	From, To int
}

var refRe = regexp.MustCompile(`^(rfc\d+\.txt):(\d+)(?:-(\d+))?$`)

// ReadScenarios reads the header of every .scn file below dir.
func ReadScenarios(dir string) ([]*Scenario, error) {
	var out []*Scenario
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".scn") {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		sc, err := readHeader(path)
		if err != nil {
			return err
		}
		sc.Name = strings.TrimSuffix(filepath.ToSlash(rel), ".scn")
		out = append(out, sc)
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, err
}

func readHeader(path string) (*Scenario, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	sc := &Scenario{Covers: map[string][]string{}, Applies: "any"}
	sn := bufio.NewScanner(bytes.NewReader(data))
	for sn.Scan() {
		line := strings.TrimSpace(sn.Text())
		if line == "" {
			continue
		}
		if strings.HasPrefix(line, "#") {
			if sc.Title == "" {
				sc.Title = strings.TrimSpace(strings.TrimLeft(line, "#"))
			}
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok || strings.ContainsAny(k, " <>|") {
			break // the body starts
		}
		fields := strings.Fields(v)
		switch k {
		case "rfc":
			for _, f := range fields {
				m := refRe.FindStringSubmatch(f)
				if m == nil {
					return nil, fmt.Errorf("%s: bad rfc reference %q", path, f)
				}
				r := Ref{File: m[1]}
				r.From, _ = strconv.Atoi(m[2])
				r.To = r.From
				if m[3] != "" {
					r.To, _ = strconv.Atoi(m[3])
				}
				sc.Refs = append(sc.Refs, r)
			}
		case "covers":
			for _, f := range fields {
				key, val, _ := strings.Cut(f, "=")
				sc.Covers[strings.ToLower(key)] = append(sc.Covers[strings.ToLower(key)], val)
			}
		case "requires":
			sc.Requires = fields
		case "applies":
			sc.Applies = strings.TrimSpace(v)
		}
	}
	return sc, sn.Err()
}

// Section is a numbered heading of an RFC and the lines it spans.
type Section struct {
	Num, Title string
	From, To   int
}

var headingRe = regexp.MustCompile(`^(\d+(?:\.\d+)*)\.?\s+(\S.*)$`)

// Sections scans an RFC text for its numbered headings (at column 0; the
// table of contents is indented and page headers are not numbered).
func Sections(text string) []Section {
	lines := strings.Split(text, "\n")
	var out []Section
	for i, l := range lines {
		l = strings.TrimRight(l, "\r ")
		m := headingRe.FindStringSubmatch(l)
		if m == nil || strings.Contains(l, "....") {
			continue
		}
		if n := len(out); n > 0 {
			out[n-1].To = i // line i+1 is the new heading
		}
		out = append(out, Section{Num: m[1], Title: strings.TrimSpace(m[2]), From: i + 1})
	}
	if n := len(out); n > 0 {
		out[n-1].To = len(lines)
	}
	return out
}

// find returns the section with the given number.
func find(secs []Section, num string) (Section, bool) {
	for _, s := range secs {
		if s.Num == num {
			return s, true
		}
	}
	return Section{}, false
}

// listed returns the words matching re (first group) on lines within sec.
func listed(text string, sec Section, re *regexp.Regexp) []string {
	lines := strings.Split(text, "\n")
	var out []string
	for i := sec.From; i < sec.To && i < len(lines); i++ {
		if m := re.FindStringSubmatch(strings.TrimRight(lines[i], "\r ")); m != nil && !slices.Contains(out, m[1]) {
			out = append(out, m[1])
		}
	}
	return out
}

var (
	commandRe   = regexp.MustCompile(`^([A-Z]+) Command$`)
	fetchItemRe = regexp.MustCompile(`^      ([A-Z0-9.]+(?:\[<section>\]<<partial>>)?)$`)
	searchKeyRe = regexp.MustCompile(`^      (<sequence set>|[A-Z]+)(?: <[^>]+>)*$`)
	codeRe      = regexp.MustCompile(`^      ([A-Z][A-Z-]+)$`)
)

// Item is one thing to cover (a command, FETCH item, ...) and the covers:
// key/value that claims it.
type Item struct {
	Name      string // as the RFC writes it
	Key, Val  string // covers: key=value
	Scenarios []string
}

// Group is one table of the report.
type Group struct {
	Title    string
	Source   string // where the list comes from
	Items    []*Item
	Required bool // a gap here fails the test
}

// Exempt are RFC 3501 items that no client can provoke on every server; they
// are reported as gaps but do not fail the test.
var Exempt = map[string]string{
	"code=ALERT": "sent at the server's discretion (rfc3501.txt:3537-3542); no command provokes it",
	"code=PARSE": "reports a message the server failed to parse (rfc3501.txt:3559-3564); servers differ in what they reject or accept",
}

// Report is the whole coverage matrix.
type Report struct {
	Scenarios []*Scenario
	RFC3501   []Section
	RFC2177   []Section
	SecHits   map[string]map[string][]string // file -> section number -> scenarios
	Groups    []*Group
	Ext       map[string][]string // extension -> scenarios
}

// Build reads scenarios and RFCs and computes the matrix.
func Build(scenarioDir, rfcDir string) (*Report, error) {
	scs, err := ReadScenarios(scenarioDir)
	if err != nil {
		return nil, err
	}
	r := &Report{Scenarios: scs, SecHits: map[string]map[string][]string{}, Ext: map[string][]string{}}
	texts := map[string]string{}
	for _, f := range []string{"rfc3501.txt", "rfc2177.txt"} {
		b, err := os.ReadFile(filepath.Join(rfcDir, f))
		if err != nil {
			return nil, err
		}
		texts[f] = string(b)
	}
	r.RFC3501 = Sections(texts["rfc3501.txt"])
	r.RFC2177 = Sections(texts["rfc2177.txt"])
	for _, f := range []struct {
		file string
		secs []Section
	}{{"rfc3501.txt", r.RFC3501}, {"rfc2177.txt", r.RFC2177}} {
		hits := map[string][]string{}
		for _, sc := range scs {
			for _, sec := range f.secs {
				for _, ref := range sc.Refs {
					if ref.File == f.file && ref.From <= sec.To && ref.To >= sec.From && !slices.Contains(hits[sec.Num], sc.Name) {
						hits[sec.Num] = append(hits[sec.Num], sc.Name)
					}
				}
			}
		}
		r.SecHits[f.file] = hits
	}

	t := texts["rfc3501.txt"]
	var cmds []string
	for _, s := range r.RFC3501 {
		if strings.HasPrefix(s.Num, "6.") {
			if m := commandRe.FindStringSubmatch(s.Title); m != nil {
				cmds = append(cmds, m[1])
			}
		}
	}
	sec := func(n string) Section { s, _ := find(r.RFC3501, n); return s }
	mk := func(title, source, key string, names []string, val func(string) string) *Group {
		g := &Group{Title: title, Source: source, Required: true}
		for _, n := range names {
			g.Items = append(g.Items, &Item{Name: n, Key: key, Val: val(n)})
		}
		return g
	}
	same := func(s string) string { return s }
	fetchVal := func(s string) string {
		switch s {
		case "BODY[<section>]<<partial>>":
			return "BODY[]"
		case "BODY.PEEK[<section>]<<partial>>":
			return "BODY.PEEK"
		}
		return s
	}
	searchVal := func(s string) string {
		if s == "<sequence set>" {
			return "sequence-set"
		}
		return s
	}
	r.Groups = []*Group{
		mk("RFC 3501 commands", "headings of §6", "command", cmds, same),
		mk("FETCH items", "§6.4.5", "item", listed(t, sec("6.4.5"), fetchItemRe), fetchVal),
		mk("SEARCH keys", "§6.4.4", "search", listed(t, sec("6.4.4"), searchKeyRe), searchVal),
		mk("Response codes", "§7.1", "code", listed(t, sec("7.1"), codeRe), same),
	}
	sections := mk("FETCH body sections", "§6.4.5 section-spec and partial", "section",
		[]string{"HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "MIME", "TEXT", "part", "nested", "partial"}, same)
	sections.Required = false
	responses := mk("Server responses", "§7.2-§7.5", "response",
		[]string{"CAPABILITY", "LIST", "LSUB", "STATUS", "SEARCH", "FLAGS", "EXISTS", "RECENT", "EXPUNGE", "FETCH", "BYE", "continuation"}, same)
	responses.Required = false
	r.Groups = append(r.Groups, sections, responses)
	for _, g := range r.Groups {
		for _, it := range g.Items {
			for _, sc := range scs {
				if sc.claims(it.Key, it.Val) {
					it.Scenarios = append(it.Scenarios, sc.Name)
				}
			}
		}
	}
	for _, sc := range scs {
		for _, ext := range sc.extensions() {
			r.Ext[ext] = append(r.Ext[ext], sc.Name)
		}
	}
	return r, nil
}

// claims reports whether the scenario's covers: list names key=val.
func (sc *Scenario) claims(key, val string) bool {
	for _, v := range sc.Covers[key] {
		if strings.EqualFold(v, val) {
			return true
		}
		if key == "search" && val == "sequence-set" && seqSetRe.MatchString(v) {
			return true // older scenarios write the set itself (search=1:3)
		}
	}
	if key == "response" && (val == "LIST" || val == "LSUB" || val == "STATUS" || val == "SEARCH") {
		// a command's own data response is claimed by the command
		return slices.ContainsFunc(sc.Covers["command"], func(c string) bool { return strings.EqualFold(c, val) })
	}
	return false
}

var seqSetRe = regexp.MustCompile(`^[0-9*:,]+$`)

// extensions names the extensions a scenario checks: its requires: list
// (minus IDLE, which has an RFC section of its own) and its directory below
// extensions/ and decimail/.
func (sc *Scenario) extensions() []string {
	var out []string
	add := func(s string) {
		s = strings.ToUpper(s)
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	parts := strings.Split(sc.Name, "/")
	if len(parts) > 2 && parts[0] == "extensions" {
		add(parts[1])
	}
	if parts[0] == "decimail" {
		add("DECIMAIL (" + parts[1] + ")")
	}
	for _, r := range sc.Requires {
		add(r)
	}
	for _, e := range sc.Covers["ext"] {
		add(e)
	}
	return out
}

// RequiredGaps lists the uncovered items of the required groups that are not
// exempt.
func (r *Report) RequiredGaps() []string {
	var out []string
	for _, g := range r.Groups {
		if !g.Required {
			continue
		}
		for _, it := range g.Items {
			if len(it.Scenarios) == 0 && Exempt[it.Key+"="+it.Val] == "" {
				out = append(out, g.Title+": "+it.Name)
			}
		}
	}
	return out
}

// Markdown renders the report. The output depends only on the inputs, so a
// stale COVERAGE.md is detected by regenerating it.
func (r *Report) Markdown() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	list := func(names []string) string {
		if len(names) == 0 {
			return "**none**"
		}
		return "`" + strings.Join(names, "`, `") + "`"
	}
	applies := map[string]int{}
	for _, sc := range r.Scenarios {
		applies[sc.Applies]++
	}
	p("# Scenario coverage\n\n")
	p("Generated by `make coverage` (`go run ./conformance/coverage`) from the scenario headers\n")
	p("(`rfc:` line ranges, `covers:` keywords, `requires:`) and the RFC texts; do not edit.\n")
	p("`go test ./conformance/coverage` fails when this file is stale or when an RFC 3501\n")
	p("command, FETCH item, SEARCH key or response code has no scenario. Every scenario\n")
	p("counted here runs and passes on Decimail in `make test`: a scenario Decimail cannot\n")
	p("run (a `requires:` capability it does not advertise) fails there, it is not skipped.\n\n")
	p("%d scenarios (%d for any server, %d Decimail only).\n\n", len(r.Scenarios), applies["any"], applies["decimail"])
	p("IMAP4rev2 (RFC 9051), its Appendix E item by item: [conformance/IMAP4REV2.md](../conformance/IMAP4REV2.md).\n\n")

	p("## Contents\n\n- [RFC 3501 sections](#rfc-3501-sections)\n")
	for _, g := range r.Groups {
		p("- [%s](#%s)\n", g.Title, anchor(g.Title))
	}
	p("- [RFC 2177 (IDLE) sections](#rfc-2177-idle-sections)\n- [Extensions](#extensions)\n- [Gaps](#gaps)\n\n")

	sectionTable := func(file string, secs []Section) {
		p("| § | heading | lines | n | scenarios |\n| --- | --- | --- | --- | --- |\n")
		for _, s := range secs {
			hits := r.SecHits[file][s.Num]
			p("| %s | %s | %d-%d | %d | %s |\n", s.Num, s.Title, s.From, s.To, len(hits), list(hits))
		}
		p("\n")
	}
	p("## RFC 3501 sections\n\nA scenario counts for a section when one of its `rfc:` ranges overlaps the section's lines.\n\n")
	sectionTable("rfc3501.txt", r.RFC3501)
	for _, g := range r.Groups {
		p("## %s\n\nThe list: %s. Claimed by `covers: %s=…`.\n\n", g.Title, g.Source, g.Items[0].Key)
		p("| %s | n | scenarios |\n| --- | --- | --- |\n", g.Items[0].Key)
		for _, it := range g.Items {
			p("| %s | %d | %s |\n", strings.ReplaceAll(it.Name, "|", `\|`), len(it.Scenarios), list(it.Scenarios))
		}
		p("\n")
	}
	p("## RFC 2177 (IDLE) sections\n\n")
	sectionTable("rfc2177.txt", r.RFC2177)
	p("## Extensions\n\nBy directory below `extensions/` and `decimail/`, `requires:` capability and `covers: ext=…`.\n\n")
	p("| extension | n | scenarios |\n| --- | --- | --- |\n")
	var exts []string
	for e := range r.Ext {
		exts = append(exts, e)
	}
	sort.Strings(exts)
	for _, e := range exts {
		p("| %s | %d | %s |\n", e, len(r.Ext[e]), list(r.Ext[e]))
	}
	p("\n## Gaps\n\n")
	p("### Required (the test fails on these)\n\n")
	if g := r.RequiredGaps(); len(g) == 0 {
		p("None.\n\n")
	} else {
		for _, x := range g {
			p("- %s\n", x)
		}
		p("\n")
	}
	p("### Exempt (no client can provoke them on every server)\n\n")
	var ex []string
	for k := range Exempt {
		ex = append(ex, k)
	}
	sort.Strings(ex)
	for _, k := range ex {
		p("- `%s`: %s\n", k, Exempt[k])
	}
	p("\n### Not required\n\n")
	for _, g := range r.Groups {
		if g.Required {
			continue
		}
		var miss []string
		for _, it := range g.Items {
			if len(it.Scenarios) == 0 {
				miss = append(miss, it.Name)
			}
		}
		if len(miss) > 0 {
			p("- %s: %s\n", g.Title, strings.Join(miss, ", "))
		}
	}
	for _, f := range []struct {
		name, file string
		secs       []Section
	}{{"RFC 3501", "rfc3501.txt", r.RFC3501}, {"RFC 2177", "rfc2177.txt", r.RFC2177}} {
		var miss []string
		for _, s := range f.secs {
			if len(r.SecHits[f.file][s.Num]) == 0 {
				miss = append(miss, "§"+s.Num+" "+s.Title)
			}
		}
		p("- %s sections without a scenario (%d): %s\n", f.name, len(miss), strings.Join(miss, "; "))
	}
	return b.String()
}

func anchor(s string) string {
	s = strings.ToLower(s)
	s = strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-':
			return r
		case r == ' ':
			return '-'
		}
		return -1
	}, s)
	return s
}
