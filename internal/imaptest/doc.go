// Package imaptest is the one IMAP client of Decimail's tests, conformance
// runner and benchmarks, and the response model they share.
//
// Responses are read framed by their literals (Raw) and parsed into Resp
// values: tag, status, response code, text, and the data as tokens (atoms,
// strings, lists). The parser also reads the expectations of the scenario
// language (wildcards *, ?, $var captures, i"..." strings, {@file}
// literals), which MatchResp matches against received responses.
//
// Tests compare parsed responses with Expect and Diff: the wanted lines are
// parsed like received ones and both are compared as Values with go-cmp,
// under the matcher's rules (atoms regardless of case, flag lists as sets,
// FETCH and STATUS attributes by name), and a mismatch shows a cmp diff.
// TestClient binds a Client to a test and fails it on responses left unread.
// Raw reads (ReadRaw, Stream) are for wire-level checks and for benchmarks,
// which must measure the server and not the client: they reuse one buffer
// and tokenize nothing unless Parse is called.
//
// Invariants: a Client is used by one goroutine; with Background, a reader
// goroutine owns the read side of the connection and the caller takes parsed
// responses from its queue, while writes stay with the caller. The package
// knows no server: it must not import server/imapd or conformance.
package imaptest
