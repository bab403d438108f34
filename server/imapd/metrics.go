package imapd

import (
	"sort"
	"time"
)

// Metrics receives what the server measures (server/metrics implements it
// with Prometheus). Command is called once per command, from the session's
// goroutine, after its tagged reply: name is the command as registered
// ("UID FETCH"), or "UNKNOWN" for a name the server does not know; status
// is the reply's kind (OK, NO, BAD, or BYE when the command ended the
// session); d runs from the command's dispatch to its reply (for IDLE, the
// time spent idling). A command whose client went away is not counted.
// Implementations must not block and should not allocate.
type Metrics interface {
	Command(name, status string, d time.Duration)
}

// SetMetrics makes the server report to m; call it before Serve.
func (s *Server) SetMetrics(m Metrics) { s.metrics = m }

// Conns is the number of open sessions (IMAP and IMAPS).
func (s *Server) Conns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// CommandNames lists the registered commands, sorted.
func CommandNames() []string {
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// observe reports a command to the server's Metrics, if any.
func (c *Conn) observe(name, status string, start time.Time) {
	m := c.srv.metrics
	if m == nil {
		return
	}
	if _, ok := commands[name]; !ok {
		name = "UNKNOWN" // the label set stays bounded whatever clients send
	}
	m.Command(name, status, time.Since(start))
}
