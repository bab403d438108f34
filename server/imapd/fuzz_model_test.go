package imapd

// The client-side model FuzzServer checks the server against: the bytes the
// client sent are re-read with the server's own command reader (ReadCommand)
// in lock step with the server's responses. Every command the reader
// completes owes exactly one completion, in order: a tagged reply with its
// tag, an untagged BAD when no tag could be read ("the associated command
// can not be determined", rfc3501.txt:3687), or a BYE. Continuation requests
// are accounted for: one per synchronising literal the reader accepts ("the
// server indicates that it is expected", rfc3501.txt:4396), and one more
// when a command reads a line of its own (IDLE's DONE, "using the
// continuation", rfc2177.txt:78; an AUTHENTICATE response, "a series of
// server challenges and client responses", rfc3501.txt:1548). The replay
// also says what the server is waiting for at the end of the input, so the
// probe can finish the pending command and send one of its own.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
)

// pending is what the server waits for when the client stops sending.
type pending int

const (
	pendBoundary pending = iota // the next command
	pendCommand                 // the rest of a command (its line or a literal)
	pendRawLine                 // a line read by the command itself (IDLE, AUTHENTICATE)
	pendTLS                     // a TLS handshake (STARTTLS was accepted)
	pendClosed                  // nothing: the server said BYE
)

// modelState is the outcome of a replay.
type modelState struct {
	pending pending
	// complete: for pendCommand and pendRawLine, the number of LF octets
	// that complete what is pending (the same reader, fed LFs, says so).
	complete int
	// rawEmpty: pendRawLine and not one octet of that line was sent.
	rawEmpty bool
	cmds     int // commands completed (each answered)
}

type evKind int

const (
	evOther       evKind = iota // untagged data or status other than BAD/BYE
	evCont                      // "+ ..."
	evTagged                    // "tag OK|NO|BAD ..."
	evUntaggedBad               // "* BAD ..."
	evBye                       // "* BYE ..."
)

type event struct {
	kind   evKind
	tag    string
	status string
	line   string
}

// classify reads one response line (literals folded in, as respReader
// returns them).
func classify(l string) event {
	e := event{line: l}
	switch {
	case l == "+" || strings.HasPrefix(l, "+ "):
		e.kind = evCont
	case strings.HasPrefix(l, "* BAD ") || l == "* BAD":
		e.kind = evUntaggedBad
	case strings.HasPrefix(l, "* BYE ") || l == "* BYE":
		e.kind = evBye
	case strings.HasPrefix(l, "* "):
		e.kind = evOther
	default:
		e.kind = evTagged
		e.tag, e.status, _ = strings.Cut(l, " ")
		e.status, _, _ = strings.Cut(e.status, " ")
	}
	return e
}

// isServerBug reports whether a response line is a status with the
// SERVERBUG code (rfc5530.txt:231): only status lines count, not message
// data that happens to contain the word.
func isServerBug(l string) bool {
	e := classify(l)
	var rest string
	switch e.kind {
	case evTagged:
		_, rest, _ = strings.Cut(l, " ")
	case evUntaggedBad, evBye:
		rest = l[2:]
	case evOther:
		rest = l[2:]
		if !strings.HasPrefix(rest, "OK ") && !strings.HasPrefix(rest, "NO ") {
			return false
		}
	default:
		return false
	}
	_, rest, _ = strings.Cut(rest, " ")
	return strings.HasPrefix(rest, "["+CodeServerBug+"]")
}

// modelError is an oracle violation found by the replay.
type modelError struct{ msg string }

func (e *modelError) Error() string { return e.msg }

func modelErrf(format string, args ...any) error {
	return &modelError{fmt.Sprintf(format, args...)}
}

// replay re-reads in (what the client sent since the model started, at a
// command boundary of the server's reader) against lines (the server's
// responses since then). closed says the server has closed the connection:
// then missing responses at the end are not held against it.
func replay(in []byte, lines []string, lim Limits, closed bool) (modelState, error) {
	var evs []event
	for _, l := range lines {
		if e := classify(l); e.kind != evOther {
			evs = append(evs, e)
		}
	}
	src := bytes.NewReader(in)
	br := bufio.NewReaderSize(src, 16<<10)
	conts := 0
	r := newReader(br, lim, func() error { conts++; return nil })
	pos := func() int { return len(in) - src.Len() - br.Buffered() }
	var st modelState

	next := func(what string) (event, error) {
		if len(evs) == 0 {
			if closed {
				return event{}, io.EOF
			}
			return event{}, modelErrf("the server waits for input but has not answered %s", what)
		}
		e := evs[0]
		evs = evs[1:]
		return e, nil
	}
	takeConts := func(n int, what string) error {
		for range n {
			e, err := next("the literal of " + what)
			if err != nil {
				return err
			}
			if e.kind != evCont {
				return modelErrf("expected a continuation request for a literal of %s, got %q", what, e.line)
			}
		}
		return nil
	}
	for {
		start := pos()
		conts = 0
		cmd, err := r.ReadCommand()
		var pe *ParseError
		if err != nil && !errors.As(err, &pe) {
			// The input ends inside this command (or exactly before it).
			if err := takeConts(conts, "the last command"); err != nil {
				return st, ignoreEOF(err)
			}
			if start == len(in) {
				if len(evs) > 0 && !closed {
					return st, modelErrf("response %q answers no command", evs[0].line)
				}
				st.pending = pendBoundary
				return st, nil
			}
			if len(evs) > 0 && !closed {
				return st, modelErrf("response %q before the command that is still being sent", evs[0].line)
			}
			st.pending, st.complete = pendCommand, completion(in[start:], lim, false)
			return st, nil
		}
		what := fmt.Sprintf("command %q", quoteInput(in[start:pos()]))
		if err := takeConts(conts, what); err != nil {
			return st, ignoreEOF(err)
		}
		if pe != nil {
			e, err := next(what)
			if err != nil {
				return st, ignoreEOF(err)
			}
			switch {
			case pe.Status.Kind == "BYE":
				if e.kind != evBye {
					return st, modelErrf("%s: expected BYE, got %q", what, e.line)
				}
				st.pending = pendClosed
				return st, nil
			case pe.Tag == "":
				if e.kind != evUntaggedBad {
					return st, modelErrf("%s has no tag: expected an untagged BAD, got %q", what, e.line)
				}
			case e.kind == evUntaggedBad:
				// An untagged BAD is for a command whose tag "can not be
				// determined" (rfc3501.txt:3687).
				return st, modelErrf("untagged BAD %q for %s, whose tag %q the reader reads", e.line, what, pe.Tag)
			case e.kind != evTagged || e.tag != pe.Tag || e.status != pe.Status.Kind:
				return st, modelErrf("%s: expected %q %s, got %q", what, pe.Tag, pe.Status.Kind, e.line)
			}
			st.cmds++
			continue
		}
		e, err := next(what)
		if err != nil {
			return st, ignoreEOF(err)
		}
		if e.kind == evCont {
			// The command reads a line of its own.
			rawStart := pos()
			_, err := r.ReadLine()
			if err != nil && !errors.As(err, &pe) {
				st.pending, st.rawEmpty = pendRawLine, rawStart == len(in)
				st.complete = completion(in[rawStart:], lim, true)
				return st, nil
			}
			if e, err = next(what); err != nil {
				return st, ignoreEOF(err)
			}
		}
		switch {
		case e.kind == evUntaggedBad:
			// An untagged BAD is for a command whose tag "can not be
			// determined" (rfc3501.txt:3687).
			return st, modelErrf("untagged BAD %q for %s, which the reader reads with tag %q", e.line, what, cmd.Tag)
		case e.kind == evBye:
			// LOGOUT's BYE comes before its tagged OK ("Server logging out",
			// rfc3501.txt:1422).
			if len(evs) > 0 && evs[0].kind == evTagged && evs[0].tag == cmd.Tag {
				evs = evs[1:]
			}
			st.pending = pendClosed
			return st, nil
		case e.kind != evTagged || e.tag != cmd.Tag:
			return st, modelErrf("%s: expected a tagged reply %q, got %q", what, cmd.Tag, e.line)
		}
		st.cmds++
		if cmd.Name == "STARTTLS" && e.status == "OK" {
			st.pending = pendTLS
			return st, nil
		}
	}
}

func ignoreEOF(err error) error {
	if err == io.EOF {
		return nil
	}
	return err
}

// completion returns how many LF octets complete the command (or, raw,
// the line) that rest starts: the reader is fed rest and then LFs.
func completion(rest []byte, lim Limits, raw bool) int {
	fill := bytes.Repeat([]byte{'\n'}, lim.MaxLine+int(lim.MaxAppend)+16)
	src := bytes.NewReader(append(append([]byte{}, rest...), fill...))
	br := bufio.NewReaderSize(src, 16<<10)
	r := newReader(br, lim, func() error { return nil })
	if raw {
		r.ReadLine()
	} else {
		r.ReadCommand()
	}
	used := src.Size() - int64(src.Len()) - int64(br.Buffered())
	return max(1, int(used)-len(rest))
}

func quoteInput(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "..."
	}
	return string(b)
}
