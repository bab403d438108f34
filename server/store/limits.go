package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgxpool"

	"decimail/server/query"
)

// ErrLimit is an operation over one of the store's Limits (issue 13: bounded
// cost per command). The IMAP server answers it NO [LIMIT] (rfc5530.txt:256).
var ErrLimit = errors.New("store: over a limit")

// Limits bound the cost of what users may store or ask for.
//
// Zero fields in Options.Limits are read from the configuration table (keys
// below), then take the defaults; a negative value means no limit.
type Limits struct {
	// Search bounds SEARCH programs (Store.Search) and new query mailbox
	// definitions (CreateMailbox, DefineMailbox): search_max_terms,
	// search_max_value (query.DefaultMaxTerms, query.DefaultMaxValue).
	// Definitions already stored keep working when a limit is lowered.
	Search query.Limits
	// MailboxName is the length of a mailbox name in bytes of UTF-8,
	// mailbox_max_name, default 1000. A name is one row of two unique
	// btree indexes (mailboxes, subscriptions), whose entries must fit in a
	// third of a page (2,704 bytes): a 900,000-byte name failed there as a
	// server error. 1,000 is the RFC 5322 line length (998) rounded:
	// a name fits on one line of a header, a log or a terminal.
	MailboxName int
	// MailboxLevel is the length of one hierarchy level (between "/") in
	// bytes, mailbox_max_level, default 255: a level becomes a directory
	// name when mail is exported to or imported from a Maildir (NAME_MAX).
	MailboxLevel int
}

// Defaults of Limits; see README.md, "Limits".
const (
	DefaultMaxMailboxName  = 1000
	DefaultMaxMailboxLevel = 255
)

// loadLimits fills the zero fields of l from the configuration table, then
// from the defaults.
func loadLimits(ctx context.Context, pool *pgxpool.Pool, l Limits) (Limits, error) {
	keys := []struct {
		key string
		v   *int
		def int
	}{
		{"search_max_terms", &l.Search.MaxTerms, query.DefaultMaxTerms},
		{"search_max_value", &l.Search.MaxValue, query.DefaultMaxValue},
		{"mailbox_max_name", &l.MailboxName, DefaultMaxMailboxName},
		{"mailbox_max_level", &l.MailboxLevel, DefaultMaxMailboxLevel},
	}
	for _, k := range keys {
		if *k.v != 0 {
			continue
		}
		var s string
		err := pool.QueryRow(ctx, `SELECT coalesce((SELECT value FROM configuration WHERE key = $1), '')`, k.key).Scan(&s)
		if err != nil {
			return l, err
		}
		if s == "" {
			*k.v = k.def
			continue
		}
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n == 0 {
			return l, fmt.Errorf("store: configuration %s = %q: want a non-zero integer (negative: no limit)", k.key, s)
		}
		*k.v = n
	}
	return l, nil
}

// Limits returns the limits in force.
func (s *Store) Limits() Limits { return s.limits }

// NameError is a mailbox name the store refuses. It matches ErrLimit (too
// long) or ErrInvalid (anything else) with errors.Is. Reason never quotes
// the name: it may hold the very characters that are refused.
type NameError struct {
	Reason  string // completes "mailbox name ...", e.g. "is 1200 bytes long, at most 1000 allowed"
	TooLong bool   // over Limits.MailboxName or Limits.MailboxLevel
	Control bool   // holds a control character
}

func (e *NameError) Error() string { return "store: mailbox name " + e.Reason }

func (e *NameError) Is(target error) bool {
	if e.TooLong {
		return target == ErrLimit
	}
	return target == ErrInvalid
}

// checkName says why a (normalised) name cannot be a mailbox, or returns
// nil. A subscription (subscribing) may name what is no mailbox, but not
// a name over the limits or with control characters.
//
// Control characters are refused (RFC 9051 §5.1: "Servers MAY refuse to
// create mailbox names containing Unicode CTL characters",
// rfc9051.txt:980): C0, DEL and C1 (U+0080-U+009F, what modified UTF-7
// can smuggle in as "&AJs-"), which terminals and log viewers interpret.
func (l Limits) checkName(name string, subscribing bool) error {
	if !subscribing {
		switch {
		case name == "":
			return &NameError{Reason: "is empty"}
		case strings.HasPrefix(name, Delim) || strings.HasSuffix(name, Delim) || strings.Contains(name, Delim+Delim):
			return &NameError{Reason: "has an empty hierarchy level"}
		case strings.ContainsAny(name, "*%"):
			return &NameError{Reason: "contains a LIST wildcard (* or %)"}
		}
	}
	if !utf8.ValidString(name) {
		return &NameError{Reason: "is not valid UTF-8"}
	}
	for _, r := range name {
		if r < 0x20 || r >= 0x7f && r <= 0x9f {
			return &NameError{Reason: fmt.Sprintf("contains the control character U+%04X", r), Control: true}
		}
	}
	if l.MailboxName > 0 && len(name) > l.MailboxName {
		return &NameError{Reason: fmt.Sprintf("is %d bytes long, at most %d allowed", len(name), l.MailboxName), TooLong: true}
	}
	if l.MailboxLevel > 0 {
		for _, level := range strings.Split(name, Delim) {
			if len(level) > l.MailboxLevel {
				return &NameError{Reason: fmt.Sprintf("has a hierarchy level of %d bytes, at most %d allowed", len(level), l.MailboxLevel), TooLong: true}
			}
		}
	}
	return nil
}

// checkDefinition checks a new query mailbox definition against the
// search limits.
func (l Limits) checkDefinition(def string) error {
	if def == "" {
		return nil
	}
	n, err := query.ParseDefinition(def)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if _, err := l.Search.Prepare(n); err != nil {
		return fmt.Errorf("%w: definition: %w", ErrLimit, err)
	}
	return nil
}
