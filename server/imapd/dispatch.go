package imapd

import (
	"errors"
	"fmt"
	"runtime/debug"
	"runtime/trace"
	"strconv"
	"strings"
	"time"

	"decimail/server/store"
)

// stateSet is the set of states a command is valid in.
type stateSet uint8

const (
	notAuthenticated  stateSet = 1 << NotAuthenticated
	authenticatedOnly stateSet = 1 << Authenticated // e.g. ENABLE, rfc5161
	selected          stateSet = 1 << Selected
	// authenticated: commands of the authenticated state are valid in the
	// selected state too (rfc3501.txt:2612-2616: "and the authenticated state
	// commands").
	authenticated = authenticatedOnly | selected
	anyState      = notAuthenticated | authenticated
)

// cmdSpec describes a command. A handler returns nil (tagged OK with
// default text), c.OK(code, text), a *Status (tagged NO/BAD, or BYE), or
// any other error (logged, answered "NO [SERVERBUG]").
type cmdSpec struct {
	states stateSet
	ext    string // capability that must be enabled, e.g. "MOVE"; "" for base
	fn     func(c *Conn, cmd *Command) error
	// readsClient: the handler waits on a read of the client (IDLE's DONE),
	// which ends when the client goes away, so no hangup watch runs.
	readsClient bool
}

// commands is filled by init functions only and read-only afterwards.
var commands = map[string]cmdSpec{}

// register adds a command; name is upper case, "UID MOVE" for UID forms.
func register(name string, spec cmdSpec) {
	if _, dup := commands[name]; dup {
		panic("imapd: command registered twice: " + name)
	}
	commands[name] = spec
}

// noExpunge lists the commands during which EXPUNGE must not be sent (FETCH,
// STORE, SEARCH: rfc3501.txt:4053-4059; SORT, THREAD: rfc5256.txt:242-244,
// 354-356); their UID forms may (rfc3501.txt:4061-4063).
var noExpunge = map[string]bool{"FETCH": true, "STORE": true, "SEARCH": true, "SORT": true, "THREAD": true}

// lookup finds the command and checks capability and state: the single
// place where per-state allow-lists are enforced. A command in the wrong
// state is a protocol-level error in the client's command, so BAD
// (rfc3501.txt:3685; each command's "BAD - command unknown or arguments
// invalid", e.g. rfc3501.txt:1307).
func (c *Conn) lookup(name string) (cmdSpec, *Status) {
	spec, ok := commands[name]
	if !ok || spec.ext != "" && !c.capable(spec.ext) {
		return spec, Bad("", "unknown command "+name)
	}
	if spec.states&(1<<c.state) == 0 {
		return spec, Bad("", fmt.Sprintf("%s not allowed in %s state", name, c.state))
	}
	return spec, nil
}

// execute runs one command and writes its tagged reply. It returns an
// error only when the client connection failed during the command
// (connError): the session ends.
func (c *Conn) execute(cmd *Command) error {
	start := time.Now()
	// A region per command in execution traces (/debug/pprof/trace of
	// `decimail serve -pprof`): where a command's time goes, by name.
	defer trace.StartRegion(c.ctx, cmd.Name).End()
	if cmd.Name != "STATUS" {
		c.statusAhead = nil
	}
	spec, st := c.lookup(cmd.Name)
	if st != nil {
		c.reply(cmd, st)
		c.observe(cmd.Name, st.Kind, start)
		return nil
	}
	stop := func() {}
	if !spec.readsClient {
		stop = c.watchHangup()
	}
	c.sentModSeq, c.seqCriteria = 0, false
	err := c.call(spec, cmd)
	stop()
	if ce := (*connError)(nil); errors.As(err, &ce) {
		return ce
	}
	st = c.status(cmd, err)
	if st.Kind == "BYE" {
		c.observe(cmd.Name, st.Kind, start)
		return c.bye(st)
	}
	if c.poll != nil && c.state == Selected {
		// "the VANISHED response MUST NOT be sent during a UID SEARCH
		// command that contains message numbers in the search criteria"
		// (rfc7162.txt:2041-2045).
		if perr := c.poll(!noExpunge[cmd.Name] && !(c.qresync && c.seqCriteria)); perr != nil {
			var ps *Status
			if errors.As(perr, &ps) && ps.Kind == "BYE" {
				c.observe(cmd.Name, ps.Kind, start)
				return c.bye(ps)
			}
			if store.IsUnavailable(perr) {
				c.log.Warn("poll failed: mail store unavailable", "cmd", cmd.Name, "err", perr)
			} else {
				c.log.Error("poll failed", "cmd", cmd.Name, "err", perr)
			}
		}
		c.delayedVanished()
	}
	c.reply(cmd, st)
	c.observe(cmd.Name, st.Kind, start)
	return nil
}

// call runs the handler; a panic is logged and answered like an error.
// A handler that panicked after writing part of a response (FETCH with its
// rows half written) left output whose end is unknown, maybe inside a
// literal: nothing can follow it on this connection. Then the writer lock,
// if the handler still held it, is released (else the next reply, and
// Server.Close, would wait for it forever), the line is ended and the
// session ends with BYE [SERVERBUG].
func (c *Conn) call(spec cmdSpec, cmd *Command) (err error) {
	mark := c.w.written()
	defer func() {
		if p := recover(); p != nil {
			c.log.Error("handler panic", "cmd", cmd.Name, "panic", p, "stack", string(debug.Stack()))
			err = fmt.Errorf("panic: %v", p)
			if c.w.held {
				c.w.Unlock()
			}
			if c.w.written() != mark {
				c.w.Lock()
				c.w.CRLF()
				c.w.Unlock()
				err = Bye(CodeServerBug, "internal error") // SERVERBUG, rfc5530.txt:231
			}
		}
	}()
	return spec.fn(c, cmd)
}

// status turns a handler result into the reply status.
func (c *Conn) status(cmd *Command, err error) *Status {
	var st *Status
	switch {
	case err == nil:
		return &Status{Kind: "OK", Text: cmd.Name + " completed"}
	case errors.As(err, &st):
		return st
	case c.ctx.Err() != nil:
		// The client went away (or the server is closing): nobody reads this.
		c.log.Info("command cancelled", "cmd", cmd.Name, "err", err)
		return No(CodeUnavailable, "command cancelled")
	case errors.Is(err, store.ErrOverQuota):
		// APPEND, COPY (a real copy) or MOVE over a limit (quota.go):
		// "the addition of the message(s) puts the target mailbox over any
		// one of its quota limits", rfc9208.txt:474-476.
		return No(CodeOverQuota, "over quota")
	case errors.Is(err, store.ErrTooSlow):
		c.log.Warn("command over the statement timeout", "cmd", cmd.Name, "line", cmd.Line)
		return No(CodeLimit, "command took too long") // LIMIT, rfc5530.txt:256-259
	case store.IsUnavailable(err):
		c.log.Warn("database unavailable", "cmd", cmd.Name, "err", err)
		return No(CodeUnavailable, "database unavailable, try again later") // UNAVAILABLE, rfc5530.txt:95-99
	}
	c.log.Error("command failed", "cmd", cmd.Name, "line", cmd.Line, "err", err)
	return No(CodeServerBug, "internal error") // SERVERBUG, rfc5530.txt:231
}

func (c *Conn) reply(cmd *Command, st *Status) {
	c.w.Lock()
	c.w.Tagged(cmd.Tag, st)
	c.w.Unlock()
}

// formatCommand re-encodes a command for the conversation log. With
// redact, LOGIN and AUTHENTICATE arguments are replaced (DESIGN.md
// Security: passwords never logged) and literals show only their size.
func formatCommand(cmd *Command, redact bool) string {
	b := []byte(cmd.Tag + " " + cmd.Name)
	args := cmd.Args
	if redact {
		switch cmd.Name {
		case "LOGIN":
			args = redactArgs(args, 0)
		case "AUTHENTICATE":
			args = redactArgs(args, 1)
		}
	}
	for _, v := range args {
		b = append(b, ' ')
		b = appendValue(b, v, redact)
	}
	return string(b)
}

var quoteEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`)

func redactArgs(args []Value, keep int) []Value {
	out := append([]Value(nil), args[:min(keep, len(args))]...)
	for range args[len(out):] {
		out = append(out, Value{Kind: Atom, S: "***"})
	}
	return out
}

// appendValue encodes v as the client could have sent it. With short,
// literal contents are elided (logs); otherwise they are written as
// non-synchronising literals (fuzz round trip).
func appendValue(b []byte, v Value, short bool) []byte {
	switch v.Kind {
	case Atom:
		return append(b, v.S...)
	case String:
		b = append(b, '"')
		b = append(b, quoteEscaper.Replace(v.S)...)
		return append(b, '"')
	case Literal, Literal8:
		if v.Kind == Literal8 {
			b = append(b, '~')
		}
		b = append(b, '{')
		b = strconv.AppendInt(b, int64(len(v.S)), 10)
		if short {
			return append(b, "}..."...)
		}
		b = append(b, "+}\r\n"...)
		return append(b, v.S...)
	case List:
		b = append(b, '(')
		for i, item := range v.List {
			if i > 0 {
				b = append(b, ' ')
			}
			b = appendValue(b, item, short)
		}
		return append(b, ')')
	}
	return b
}
