//go:build !linux

package imapd

// watchHangup: only Linux has POLLRDHUP; elsewhere a command of a client
// that went away runs until it ends or meets the statement timeout.
func (c *Conn) watchHangup() (stop func()) { return func() {} }
