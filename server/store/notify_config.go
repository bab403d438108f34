package store

import "time"

// SubscribeConfig signals c (capacity 1) after every change of the
// configuration table (ConfigChannel, schema 0012), and after the listener
// reconnects (a change may have been missed). It starts the process's one
// listening connection if need be and waits (briefly) until it listens.
// The signal carries no key: subscribers re-read what they need.
func (n *Notifier) SubscribeConfig() (c <-chan struct{}, cancel func()) {
	ch := make(chan struct{}, 1)
	n.mu.Lock()
	if n.cfgSubs == nil {
		n.cfgSubs = map[chan struct{}]struct{}{}
	}
	n.cfgSubs[ch] = struct{}{}
	ready := n.startLocked()
	n.mu.Unlock()
	select {
	case <-ready:
	case <-time.After(5 * time.Second):
	}
	return ch, func() {
		n.mu.Lock()
		delete(n.cfgSubs, ch)
		n.mu.Unlock()
	}
}

func (n *Notifier) signalConfig() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for ch := range n.cfgSubs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}
