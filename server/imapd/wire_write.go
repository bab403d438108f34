package imapd

// The response writer. One Writer per connection; it embeds the write lock:
// the command goroutine holds w.Lock() for a whole response, so responses
// never interleave with the flushes of IDLE's reader goroutine. Output is buffered
// (64 KiB) and flushed by the core once per command (after the tagged
// reply), before a continuation request, and by bufio when the buffer
// fills — never per line. Write errors are sticky (bufio keeps the first)
// and surface from Flush.

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"github.com/klauspost/compress/flate"

	"decimail/server/store"
)

const (
	writeBufSize  = 64 << 10
	maxQuotedLen  = 1024 // longer strings go out as literals
	maxLogLineLen = 1000
)

// Writer builds responses. All methods except Lock/Unlock require the lock.
type Writer struct {
	sync.Mutex
	bw   *bufio.Writer
	out  atomic.Int64      // octets passed on to the connection
	held bool              // taken with Lock, by the command goroutine (Conn.call)
	logf func(line string) // conversation log, nil when off
	logb []byte            // current line for the log
	// fl compresses the output after COMPRESS DEFLATE (compress.go); nil
	// before.
	fl *deflater
	// utf8 lets quoted strings carry UTF-8 (after ENABLE IMAP4rev2, rev2.go):
	// before, an 8-bit string goes out as a literal (rfc9051.txt:7880-7883).
	utf8 bool
	num  [20]byte // Number's digits (a local array escapes into bufio's Write)
}

func newWriter(dst io.Writer, logf func(string)) *Writer {
	w := &Writer{logf: logf}
	w.bw = bufio.NewWriterSize(outCounter{w, dst}, writeBufSize)
	return w
}

// reset sends further output to dst (after STARTTLS).
func (w *Writer) reset(dst io.Writer) { w.bw.Reset(outCounter{w, dst}) }

// compress sends further output through a raw DEFLATE stream to dst
// (COMPRESS, compress.go); what is buffered must have been flushed. out
// keeps counting the octets of the responses, before compression.
func (w *Writer) compress(dst io.Writer) {
	w.fl = &deflater{dst: dst}
	w.bw.Reset(outCounter{w, w.fl})
}

// deflater is the DEFLATE stream of a compressed connection. A streaming
// compressor keeps its state between responses: compress/flate's Writer is
// about 0.8 MiB per connection, whatever the level, and an idle client
// that asked for COMPRESS (Thunderbird does) would hold it for hours: 2,000
// idle connections, 1.6 GB, where the goal is 64 KiB each. So each chunk
// the buffer passes on (a batch of responses, at most writeBufSize) is
// compressed on its own (klauspost/compress StatelessDeflate: no memory
// kept between calls), with the last 8 KiB of what was sent as its
// dictionary, and ends with an empty stored block, a sync flush: the
// client can decode everything sent before the server waits for it. IMAP
// responses "are highly compressible" at zlib's least effort
// (rfc4978.txt:231-233); headers "benefit from using the same dictionary"
// (rfc4978.txt:235-236), which the 8 KiB carried over keeps.
type deflater struct {
	dst  io.Writer
	dict []byte // the last dictSize bytes sent, uncompressed
}

const dictSize = 8 << 10

func (d *deflater) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if err := flate.StatelessDeflate(d.dst, p, false, d.dict); err != nil {
		return 0, err
	}
	if len(p) >= dictSize {
		d.dict = append(d.dict[:0], p[len(p)-dictSize:]...)
	} else {
		d.dict = append(d.dict, p...)
		if len(d.dict) > dictSize {
			d.dict = append(d.dict[:0], d.dict[len(d.dict)-dictSize:]...)
		}
	}
	return len(p), nil
}

type outCounter struct {
	w   *Writer
	dst io.Writer
}

func (c outCounter) Write(p []byte) (int, error) {
	n, err := c.dst.Write(p)
	c.w.out.Add(int64(n))
	return n, err
}

// Lock takes the writer for a whole response. Only the command goroutine
// calls Lock (flushReader, which also runs on IDLE's reader goroutine,
// takes the Mutex itself), so it can tell, after a handler's panic,
// whether the handler still holds the lock.
func (w *Writer) Lock() {
	w.Mutex.Lock()
	w.held = true
}

func (w *Writer) Unlock() {
	w.held = false
	w.Mutex.Unlock()
}

// written is the number of octets written so far, sent or buffered.
func (w *Writer) written() int64 { return w.out.Load() + int64(w.bw.Buffered()) }

func (w *Writer) ws(s string) {
	w.bw.WriteString(s)
	if w.logf != nil && len(w.logb) < maxLogLineLen {
		w.logb = append(w.logb, s...)
	}
}

// Raw writes s as is (keywords, numbers, pre-formatted response parts).
func (w *Writer) Raw(s string) { w.ws(s) }

// Untagged starts an untagged response line: "* ".
func (w *Writer) Untagged() { w.ws("* ") }

// SP writes one space.
func (w *Writer) SP() { w.ws(" ") }

// Number writes a decimal number, without allocating (a STORE of 10,000
// messages writes 20,000 of them).
func (w *Writer) Number(n uint64) {
	d := strconv.AppendUint(w.num[:0], n, 10)
	w.bw.Write(d)
	if w.logf != nil && len(w.logb) < maxLogLineLen {
		w.logb = append(w.logb, d...)
	}
}

// CRLF ends the current response line.
func (w *Writer) CRLF() {
	w.bw.WriteString("\r\n")
	if w.logf != nil {
		w.logf(string(w.logb))
		w.logb = w.logb[:0]
	}
}

// Line writes a whole untagged line: "* " + text + CRLF. text is raw.
func (w *Writer) Line(format string, args ...any) {
	w.Untagged()
	if len(args) > 0 {
		format = fmt.Sprintf(format, args...)
	}
	w.ws(format)
	w.CRLF()
}

// Tagged writes the tagged completion "tag KIND [CODE] text".
func (w *Writer) Tagged(tag string, st *Status) {
	w.ws(tag + " ")
	w.status(st)
	w.CRLF()
}

// Bye writes an untagged BYE (rfc3501.txt:3726-3734) from st's code and text.
func (w *Writer) Bye(st *Status) {
	w.Untagged()
	w.status(&Status{Kind: "BYE", Code: st.Code, Text: st.Text})
	w.CRLF()
}

func (w *Writer) status(st *Status) {
	w.ws(st.Kind)
	if st.Code != "" {
		w.ws(" [" + st.Code + "]")
	}
	text := st.Text
	if text == "" {
		text = "done" // resp-text needs text, rfc3501.txt:4935
	}
	w.ws(" " + text)
}

// Continue writes a continuation request "+ text" (rfc3501.txt:4387: "The
// command continuation request response is indicated by a").
// The caller flushes.
func (w *Writer) Continue(text string) {
	w.ws("+ " + text)
	w.CRLF()
}

// String writes s as a quoted string when that is safe, else as a literal
// (CR, LF, NUL, 8-bit octets, or long) — rfc3501.txt:4901, 4801.
func (w *Writer) String(s string) {
	if !quotable(s, w.utf8) {
		w.Literal([]byte(s))
		return
	}
	w.bw.WriteByte('"')
	if w.logf != nil {
		w.logb = append(w.logb, '"')
	}
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			w.ws(s[start:i])
			w.ws("\\")
			start = i
		}
	}
	w.ws(s[start:])
	w.ws(`"`)
}

// AString writes s as an atom when it is one (and not NIL), else as a
// string (astring, rfc3501.txt:4550).
func (w *Writer) AString(s string) {
	if isAtomString(s) {
		w.ws(s)
		return
	}
	w.String(s)
}

// NString writes s, or NIL when !ok (nstring, rfc3501.txt:4889).
func (w *Writer) NString(s string, ok bool) {
	if !ok {
		w.ws("NIL")
		return
	}
	w.String(s)
}

// FlagSet writes f's flag list as Flags(f.Names()) would, then \Recent if
// recent, without building the list: STORE and FETCH write one per message.
func (w *Writer) FlagSet(f store.Flags, recent bool) {
	w.ws("(")
	sep := ""
	f.EachName(func(name string) {
		w.ws(sep)
		w.ws(name)
		sep = " "
	})
	if recent {
		w.ws(sep)
		w.ws(`\Recent`)
	}
	w.ws(")")
}

// Flags writes a parenthesised flag list.
func (w *Writer) Flags(flags []string) {
	w.ws("(")
	for i, f := range flags {
		if i > 0 {
			w.ws(" ")
		}
		w.ws(f)
	}
	w.ws(")")
}

// Literal writes b as a literal "{n}" CRLF b.
func (w *Writer) Literal(b []byte) {
	w.literalHeader(int64(len(b)))
	w.bw.Write(b)
}

// LiteralFrom streams a literal of known size from r (FETCH bodies) without
// holding it in memory. It fails if r yields fewer than size bytes; the
// connection is then unusable and must be closed.
func (w *Writer) LiteralFrom(size int64, r io.Reader) error {
	w.literalHeader(size)
	n, err := io.CopyN(w.bw, r, size)
	if err == nil && n != size {
		err = io.ErrUnexpectedEOF
	}
	return err
}

func (w *Writer) literalHeader(n int64) {
	w.bw.WriteString("{" + strconv.FormatInt(n, 10) + "}\r\n")
	if w.logf != nil {
		w.logb = append(w.logb, "{"+strconv.FormatInt(n, 10)+"}<literal>"...)
	}
}

// Flush sends buffered output and returns the first write error.
func (w *Writer) Flush() error {
	return w.bw.Flush() // a compressed chunk ends with its sync flush (deflater)
}

// Buffered returns the number of bytes not yet flushed (tests).
func (w *Writer) Buffered() int { return w.bw.Buffered() }

func quotable(s string, utf8OK bool) bool {
	if len(s) > maxQuotedLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == 0 || c == '\r' || c == '\n' || c >= 0x80 && !utf8OK {
			return false
		}
	}
	// IMAP4rev2's QUOTED-CHAR takes UTF8-2, UTF8-3 and UTF8-4, nothing
	// else of 8 bits (rfc9051.txt:6858-6859).
	return !utf8OK || utf8.ValidString(s)
}

func isAtomString(s string) bool {
	if s == "" || len(s) > maxQuotedLen || (len(s) == 3 && (s[0]|0x20) == 'n' && (s[1]|0x20) == 'i' && (s[2]|0x20) == 'l') {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x80 || !isAtomChar(c) || c == '%' || c == '*' || c == '\\' {
			return false
		}
	}
	return true
}
