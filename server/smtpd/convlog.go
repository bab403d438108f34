package smtpd

import (
	"bytes"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
)

// convLog is the go-smtp Debug writer of one connection: it receives the
// plaintext of both directions (after STARTTLS too) interleaved, splits it
// into lines and logs them with the session's logger.
//
// Credentials never reach the log (DESIGN "Security"): the stream does not
// say which side wrote a line, and a pipelining client's partial line can be
// glued to a server reply, so redaction is by allow-list: a client line is
// logged only when it starts with a known command verb (AUTH keeps its
// mechanism only), and everything while an AUTH exchange is pending is
// redacted. SASL responses are base64 and contain no space, so they never
// look like "VERB args". Message data is summarised as a byte count.
type convLog struct {
	mu          sync.Mutex
	log         *slog.Logger
	buf         []byte
	long        bool  // current line exceeded the buffer: redact it
	authPending bool  // AUTH sent, final reply not yet seen
	inData      bool  // between 354 and "."
	dataBytes   int64 //
	skip        int64 // BDAT chunk bytes still to come
}

const convMaxLine = 4096

func newConvLog(log *slog.Logger) *convLog { return &convLog{log: log} }

var knownVerbs = map[string]bool{"HELO": true, "EHLO": true, "LHLO": true, "MAIL": true, "RCPT": true, "DATA": true,
	"BDAT": true, "RSET": true, "NOOP": true, "QUIT": true, "STARTTLS": true, "VRFY": true, "EXPN": true, "HELP": true}

func (w *convLog) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		if w.skip > 0 {
			k := min(w.skip, int64(len(p)))
			w.skip -= k
			w.dataBytes += k
			p = p[k:]
			if w.skip == 0 {
				w.emit("C: [chunk data, " + strconv.FormatInt(w.dataBytes, 10) + " bytes]")
				w.dataBytes = 0
			}
			continue
		}
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			w.add(p)
			break
		}
		w.add(p[:i])
		p = p[i+1:]
		w.line()
	}
	return n, nil
}

func (w *convLog) add(p []byte) {
	if len(w.buf)+len(p) > convMaxLine {
		w.long = true
		w.dataBytes += int64(len(p))
		return
	}
	w.buf = append(w.buf, p...)
}

func (w *convLog) emit(s string) { w.log.Info("smtpd: " + s) }

func isReply(l string) bool {
	return len(l) >= 3 && l[0] >= '2' && l[0] <= '5' && l[1] >= '0' && l[1] <= '9' && l[2] >= '0' && l[2] <= '9' &&
		(len(l) == 3 || l[3] == ' ' || l[3] == '-')
}

func (w *convLog) line() {
	l := strings.TrimSuffix(string(w.buf), "\r")
	long := w.long
	w.buf, w.long = w.buf[:0], false
	if w.inData {
		if l == "." && !long {
			w.emit(fmt.Sprintf("C: [message data, %d bytes]", w.dataBytes))
			w.emit("C: .")
			w.inData, w.dataBytes = false, 0
		} else {
			w.dataBytes += int64(len(l)) + 2
		}
		return
	}
	if long {
		w.emit("[long line redacted]")
		return
	}
	if isReply(l) {
		w.emit("S: " + l)
		if len(l) == 3 || l[3] == ' ' { // final line of a reply
			switch {
			case strings.HasPrefix(l, "354"):
				w.inData, w.dataBytes = true, 0
			case strings.HasPrefix(l, "334"):
			default:
				w.authPending = false
			}
		}
		return
	}
	fields := strings.Fields(l)
	verb := ""
	if len(fields) > 0 {
		verb = strings.ToUpper(fields[0])
	}
	switch {
	case w.authPending:
		w.emit("C: [redacted]")
	case verb == "AUTH":
		w.authPending = true
		if len(fields) > 2 {
			w.emit("C: AUTH " + fields[1] + " [redacted]")
		} else {
			w.emit("C: " + strings.Join(fields, " "))
		}
	case knownVerbs[verb]:
		w.emit("C: " + l)
		if verb == "BDAT" && len(fields) > 1 {
			if n, err := strconv.ParseInt(fields[1], 10, 64); err == nil && n > 0 {
				w.skip, w.dataBytes = n, 0
			}
		}
	default:
		w.emit(fmt.Sprintf("C: [redacted, %d bytes]", len(l)))
	}
}

func (w *convLog) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 || w.long {
		w.emit("[incomplete line redacted]")
		w.buf = w.buf[:0]
	}
}
