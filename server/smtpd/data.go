package smtpd

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/emersion/go-smtp"
)

// readData copies the message into w (a store.Incoming) through a
// dataWriter, within the DATA deadline: DataTimeout from the start, plus
// one second per DataMinRate bytes received (so a large message arriving
// at a reasonable rate may take longer, a trickle may not). With DATA the
// deadline is the socket's read deadline, set from the start of the
// transfer rather than re-armed per read; with BDAT (go-smtp reads the
// chunks and sets its own deadline per command) it is checked between
// reads. Past it, the client gets 421 and the connection is closed
// (RFC 5321 §3.8, rfc5321.txt:1658: a server may close after a timeout
// waiting "for the client to send a command or data").
func (x *session) readData(r io.Reader, w io.Writer) error {
	cfg := x.s.cfg
	start := time.Now()
	_, bdat := r.(*io.PipeReader)
	dw := &dataWriter{w: w, maxHeader: cfg.MaxHeaderBytes}
	buf := make([]byte, 32<<10)
	var n int64
	for {
		deadline := start.Add(cfg.DataTimeout + time.Duration(n*int64(time.Second)/cfg.DataMinRate))
		if bdat {
			if time.Now().After(deadline) {
				return x.dataTimeout(start, n)
			}
		} else {
			x.conn.Conn().SetReadDeadline(deadline)
		}
		k, err := r.Read(buf)
		n += int64(k)
		if k > 0 {
			if werr := dw.Write(buf[:k]); werr != nil {
				return x.dataRefused(werr)
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return x.dataTimeout(start, n)
		}
		if err != nil {
			return x.dataRefused(err)
		}
	}
	x.headerLen = dw.headerLen()
	return nil
}

func (x *session) dataTimeout(start time.Time, n int64) error {
	x.log.Warn("smtpd: message data too slow; closing connection", "bytes", n,
		"after", time.Since(start).Round(time.Millisecond))
	x.nc.closeAfterReply()
	return &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 4, 2},
		Message: fmt.Sprintf("Message data not received in time (%v plus 1s per %d bytes); closing connection",
			x.s.cfg.DataTimeout, x.s.cfg.DataMinRate)}
}

// dataRefused maps a failed transfer to its reply, logged once here.
func (x *session) dataRefused(err error) error {
	var se *smtp.SMTPError
	switch {
	case errors.Is(err, errHeaderTooLarge):
		// RFC 5321 §4.2.3, rfc5321.txt:2921: "552 Requested mail action
		// aborted: exceeded storage allocation".
		se = &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4},
			Message: fmt.Sprintf("Message header too large (at most %d bytes)", x.s.cfg.MaxHeaderBytes)}
	case errors.Is(err, smtp.ErrDataTooLarge):
		se = &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4},
			Message: fmt.Sprintf("Message too large (at most %d bytes)", x.s.cfg.MaxMessageBytes)}
	case errors.Is(err, smtp.ErrTooLongLine):
		// RFC 5321 §4.5.3.1.6 allows 1000; we accept up to MaxLineLength.
		se = &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0},
			Message: fmt.Sprintf("Line too long (at most %d bytes)", x.s.cfg.MaxLineLength)}
	case errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT):
		x.log.Error("smtpd: spool full", "err", err)
		return errNoStorage // RFC 5321 §4.2.3, rfc5321.txt:2893: "insufficient system storage"
	case errors.As(err, &se):
	case errors.Is(err, os.ErrClosed) || errors.Is(err, net.ErrClosed) || errors.Is(err, io.ErrUnexpectedEOF):
		return err // the connection is gone
	default:
		x.log.Error("smtpd: spool", "err", err)
		return errTempDB
	}
	x.log.Info("smtpd: message refused", "reply", se.Code, "why", se.Message)
	return se
}

var errHeaderTooLarge = errors.New("smtpd: header too large")

// dataWriter passes message data on with bare LF line ends made CRLF
// (RFC 5321 §2.3.8, rfc5321.txt:774: bare CR or LF "has a long history of
// causing" problems; clients sending them are common enough to repair
// rather than refuse),
// counting the header section: past maxHeader bytes without the blank line
// that ends it, it fails with errHeaderTooLarge (parsing a header costs
// more memory per byte than a body).
type dataWriter struct {
	w         io.Writer
	maxHeader int64
	prevCR    bool  // the last byte passed on was CR
	lineLen   int   // bytes of the current line so far
	inBody    bool  // the blank line was seen
	header    int64 // header bytes written, blank line included
	out       []byte
}

func (d *dataWriter) Write(p []byte) error {
	out := d.out[:0]
	for len(p) > 0 {
		seg, rest, eol := bytes.Cut(p, []byte{'\n'})
		p = rest
		out = append(out, seg...)
		if len(seg) > 0 {
			d.lineLen += len(seg)
			d.prevCR = seg[len(seg)-1] == '\r'
		}
		n := int64(len(seg))
		if eol {
			if !d.prevCR {
				out = append(out, '\r')
				n++
			}
			out = append(out, '\n')
			n++
		}
		if !d.inBody {
			if d.header += n; d.header > d.maxHeader {
				return errHeaderTooLarge
			}
			d.inBody = eol && (d.lineLen == 0 || d.lineLen == 1 && d.prevCR)
		}
		if eol {
			d.lineLen, d.prevCR = 0, false
		}
	}
	d.out = out
	_, err := d.w.Write(out)
	return err
}

// headerLen is the length of the header section as written, blank line
// included (all of it when there was no blank line).
func (d *dataWriter) headerLen() int64 { return d.header }
