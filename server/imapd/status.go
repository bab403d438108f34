package imapd

import "strings"

// Status is the one error type that becomes a tagged (or BYE) reply:
// STYLE.md rule 4. Kind is "NO", "BAD" or "BYE"; a handler that wants a
// custom OK returns c.OK(code, text), which is a Status of Kind "OK".
// Code is everything between the brackets, e.g. "TRYCREATE" or
// "COPYUID 7 1:3 10:12"; it is empty for no response code (resp-text,
// rfc3501.txt:4942).
type Status struct {
	Kind string
	Code string
	Text string
}

func (s *Status) Error() string {
	var b strings.Builder
	b.WriteString(s.Kind)
	if s.Code != "" {
		b.WriteString(" [" + s.Code + "]")
	}
	if s.Text != "" {
		b.WriteString(" " + s.Text)
	}
	return b.String()
}

// No returns a tagged NO: the command was understood but failed
// (rfc3501.txt:3665: "indicates unsuccessful completion"). code may be "".
func No(code, text string) *Status { return &Status{Kind: "NO", Code: code, Text: text} }

// Bad returns a tagged BAD: a protocol-level error in the client's command
// (rfc3501.txt:3685). code may be "".
func Bad(code, text string) *Status { return &Status{Kind: "BAD", Code: code, Text: text} }

// Bye returns a status that makes the core send "* BYE" and close.
func Bye(code, text string) *Status { return &Status{Kind: "BYE", Code: code, Text: text} }

// Syntax is the usual BAD for malformed arguments.
func Syntax(text string) *Status { return Bad("", "syntax error: "+text) }

// Response codes used across the package (rfc5530.txt, rfc4469.txt:231).
const (
	CodeTryCreate       = "TRYCREATE"
	CodeCannot          = "CANNOT"
	CodeNonExistent     = "NONEXISTENT"
	CodeAlreadyExists   = "ALREADYEXISTS"
	CodeAuthFailed      = "AUTHENTICATIONFAILED"
	CodePrivacyRequired = "PRIVACYREQUIRED"
	CodeTooBig          = "TOOBIG"
	CodeServerBug       = "SERVERBUG"
	CodeClientBug       = "CLIENTBUG"
	CodeUnavailable     = "UNAVAILABLE"
	CodeLimit           = "LIMIT"
	CodeAuthzFailed     = "AUTHORIZATIONFAILED"
	CodeContactAdmin    = "CONTACTADMIN"
	CodeNoPerm          = "NOPERM"
	CodeInUse           = "INUSE"
	CodeExpungeIssued   = "EXPUNGEISSUED"
	CodeCorruption      = "CORRUPTION"
	CodeOverQuota       = "OVERQUOTA"
	CodeExpired         = "EXPIRED"
)
