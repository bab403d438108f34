package imapd

// Reload takes up the settings of cfg that a running server may change
// (the configuration keys marked live in store.Settings): Disabled,
// LogIMAP, AllowPlaintext, MaxListPattern and SentDedupWindow. A
// connection keeps the configuration it began with; new connections get
// the new one. The other fields of cfg are ignored (they need a restart).
func (s *Server) Reload(cfg Config) {
	cfg = cfg.withDefaults()
	c := *s.config()
	c.Disabled = cfg.Disabled
	c.LogIMAP = cfg.LogIMAP
	c.AllowPlaintext = cfg.AllowPlaintext
	c.MaxListPattern = cfg.MaxListPattern
	c.SentDedupWindow = cfg.SentDedupWindow
	s.live.Store(&c)
}

// config is the configuration a new connection begins with: cfg, or the
// last Reload's.
func (s *Server) config() *Config {
	if c := s.live.Load(); c != nil {
		return c
	}
	return &s.cfg
}
