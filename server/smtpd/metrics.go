package smtpd

// Metrics receives what the server measures (server/metrics implements it
// with Prometheus). Delivery is called once per message transaction that
// reached the store (after DATA/BDAT and the checks before it), from the
// session's goroutine: listener is "mx" or "submission", result "ok" (the
// message is committed: local copies, queued copy, Sent copy) or "error"
// (nothing stored, the client was told to retry). Implementations must not
// block.
type Metrics interface {
	Delivery(listener, result string)
}

// SetMetrics makes the server report to m; call it before ServeMX and
// ServeSubmission.
func (s *Server) SetMetrics(m Metrics) { s.metrics = m }

// Conns is the number of open connections on the MX and on the submission
// listeners.
func (s *Server) Conns() (mx, submission int) {
	return int(s.conns[kindMX].Load()), int(s.conns[kindSubmission].Load())
}
