package imapd

// The command reader: one full command (including its literals) per
// ReadCommand call, streamed from a bufio.Reader. Grammar: rfc3501.txt:4487ff
// (§9), literal rfc7888.txt:325, literal8 rfc9051.txt:6663.
//
// Limits and what happens when they are exceeded (documented choices):
//
//   - The command text outside literals is limited to Limits.MaxLine bytes
//     (all line fragments together). Longer → tagged "BAD [TOOBIG]", the rest
//     of the line is discarded and the session continues.
//   - A literal above the per-command limit (Limits.MaxAppend for APPEND,
//     Limits.MaxLiteral otherwise; the sum of all literals of one command is
//     capped by MaxCommandLiterals, plus MaxAppend for APPEND, whose several
//     messages (MULTIAPPEND) or CATENATE parts share it):
//     synchronising → no "+" is sent and no data is read; APPEND gets
//     "NO [TOOBIG]" (rfc4469.txt:231), other commands "BAD [TOOBIG]";
//     non-synchronising (LITERAL+) → RFC 7888 §4 option 1 ("Read the number of
//     bytes specified", rfc7888.txt:243):
//     the data is read and discarded and the command gets "BAD [TOOBIG]"
//     (rfc7888.txt:290), unless the literal is even larger than MaxAppend:
//     then option 2, "* BYE [TOOBIG]" and close (rfc7888.txt:250), so a
//     client cannot make us read gigabytes.
//   - After any syntax error the reader resyncs to the end of the command
//     line, discarding announced non-synchronising literals on the way
//     (a synchronising one is never sent by the client since no "+" came).

import (
	"bufio"
	"errors"
	"io"
	"strconv"
	"strings"

	"decimail/server/store"
)

// ValueKind says how an argument was written on the wire.
type ValueKind int

const (
	Atom     ValueKind = iota // includes NIL, numbers, sequence sets, flags, fetch atts
	String                    // quoted string
	Literal                   // {n} or {n+}
	Literal8                  // literal8 ~{n} (rfc9051.txt:6663), APPEND/BINARY only
	List                      // parenthesised list
)

// Value is one argument of a command.
type Value struct {
	Kind ValueKind
	S    string  // text of atoms, strings and literals
	List []Value // items of a List
	// File holds a literal the reader spooled to disk instead of S (an
	// APPEND message above spoolAbove octets); Command.Close releases it.
	File *store.Incoming
}

// spoolAbove: APPEND literals larger than this go to a spool file as they
// arrive, not to memory (DeliverIncoming then reads the file once).
const spoolAbove = 64 << 10

// IsString reports whether v is a string (quoted or literal, not literal8).
func (v Value) IsString() bool { return v.Kind == String || v.Kind == Literal }

// IsNIL reports whether v is the atom NIL (case-insensitive).
func (v Value) IsNIL() bool { return v.Kind == Atom && strings.EqualFold(v.S, "NIL") }

// AString returns the value of an astring argument (rfc3501.txt:4550).
func (v Value) AString() (string, bool) {
	if v.Kind == Atom || v.IsString() {
		return v.S, true
	}
	return "", false
}

// Command is one parsed client command.
type Command struct {
	Tag  string
	Name string // upper case; "UID FETCH" etc. for UID commands
	Args []Value
	Line int // command number within the session, for logs
}

// Close releases the spool files of the command's literals (also those
// in lists: CATENATE's TEXT parts).
func (cmd *Command) Close() { closeValues(cmd.Args) }

func closeValues(vs []Value) {
	for _, v := range vs {
		if v.File != nil {
			v.File.Close()
		}
		closeValues(v.List)
	}
}

// ParseError is a command that could not be read. Tag is set when the tag
// was read, so the core answers "tag BAD ..." instead of "* BAD ...".
// A Status of Kind "BYE" means the connection must be closed.
type ParseError struct {
	Tag    string
	Status *Status
}

func (e *ParseError) Error() string { return e.Status.Error() }

// Limits bound what one command may make the server read.
type Limits struct {
	MaxLine    int   // command text outside literals
	MaxLiteral int64 // one literal, non-APPEND commands
	MaxAppend  int64 // one APPEND literal
	// MaxCommandLiterals caps all literals of one command together (an
	// APPEND: its message plus this much). 0 means MaxLiteral.
	MaxCommandLiterals int64
	// MaxPreAuthLiterals caps all literals of one command before
	// authentication (LOGIN's name and password); a non-synchronising one
	// above it ends the connection (BYE [TOOBIG]). 0 means 8 KiB.
	MaxPreAuthLiterals int64
}

// memBudget is the memory a connection's address may have in flight:
// literals held in memory are reserved before they are read and released
// when the next command is read (Server.reserve).
type memBudget interface {
	reserve(n int64) bool
	release()
}

const maxNesting = 100 // parenthesised lists (SEARCH programs nest)

type reader struct {
	br   *bufio.Reader
	lim  Limits
	cont func() error // writes "+ ..." and flushes, before a synchronising literal's data

	mem memBudget // nil: no per-address budget (tests, STATUS read-ahead)
	// spool makes the file an APPEND message literal streams into; nil:
	// every literal is read into memory.
	spool func() (*store.Incoming, error)

	n        int    // commands read
	lineLen  int    // bytes of command text read for the current command
	litTotal int64  // literal bytes read for the current command
	name     string // current command name, decides the literal limit
	preAuth  bool   // not authenticated: MaxPreAuthLiterals for every command
}

func newReader(br *bufio.Reader, lim Limits, cont func() error) *reader {
	if lim.MaxCommandLiterals <= 0 {
		lim.MaxCommandLiterals = lim.MaxLiteral
	}
	if lim.MaxPreAuthLiterals <= 0 {
		lim.MaxPreAuthLiterals = 8 << 10
	}
	return &reader{br: br, lim: lim, cont: cont}
}

func perr(st *Status) error { return &ParseError{Status: st} }

// ReadCommand reads the next command. It returns a *ParseError for a
// malformed command (the stream is then positioned after it), any other
// error is an I/O error and ends the session.
func (r *reader) ReadCommand() (*Command, error) {
	r.n++
	r.lineLen, r.litTotal, r.name = 0, 0, ""
	if r.mem != nil {
		r.mem.release() // the previous command has been executed
	}
	cmd := &Command{Line: r.n}
	err := r.readCommand(cmd)
	if err == nil {
		return cmd, nil
	}
	cmd.Close()
	var pe *ParseError
	if !errors.As(err, &pe) {
		return nil, err
	}
	pe.Tag = cmd.Tag
	if pe.Status.Kind == "BYE" {
		return nil, pe
	}
	if err := r.skipLine(); err != nil {
		return nil, err
	}
	return nil, pe
}

func (r *reader) readCommand(cmd *Command) error {
	c, err := r.peek()
	if err != nil {
		return err
	}
	if isEOL(c) {
		return perr(Syntax("empty command line"))
	}
	tag := r.scan(isTagChar)
	if tag == "" {
		return perr(Syntax("invalid tag"))
	}
	// Once the tag is read the error is the command's: tagged BAD
	// (rfc3501.txt:3680-3712 keeps untagged BAD for lines without a tag).
	cmd.Tag = tag // rfc3501.txt:5061
	if err := r.expectSP(); err != nil {
		return err
	}
	name, err := r.readName()
	if err != nil {
		return err
	}
	if name == "UID" {
		if err := r.expectSP(); err != nil {
			return err
		}
		sub, err := r.readName()
		if err != nil {
			return err
		}
		name += " " + sub
	}
	cmd.Name, r.name = name, name
	for {
		c, err := r.peek()
		if err != nil {
			return err
		}
		if isEOL(c) {
			return r.readEOL()
		}
		if err := r.expectSP(); err != nil {
			return err
		}
		v, err := r.readValue(0)
		if err != nil {
			return err
		}
		cmd.Args = append(cmd.Args, v)
	}
}

func (r *reader) readName() (string, error) {
	s := r.scan(isTagChar)
	if s == "" {
		return "", perr(Syntax("missing command name"))
	}
	return strings.ToUpper(s), nil
}

func (r *reader) readValue(depth int) (Value, error) {
	c, err := r.peek()
	if err != nil {
		return Value{}, err
	}
	switch {
	case c == '(':
		return r.readList(depth + 1)
	case c == '"':
		s, err := r.readQuoted()
		return Value{Kind: String, S: s}, err
	case c == '{':
		return r.readLiteral(Literal)
	case c == '~':
		if b, _ := r.br.Peek(2); len(b) == 2 && b[1] == '{' {
			r.next()
			return r.readLiteral(Literal8)
		}
	}
	s, err := r.readAtom()
	return Value{Kind: Atom, S: s}, err
}

func (r *reader) readList(depth int) (Value, error) {
	if depth > maxNesting {
		return Value{}, perr(Syntax("lists nested too deeply"))
	}
	r.next() // '('
	v := Value{Kind: List, List: []Value{}}
	for {
		c, err := r.peek()
		if err != nil {
			return v, err
		}
		if c == ')' {
			r.next()
			return v, nil
		}
		if len(v.List) > 0 {
			if err := r.expectSP(); err != nil {
				return v, err
			}
		}
		item, err := r.readValue(depth)
		if err != nil {
			return v, err
		}
		v.List = append(v.List, item)
	}
}

// readAtom reads an atom, widened by the characters the grammar puts in
// bare tokens: "]" and "\" (ASTRING-CHAR, flags, rfc3501.txt:4552), "%" "*" (list
// wildcards, sequence sets). A fetch attribute "BODY[...]<...>" is one atom:
// inside its section spaces, parens and quoted strings are swallowed up to
// the closing "]" (rfc3501.txt:4975), then an optional partial "<...>".
func (r *reader) readAtom() (string, error) {
	var b strings.Builder
	for {
		c, err := r.peek()
		if err != nil {
			return "", err
		}
		if !isAtomChar(c) {
			break
		}
		r.next()
		b.WriteByte(c)
		if c == '[' && isSectionPrefix(b.String()) {
			if err := r.readSection(&b); err != nil {
				return "", err
			}
			break
		}
	}
	if b.Len() == 0 {
		return "", perr(Syntax("expected an argument"))
	}
	return b.String(), nil
}

func isSectionPrefix(s string) bool {
	switch strings.ToUpper(s) {
	case "BODY[", "BODY.PEEK[", "BINARY[", "BINARY.PEEK[", "BINARY.SIZE[":
		return true
	}
	return false
}

func (r *reader) readSection(b *strings.Builder) error {
	quoted, esc := false, false
	for {
		c, err := r.peek()
		if err != nil {
			return err
		}
		if isEOL(c) {
			return perr(Syntax("unterminated section"))
		}
		r.next()
		b.WriteByte(c)
		switch {
		case esc:
			esc = false
		case quoted && c == '\\':
			esc = true
		case c == '"':
			quoted = !quoted
		case !quoted && c == ']':
			return r.readPartial(b)
		}
	}
}

func (r *reader) readPartial(b *strings.Builder) error {
	if c, err := r.peek(); err != nil || c != '<' {
		return err
	}
	for {
		c, err := r.peek()
		if err != nil {
			return err
		}
		if isEOL(c) {
			return perr(Syntax("bad partial"))
		}
		r.next()
		b.WriteByte(c)
		if c == '>' {
			return nil
		}
		if c != '<' && c != '.' && (c < '0' || c > '9') {
			return perr(Syntax("bad partial"))
		}
	}
}

// readQuoted reads a quoted string (rfc3501.txt:4901): "\" may only escape
// DQUOTE and "\"; CR and LF are not allowed. 8-bit octets are accepted
// (UTF-8 search strings).
func (r *reader) readQuoted() (string, error) {
	r.next() // '"'
	var b strings.Builder
	for {
		c, err := r.peek()
		if err != nil {
			return "", err
		}
		if isEOL(c) {
			return "", perr(Syntax("unterminated quoted string"))
		}
		r.next()
		switch c {
		case '"':
			return b.String(), nil
		case '\\':
			c, err = r.peek()
			if err != nil {
				return "", err
			}
			if c != '"' && c != '\\' {
				return "", perr(Syntax(`bad escape in quoted string`))
			}
			r.next()
		case 0:
			return "", perr(Syntax("NUL in quoted string"))
		}
		b.WriteByte(c)
	}
}

// readLiteral reads "{n}" / "{n+}" CRLF and n octets (the "~" of a literal8
// is already consumed). The size is checked before the continuation
// request is sent, so an oversized synchronising literal is never read.
func (r *reader) readLiteral(kind ValueKind) (Value, error) {
	r.next() // '{'
	digits := r.scan(func(c byte) bool { return c >= '0' && c <= '9' })
	n, err := strconv.ParseUint(digits, 10, 63)
	if err != nil || (kind == Literal && n > 1<<32-1) { // number is 32 bit, rfc3501.txt:4891
		return Value{}, perr(Syntax("bad literal size"))
	}
	sync := true
	if c, _ := r.peek(); c == '+' {
		r.next()
		sync = false // literal with "+", rfc7888.txt:325
	}
	if c, err := r.next(); err != nil || c != '}' {
		return Value{}, orSyntax(err, "bad literal")
	}
	if c, err := r.peek(); err != nil || !isEOL(c) {
		return Value{}, orSyntax(err, "literal size must end the line")
	}
	size := int64(n)
	if err := r.checkLiteral(size, sync); err != nil {
		if !sync && err.(*ParseError).Status.Kind == "BAD" {
			// rfc7888.txt:243: read and discard, then reject ("Read the number of
			// bytes specified ... and reject the command").
			if err := r.readEOL(); err != nil {
				return Value{}, err
			}
			if _, err := r.br.Discard(int(size)); err != nil {
				return Value{}, err
			}
		}
		return Value{}, err
	}
	if err := r.readEOL(); err != nil {
		return Value{}, err
	}
	if sync {
		if err := r.cont(); err != nil { // "not permitted to send the octets of the literal unless the server indicates", rfc3501.txt:4396
			return Value{}, err
		}
	}
	if r.spooled(size) {
		in, err := r.spool()
		if err != nil {
			return Value{}, err
		}
		if _, err := io.CopyN(in, r.br, size); err != nil {
			in.Close()
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return Value{}, err
		}
		r.litTotal += size
		return Value{Kind: kind, File: in}, nil
	}
	var b strings.Builder // one copy of the octets, not a buffer and a string
	b.Grow(int(size))
	if _, err := io.CopyN(&b, r.br, size); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return Value{}, err
	}
	r.litTotal += size
	return Value{Kind: kind, S: b.String()}, nil
}

// spooled says whether a literal of size octets goes to a spool file.
func (r *reader) spooled(size int64) bool {
	return r.spool != nil && r.name == "APPEND" && !r.preAuth && size > spoolAbove
}

func (r *reader) checkLiteral(size int64, sync bool) error {
	limit, total := r.lim.MaxLiteral, r.lim.MaxCommandLiterals
	switch {
	case r.preAuth: // no uploads before login, whatever the command
		limit, total = r.lim.MaxPreAuthLiterals, r.lim.MaxPreAuthLiterals
	case r.name == "APPEND":
		limit, total = r.lim.MaxAppend, r.lim.MaxAppend+r.lim.MaxCommandLiterals
	}
	if size <= limit && r.litTotal+size <= total {
		if r.mem == nil || r.spooled(size) || r.mem.reserve(size) {
			return nil
		}
		if sync { // nothing sent yet: the client may try again later
			return perr(No(CodeLimit, "too much data in flight from your address, try again later")) // LIMIT, rfc5530.txt:256-259
		}
		return perr(Bad(CodeTooBig, "too much data in flight from your address")) // read and discarded
	}
	switch {
	case !sync && r.preAuth:
		return perr(Bye(CodeTooBig, "literal too big before authentication")) // option 2, "Send an untagged BYE response", rfc7888.txt:249
	case !sync && size > r.lim.MaxAppend:
		return perr(Bye(CodeTooBig, "literal too big")) // option 2, "Send an untagged BYE response", rfc7888.txt:249
	case sync && r.name == "APPEND" && !r.preAuth:
		return perr(No(CodeTooBig, "message too big")) // TOOBIG, rfc4469.txt:231
	default: // non-synchronising ones are discarded by skipLine
		return perr(Bad(CodeTooBig, "literal too big")) // "the tagged BAD response MUST contain the TOOBIG response code", rfc7888.txt:290
	}
}

// ReadLine reads one raw line (SASL responses, IDLE's DONE) without the
// line end, within the line limit.
func (r *reader) ReadLine() (string, error) {
	r.lineLen = 0
	var b strings.Builder
	for {
		c, err := r.peek()
		if err == nil {
			r.next()
		}
		if err != nil {
			var pe *ParseError
			if errors.As(err, &pe) {
				if err := r.skipLine(); err != nil {
					return "", err
				}
			}
			return "", err
		}
		if c == '\n' {
			return strings.TrimSuffix(b.String(), "\r"), nil
		}
		b.WriteByte(c)
	}
}

// skipLine discards the rest of the command: up to the line end, and
// through any non-synchronising literal announced at the end of a line.
func (r *reader) skipLine() error {
	var tail []byte // last bytes of the line, to spot "{n+}"
	for {
		c, err := r.br.ReadByte()
		if err != nil {
			return err
		}
		if c != '\n' {
			tail = append(tail, c)
			if len(tail) > 32 {
				tail = tail[len(tail)-24:]
			}
			continue
		}
		n, ok := nonSyncLiteralAt(strings.TrimSuffix(string(tail), "\r"))
		if !ok {
			return nil
		}
		if n > r.lim.MaxAppend {
			return &ParseError{Status: Bye(CodeTooBig, "literal too big")}
		}
		if _, err := r.br.Discard(int(n)); err != nil {
			return err
		}
		tail = tail[:0]
	}
}

func nonSyncLiteralAt(s string) (int64, bool) {
	if !strings.HasSuffix(s, "+}") {
		return 0, false
	}
	i := strings.LastIndexByte(s, '{')
	if i < 0 {
		return 0, false
	}
	n, err := strconv.ParseInt(s[i+1:len(s)-2], 10, 63)
	return n, err == nil && n >= 0
}

// peek returns the next byte without consuming it. Every loop of the
// parser peeks, so the line limit is enforced here.
func (r *reader) peek() (byte, error) {
	if r.lineLen >= r.lim.MaxLine {
		return 0, perr(Bad(CodeTooBig, "command line too long"))
	}
	b, err := r.br.Peek(1)
	if err != nil {
		return 0, err
	}
	return b[0], nil
}

func (r *reader) next() (byte, error) {
	c, err := r.br.ReadByte()
	if err != nil {
		return 0, err
	}
	r.lineLen++
	return c, nil
}

// scan consumes the longest run of bytes matching ok.
func (r *reader) scan(ok func(byte) bool) string {
	var b strings.Builder
	for {
		c, err := r.peek()
		if err != nil || !ok(c) {
			return b.String()
		}
		if _, err := r.next(); err != nil {
			return b.String()
		}
		b.WriteByte(c)
	}
}

func (r *reader) expectSP() error {
	c, err := r.peek()
	if err != nil {
		return err
	}
	if c != ' ' {
		return perr(Syntax("expected a space"))
	}
	_, err = r.next()
	return err
}

// readEOL accepts CRLF and, leniently, a bare LF.
func (r *reader) readEOL() error {
	c, err := r.next()
	if err == nil && c == '\r' {
		c, err = r.next()
	}
	if err != nil {
		return err
	}
	if c != '\n' {
		return perr(Syntax("CR without LF"))
	}
	return nil
}

func orSyntax(err error, text string) error {
	if err != nil {
		return err
	}
	return perr(Syntax(text))
}

func isEOL(c byte) bool { return c == '\r' || c == '\n' }

// isAtomChar: ATOM-CHAR (rfc3501.txt:4556) plus resp-specials, "\" and
// the list wildcards; 8-bit octets are tolerated (UTF-8 mailbox names).
func isAtomChar(c byte) bool {
	if c <= ' ' || c == 0x7f {
		return false
	}
	switch c {
	case '(', ')', '{', '"':
		return false
	}
	return true
}

// isTagChar: any ASTRING-CHAR except "+" (rfc3501.txt:5061), 7-bit only.
func isTagChar(c byte) bool {
	if c <= ' ' || c >= 0x7f {
		return false
	}
	switch c {
	case '(', ')', '{', '"', '%', '*', '\\', '+':
		return false
	}
	return true
}
