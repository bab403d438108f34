package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"decimail/server/store"
)

// maxImportMessage bounds one imported message; larger ones are reported and skipped.
const maxImportMessage = 64 << 20

// importItem is one message found in an mbox file or a Maildir.
type importItem struct {
	folder string
	origin string // file (and message number) for reports
	raw    []byte
	date   time.Time
	flags  store.Flags
	err    error // why it cannot be imported
}

func init() {
	var folder string
	var quiet bool
	register(&command{name: "import", args: "USER PATH",
		help: "import an mbox file or a Maildir tree into folders (progress, summary; bad messages reported and skipped)",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&folder, "folder", "", "folder for a single mbox/Maildir (default: derived from PATH; Maildir root = INBOX)")
			fs.BoolVar(&quiet, "q", false, "no progress bar")
		},
		run: withUser(func(ctx context.Context, s *store.Store, u store.User, args []string) error {
			if err := needArgs(args, 1, "USER PATH"); err != nil {
				return err
			}
			items, err := scanImport(args[0], folder)
			if err != nil {
				return err
			}
			sum, err := importItems(ctx, s, u, items, progressBar(os.Stderr, quiet))
			sum.print(os.Stdout)
			return err
		})})
}

type importSummary struct {
	imported int
	folders  map[string]int
	skipped  []string
}

func (s importSummary) print(w io.Writer) {
	var names []string
	for n := range s.folders {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintf(w, "imported %d messages into %d folders, skipped %d\n", s.imported, len(names), len(s.skipped))
	for _, n := range names {
		fmt.Fprintf(w, "  %-30s %d\n", printable(n), s.folders[n])
	}
	for _, sk := range s.skipped {
		fmt.Fprintf(w, "  skipped: %s\n", printable(sk))
	}
}

func importItems(ctx context.Context, s *store.Store, u store.User, items []importItem, progress func(done, total int)) (importSummary, error) {
	sum := importSummary{folders: map[string]int{}}
	created := map[string]bool{}
	for i, it := range items {
		progress(i, len(items))
		if it.err != nil {
			sum.skipped = append(sum.skipped, fmt.Sprintf("%s: %v", it.origin, it.err))
			continue
		}
		if !created[it.folder] {
			if _, err := s.CreateFolder(ctx, u.ID, it.folder); err != nil && !errors.Is(err, store.ErrExists) {
				return sum, fmt.Errorf("folder %q: %w", it.folder, err)
			}
			created[it.folder] = true
		}
		_, err := s.Deliver(ctx, u.ID, it.raw, store.DeliverOptions{Mailbox: it.folder, Flags: it.flags, InternalDate: it.date})
		if errors.Is(err, store.ErrCannot) {
			return sum, fmt.Errorf("folder %q is a query mailbox", it.folder)
		} else if err != nil {
			return sum, fmt.Errorf("%s: %w", it.origin, err)
		}
		sum.imported++
		sum.folders[it.folder]++
	}
	progress(len(items), len(items))
	// Index the imported texts now (a server would, once this process has
	// gone): the mail is searchable through the trigram indexes at once.
	_, err := s.IndexTexts(ctx)
	return sum, err
}

func progressBar(w io.Writer, quiet bool) func(done, total int) {
	last := time.Time{}
	return func(done, total int) {
		if quiet || total == 0 || (done < total && time.Since(last) < 100*time.Millisecond) {
			return
		}
		last = time.Now()
		const width = 40
		n := width * done / total
		fmt.Fprintf(w, "\r[%s%s] %d/%d", strings.Repeat("=", n), strings.Repeat(" ", width-n), done, total)
		if done == total {
			fmt.Fprintln(w)
		}
	}
}

// scanImport finds the messages under path: an mbox file, a Maildir (cur/new),
// Maildir++ subfolders (.A.B → A/B), or a directory tree of those.
func scanImport(path, folder string) ([]importItem, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		if folder == "" {
			folder = folderFromFile(filepath.Base(path))
		}
		return readMbox(path, folder)
	}
	var items []importItem
	err = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(path, p)
		if d.IsDir() {
			if isMaildir(p) {
				name := folder
				if name == "" || rel != "." {
					name = maildirFolder(rel)
				}
				its, err := readMaildir(p, name)
				items = append(items, its...)
				return err
			}
			return nil
		}
		if inMaildir(p) || strings.HasPrefix(d.Name(), ".") {
			return nil
		}
		if ok, _ := looksLikeMbox(p); ok {
			its, err := readMbox(p, folderFromFile(filepath.ToSlash(rel)))
			items = append(items, its...)
			return err
		}
		return nil
	})
	return items, err
}

func folderFromFile(name string) string {
	name = strings.TrimSuffix(strings.TrimSuffix(name, ".mbox"), ".mbx")
	if strings.EqualFold(name, "inbox") || name == "mbox" {
		return "INBOX"
	}
	return name
}

func isMaildir(dir string) bool {
	for _, sub := range []string{"cur", "new"} {
		if st, err := os.Stat(filepath.Join(dir, sub)); err != nil || !st.IsDir() {
			return false
		}
	}
	return true
}

func inMaildir(p string) bool {
	b := filepath.Base(filepath.Dir(p))
	return (b == "cur" || b == "new" || b == "tmp") && isMaildir(filepath.Dir(filepath.Dir(p)))
}

// maildirFolder maps a Maildir's path relative to the root to a folder name:
// "." is INBOX, Maildir++ ".Lists.golang" is Lists/golang, plain dirs nest.
func maildirFolder(rel string) string {
	rel = filepath.ToSlash(rel)
	if rel == "." {
		return "INBOX"
	}
	var parts []string
	for i, p := range strings.Split(rel, "/") {
		if i == 0 && strings.EqualFold(p, "Maildir") {
			continue // ~/Maildir is the INBOX root of a Maildir++ tree
		}
		if strings.HasPrefix(p, ".") {
			parts = append(parts, strings.Split(strings.TrimPrefix(p, "."), ".")...)
		} else {
			parts = append(parts, p)
		}
	}
	if len(parts) == 0 {
		return "INBOX"
	}
	return store.NormName(strings.Join(parts, store.Delim))
}

func readMaildir(dir, folder string) ([]importItem, error) {
	var items []importItem
	for _, sub := range []string{"cur", "new"} {
		ents, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil {
			return nil, err
		}
		for _, e := range ents {
			if e.IsDir() || strings.HasPrefix(e.Name(), ".") {
				continue
			}
			p := filepath.Join(dir, sub, e.Name())
			it := importItem{folder: folder, origin: p}
			if info, err := e.Info(); err == nil {
				it.date = info.ModTime()
				if info.Size() > maxImportMessage {
					it.err = fmt.Errorf("larger than %d bytes", maxImportMessage)
					items = append(items, it)
					continue
				}
			}
			raw, err := os.ReadFile(p)
			if err != nil {
				it.err = err
			} else {
				it.raw, it.err = checkMessage(raw)
			}
			if i := strings.LastIndex(e.Name(), ":2,"); i >= 0 {
				it.flags = maildirFlags(e.Name()[i+3:])
			}
			items = append(items, it)
		}
	}
	sort.Slice(items, func(i, j int) bool { return items[i].date.Before(items[j].date) })
	return items, nil
}

func maildirFlags(info string) store.Flags {
	var f store.Flags
	for _, c := range info {
		switch c {
		case 'S':
			f.Seen = true
		case 'R':
			f.Answered = true
		case 'F':
			f.Flagged = true
		case 'T':
			f.Deleted = true
		case 'D':
			f.Draft = true
		}
	}
	return f
}

func looksLikeMbox(p string) (bool, error) {
	f, err := os.Open(p)
	if err != nil {
		return false, err
	}
	defer f.Close()
	b := make([]byte, 5)
	n, _ := io.ReadFull(f, b)
	return string(b[:n]) == "From ", nil
}

// readMbox splits an mbox file on "From " lines (mboxrd: one '>' is removed
// from ">From " lines), converting line ends to CRLF.
func readMbox(path, folder string) ([]importItem, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 64<<10)
	var items []importItem
	var cur *importItem
	var buf bytes.Buffer
	n := 0
	flush := func() {
		if cur == nil {
			return
		}
		if buf.Len() > maxImportMessage {
			cur.err = fmt.Errorf("larger than %d bytes", maxImportMessage)
		} else {
			cur.raw, cur.err = checkMessage(append([]byte(nil), buf.Bytes()...))
			cur.flags = mboxFlags(cur.raw)
		}
		items = append(items, *cur)
		buf.Reset()
	}
	for {
		line, err := r.ReadBytes('\n')
		if len(line) > 0 {
			if bytes.HasPrefix(line, []byte("From ")) {
				flush()
				n++
				cur = &importItem{folder: folder, origin: fmt.Sprintf("%s message %d", path, n), date: mboxDate(line)}
			} else if cur == nil {
				return nil, fmt.Errorf("%s: not an mbox file (no \"From \" line first)", path)
			} else {
				if q := bytes.TrimLeft(line, ">"); len(q) < len(line) && bytes.HasPrefix(q, []byte("From ")) {
					line = line[1:]
				}
				line = bytes.TrimRight(line, "\r\n")
				if buf.Len() <= maxImportMessage {
					buf.Write(line)
					buf.WriteString("\r\n")
				}
			}
		}
		if err == io.EOF {
			break
		} else if err != nil {
			return nil, err
		}
	}
	flush()
	return items, nil
}

// mboxDate parses the date of a "From sender date" line (asctime format).
func mboxDate(line []byte) time.Time {
	f := strings.Fields(string(line))
	if len(f) >= 7 {
		s := strings.Join(f[2:7], " ")
		for _, layout := range []string{time.ANSIC, "Mon Jan _2 15:04:05 2006"} {
			if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
				return t
			}
		}
	}
	return time.Time{}
}

// mboxFlags reads the Status/X-Status headers mail clients write into mbox files.
func mboxFlags(raw []byte) store.Flags {
	var f store.Flags
	end := bytes.Index(raw, []byte("\r\n\r\n"))
	if end < 0 {
		end = len(raw)
	}
	for _, l := range strings.Split(string(raw[:end]), "\r\n") {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch strings.ToLower(k) {
		case "status":
			f.Seen = f.Seen || strings.Contains(v, "R")
		case "x-status":
			f.Answered = f.Answered || strings.Contains(v, "A")
			f.Flagged = f.Flagged || strings.Contains(v, "F")
			f.Deleted = f.Deleted || strings.Contains(v, "D")
			f.Draft = f.Draft || strings.Contains(v, "T")
		}
	}
	return f
}

// checkMessage rejects what is not a message at all; anything else is stored
// byte-exact (a malformed message is still a message). Bare LF becomes CRLF.
func checkMessage(raw []byte) ([]byte, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, errors.New("empty message")
	}
	if bytes.IndexByte(raw, 0) >= 0 && !bytes.Contains(raw[:min(len(raw), 4096)], []byte(":")) {
		return nil, errors.New("binary data, not a message")
	}
	if bytes.Contains(raw, []byte("\n")) && !bytes.Contains(raw, []byte("\r\n")) {
		raw = bytes.ReplaceAll(raw, []byte("\n"), []byte("\r\n"))
	}
	return raw, nil
}
