package smtpd

// OnIdle sets a hook Run calls each time it has sent what was due and
// waits; listened reports that LISTEN was in place before that pass began.
// Set it before Run starts.
func (r *Relay) OnIdle(f func(listened bool)) { r.idle = f }
