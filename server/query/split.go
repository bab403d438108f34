package query

// SplitFlags splits a definition into the conjunction of its terms that
// read only flags and keywords (flags) and the conjunction of those that
// read no flag, keyword or folder (rest), so that n = flags AND rest. A
// message's rest never changes (messages are immutable), so a view whose
// definition splits is decided on a flag change by its flags part alone,
// among the messages rest matches (store: view_candidates). ok is false
// when a term mixes them (OR SEEN FROM x) or reads folders, and when a
// part is empty: a view of flags only (Unread) has every message as its
// candidate, and one of no flags never changes with them.
func SplitFlags(n Node) (flags, rest Node, ok bool) {
	var fl, re And
	var add func(Node) bool
	add = func(x Node) bool {
		if a, isAnd := x.(And); isAnd {
			for _, y := range a {
				if !add(y) {
					return false
				}
			}
			return true
		}
		switch {
		case UsesFolders(x) || UsesSession(x):
			return false
		case !UsesFlags(x):
			re = append(re, x)
		case !walk(x, notFlagTerm):
			fl = append(fl, x)
		default:
			return false
		}
		return true
	}
	if !add(n) || len(fl) == 0 || len(re) == 0 {
		return nil, nil, false
	}
	return conj(fl), conj(re), true
}

// notFlagTerm is true for a leaf that is not a flag or keyword test.
func notFlagTerm(n Node) bool {
	switch n.(type) {
	case Flag, Keyword, All, Not, Or, And:
		return false
	}
	return true
}

func conj(a And) Node {
	switch len(a) {
	case 0:
		return All{}
	case 1:
		return a[0]
	}
	return a
}
