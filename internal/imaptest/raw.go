package imaptest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
)

// Raw is one response as it came off the wire, not tokenized: Bytes holds
// its lines, CRLF included, with the octets of each literal in place after
// the line that announced it. A Raw the Client returns is valid until the
// next read; Parse makes a Resp that does not share its memory.
type Raw struct {
	Bytes []byte
	lits  [][2]int // start and end of each literal's octets in Bytes
}

// maxLiteral bounds a literal the reader accepts (a broken {n} must not
// make it allocate without limit).
const maxLiteral = 1 << 30

// read reads one response into r, reusing its memory.
func (r *Raw) read(br *bufio.Reader) error {
	r.Bytes, r.lits = r.Bytes[:0], r.lits[:0]
	for {
		line, err := br.ReadSlice('\n')
		for errors.Is(err, bufio.ErrBufferFull) {
			r.Bytes = append(r.Bytes, line...)
			line, err = br.ReadSlice('\n')
		}
		r.Bytes = append(r.Bytes, line...)
		if err != nil {
			if err == io.EOF && len(r.Bytes) > 0 {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		n, ok := literalLen(r.Bytes[r.lineStart():])
		if !ok {
			return nil
		}
		if n > maxLiteral {
			return fmt.Errorf("literal of %d octets", n)
		}
		start := len(r.Bytes)
		r.Bytes = slices.Grow(r.Bytes, n)[:start+n]
		if _, err := io.ReadFull(br, r.Bytes[start:]); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		r.lits = append(r.lits, [2]int{start, start + n})
	}
}

// lineStart is where the last line of Bytes starts (after the last literal).
func (r *Raw) lineStart() int {
	if len(r.lits) == 0 {
		return 0
	}
	return r.lits[len(r.lits)-1][1]
}

// literalLen reports the n of a line that ends in {n}, {n+} or ~{n} before
// its CRLF.
func literalLen(line []byte) (int, bool) {
	line = bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
	if len(line) < 3 || line[len(line)-1] != '}' {
		return 0, false
	}
	i := len(line) - 2
	if line[i] == '+' {
		i--
	}
	end := i + 1
	for i >= 0 && line[i] >= '0' && line[i] <= '9' {
		i--
	}
	if i < 0 || line[i] != '{' || i+1 == end || end-(i+1) > 10 {
		return 0, false
	}
	n := 0
	for _, c := range line[i+1 : end] {
		n = n*10 + int(c-'0')
	}
	return n, true
}

// Tagged reports whether the response carries the given tag.
func (r *Raw) Tagged(tag string) bool {
	return len(r.Bytes) > len(tag) && r.Bytes[len(tag)] == ' ' && string(r.Bytes[:len(tag)]) == tag
}

// Line is the first line of the response without its CRLF.
func (r *Raw) Line() []byte {
	l := r.Bytes
	if i := bytes.IndexByte(l, '\n'); i >= 0 {
		l = l[:i]
	}
	return bytes.TrimSuffix(l, []byte("\r"))
}

// Frags splits the response into text and literal fragments (copies).
func (r *Raw) Frags() []Frag {
	frags := make([]Frag, 0, 1+2*len(r.lits))
	pos := 0
	for _, l := range r.lits {
		frags = append(frags, Frag{Text: trimCRLF(r.Bytes[pos:l[0]])}, Frag{IsLit: true, Lit: bytes.Clone(r.Bytes[l[0]:l[1]])})
		pos = l[1]
	}
	return append(frags, Frag{Text: trimCRLF(r.Bytes[pos:])})
}

func trimCRLF(b []byte) string {
	b = bytes.TrimSuffix(b, []byte("\n"))
	return string(bytes.TrimSuffix(b, []byte("\r")))
}

// Parse tokenizes the response.
func (r *Raw) Parse() (*Resp, error) {
	resp, err := ParseResp(r.Frags(), false, nil)
	if err != nil {
		return nil, fmt.Errorf("parsing %q: %w", abbrev(string(r.Bytes), 200), err)
	}
	return resp, nil
}
