package imaptest

import (
	"bufio"
	"compress/flate"
	"strings"
	"sync"

	"decimail/internal/inflate"
)

// COMPRESS=DEFLATE (RFC 4978) on the client side: after the tagged OK to
// COMPRESS both directions are raw DEFLATE. The server compresses
// "starting immediately after the CRLF which ends the tagged OK"
// (rfc4978.txt:148-150): the reader switches as soon as it has read that
// response, before reading on, and the writer before the next command.

// compressArm is the tag of a COMPRESS command whose OK starts compression;
// the background reader reads it, the caller sets it.
type compressArm struct {
	mu  sync.Mutex
	tag string
}

func (a *compressArm) set(tag string) {
	a.mu.Lock()
	a.tag = tag
	a.mu.Unlock()
}

// starts reports whether r is the OK that starts compression (and disarms).
func (a *compressArm) starts(r *Resp) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.tag == "" || r == nil || r.Tag != a.tag {
		return false
	}
	a.tag = ""
	return r.Status == "OK"
}

// CompressAfter arms compression for the command tagged tag (a COMPRESS
// DEFLATE the caller sends): if its tagged response is OK, what follows is
// decompressed and what the client writes after it is compressed. A NO or
// BAD leaves the connection as it is ("If the server response was BAD or
// NO, the client MUST NOT turn on compression", rfc4978.txt:141).
func (c *Client) CompressAfter(tag string) { c.arm.set(tag) }

// Compress sends COMPRESS DEFLATE and turns compression on after its OK.
func (c *Client) Compress() error {
	tag := c.NextTag()
	c.CompressAfter(tag)
	_, _, err := c.CommandTag(tag, "COMPRESS DEFLATE")
	return err
}

// Compressing reports whether compression is on.
func (c *Client) Compressing() bool { return c.deflating }

// inflating is the reader after the OK: what br holds and receives is
// compressed.
func inflating(br *bufio.Reader) *bufio.Reader {
	// Output at every block's end, not only at a sync flush: a server may
	// end its responses with a partial flush (internal/inflate).
	return bufio.NewReaderSize(inflate.NewReader(br), 64<<10)
}

// startDeflate compresses what the client writes from now on; every Flush
// of the buffer is one DEFLATE sync flush, so the server can decompress
// each command when it is sent.
func (c *Client) startDeflate() {
	fw, _ := flate.NewWriter(c.nc, flate.DefaultCompression) // only an invalid level fails
	c.bw = bufio.NewWriterSize(syncFlusher{fw}, 64<<10)
	c.deflating = true
}

type syncFlusher struct{ fw *flate.Writer }

func (s syncFlusher) Write(p []byte) (int, error) {
	n, err := s.fw.Write(p)
	if err == nil {
		err = s.fw.Flush()
	}
	return n, err
}

// IsCompress reports whether a command line (without the tag) is
// COMPRESS DEFLATE, for callers that write raw commands.
func IsCompress(cmd string) bool {
	return strings.EqualFold(strings.TrimRight(cmd, "\r\n"), "COMPRESS DEFLATE")
}
