package imapd

import (
	"bufio"
	"io"
	"strings"

	"decimail/internal/inflate"
)

// COMPRESS=DEFLATE (RFC 4978): after the tagged OK both directions are a
// raw DEFLATE stream (RFC 1951, no zlib header: "The windowBits value must
// be in the range -8 to -15, or else deflateInit2() uses the wrong
// format", rfc4978.txt:260-266).
//
// The server flushes its output only before it blocks reading from the
// socket (flushReader, conn.go) and where a client waits (continuation
// requests, the end of a command that changes the stream): Writer.Flush
// ends exactly those batches with a DEFLATE sync flush, so every response
// the client is owed can be decompressed when it waits, and pipelined
// responses still leave in few writes. Under TLS the compressed stream
// goes into TLS ("first COMPRESS, then SASL, and finally TLS",
// rfc4978.txt:160-178): deflate writes to the current connection.

func init() {
	// "command-auth =/ compress" (rfc4978.txt:308): the authenticated state,
	// and so the selected one too.
	register("COMPRESS", cmdSpec{states: authenticated, ext: "COMPRESS=DEFLATE", fn: cmdCompress})
}

// cmdCompress implements COMPRESS (rfc4978.txt:122-152).
func cmdCompress(c *Conn, cmd *Command) error {
	// compress = "COMPRESS" SP algorithm, algorithm = "DEFLATE" (rfc4978.txt:310-315)
	if len(cmd.Args) != 1 || cmd.Args[0].Kind != Atom {
		return Syntax("COMPRESS takes one mechanism")
	}
	if !strings.EqualFold(cmd.Args[0].S, "DEFLATE") {
		// "BAD Command unknown, invalid or unknown argument" (rfc4978.txt:131)
		return Bad("", "unknown compression mechanism "+cmd.Args[0].S)
	}
	if c.w.fl != nil {
		// BAD "COMPRESS already active" (rfc4978.txt:131-132), with the
		// code that names why, COMPRESSIONACTIVE (rfc4978.txt:143-146, 317).
		return Bad("COMPRESSIONACTIVE", "DEFLATE active already")
	}
	c.afterReply = c.startDeflate
	return c.OK("", "DEFLATE active")
}

// startDeflate runs after the tagged OK has been flushed: "the server
// MUST compress starting immediately after the CRLF which ends the tagged
// OK response" (rfc4978.txt:148-152), and "the client MUST compress
// starting with the first command after COMPRESS" (rfc4978.txt:138-141),
// so what is already buffered from the client is compressed too.
func (c *Conn) startDeflate() error {
	c.w.Lock()
	c.w.compress(deadlineWriter{c.nc, c.srv.cfg.WriteTimeout})
	c.w.Unlock()
	c.setReader(bufio.NewReaderSize(newInflater(c.br), 16<<10))
	return nil
}

// newInflater decompresses the client's stream with internal/inflate:
// compress/flate's reader hands out what it decoded only at a sync flush,
// and a client that ends each batch with Z_PARTIAL_FLUSH (mbsync 1.4)
// would wait for an answer forever while its commands sat decoded in the
// server's window (the mbsync test in conformance/clients_test.go timed
// out; TestCompressPartialFlush). RFC 4978 leaves the flush to the client.
func newInflater(r *bufio.Reader) io.Reader { return inflate.NewReader(r) }
