package query

import "fmt"

// Limits bound what one SEARCH program or mailbox definition may cost
// (issue 13). Zero fields take the defaults; a negative field means no
// limit.
type Limits struct {
	// MaxTerms is the number of search keys in the normalised program
	// (Normalize: N copies of one condition are one term). Each key is one
	// condition in the SQL; Postgres plans an AND of text conditions in
	// more than linear time (compiler.text), so this is what bounds the
	// planning time of a program of distinct keys.
	MaxTerms int
	// MaxValue is the length in bytes of one string argument: a substring
	// to search for, a HEADER field name, a KEYWORD flag.
	MaxValue int
}

// Defaults: see README.md, "Limits".
const (
	DefaultMaxTerms = 1000
	DefaultMaxValue = 1024
)

// LimitError is a program over one of its Limits; the IMAP server answers
// NO [LIMIT] (rfc5530.txt:256), a definition is refused.
type LimitError struct {
	What     string // "search keys", "bytes in a search string"
	Got, Max int
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("search: %d %s, at most %d allowed", e.Got, e.What, e.Max)
}

func (l Limits) withDefaults() Limits {
	if l.MaxTerms == 0 {
		l.MaxTerms = DefaultMaxTerms
	}
	if l.MaxValue == 0 {
		l.MaxValue = DefaultMaxValue
	}
	return l
}

// Prepare normalises n (Normalize) and checks it against the limits; the
// caller compiles the program it returns.
func (l Limits) Prepare(n Node) (Node, error) {
	l = l.withDefaults()
	// Values first: a long value is refused before it is hashed.
	if err := l.checkValues(n); err != nil {
		return nil, err
	}
	n = Normalize(n)
	if l.MaxTerms >= 0 {
		if t := Terms(n); t > l.MaxTerms {
			return nil, &LimitError{What: "search keys", Got: t, Max: l.MaxTerms}
		}
	}
	return n, nil
}

func (l Limits) checkValues(n Node) error {
	if l.MaxValue < 0 {
		return nil
	}
	var err error
	walk(n, func(n Node) bool {
		var vs []string
		switch n := n.(type) {
		case Text:
			vs = []string{n.Field, n.Value}
		case Keyword:
			vs = []string{n.Flag}
		case Folder:
			vs = []string{n.Name}
		case OnlyFolder:
			vs = n.Names
		}
		for _, v := range vs {
			if len(v) > l.MaxValue {
				err = &LimitError{What: "bytes in a search string", Got: len(v), Max: l.MaxValue}
				return true
			}
		}
		return false
	})
	return err
}

// Terms counts the search keys of n (every node but NOT, OR and lists).
func Terms(n Node) int {
	switch n := n.(type) {
	case Not:
		return Terms(n.X)
	case Or:
		return Terms(n.A) + Terms(n.B)
	case And:
		t := 0
		for _, x := range n {
			t += Terms(x)
		}
		return t
	}
	return 1
}
