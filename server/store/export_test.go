package store

// OnIndexPass sets a hook the background indexer calls after each pass,
// once the pass's texts are indexed and the trigram indexes' pending lists
// merged, with how many texts it indexed.
func (s *Store) OnIndexPass(f func(indexed int)) { s.indexPassed.Store(&f) }
