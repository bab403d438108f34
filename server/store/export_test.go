package store

// OnIndexPass sets a hook the background indexer calls after each pass,
// once the pass's texts are indexed and the trigram indexes' pending lists
// merged, with how many texts it indexed.
func (s *Store) OnIndexPass(f func(indexed int)) { s.indexPassed.Store(&f) }

// TextCacheSize is the bytes the text cache holds and its bound.
func (s *Store) TextCacheSize() (size, max int64) {
	s.texts.mu.Lock()
	defer s.texts.mu.Unlock()
	return s.texts.size, s.texts.max
}
