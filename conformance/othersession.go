package conformance

import (
	"fmt"

	"decimail/internal/imaptest"
)

// OtherSessions are what another client does to the account while a
// captured client is away: the capture harness (conformance/capture) runs
// one between two sessions of the client, and the replay (TestTranscripts)
// runs the same one before the connection that followed it in the capture.
// They are plain IMAP on a connection of their own (not through the tap),
// so they read the same on any server.
var OtherSessions = map[string][]string{
	// Flag changes only: the client's next SELECT sees a higher
	// HIGHESTMODSEQ and the same EXISTS (thunderbird/07-condstore-resync).
	"flags": {
		`SELECT INBOX`,
		`UID STORE 2 +FLAGS.SILENT (\Seen)`,
		`UID STORE 3 +FLAGS.SILENT (\Flagged)`,
		`UID STORE 29 -FLAGS.SILENT (\Seen)`,
	},
	// An expunge and a flag change: EXISTS one lower, HIGHESTMODSEQ higher.
	"expunge": {
		`SELECT INBOX`,
		`UID STORE 30 +FLAGS.SILENT (\Flagged)`,
		`UID STORE 16 +FLAGS.SILENT (\Deleted)`,
		`UID EXPUNGE 16`,
	},
}

// RunOtherSession logs into addr as the seed user and runs the named
// OtherSessions entry; every command must answer OK.
func RunOtherSession(addr, name string) error {
	cmds, ok := OtherSessions[name]
	if !ok {
		return fmt.Errorf("no other session %q", name)
	}
	c, err := imaptest.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Login(SeedUser, SeedPassword); err != nil {
		return fmt.Errorf("other session %s: %w", name, err)
	}
	for _, cmd := range cmds {
		if _, _, err := c.Command(cmd); err != nil {
			return fmt.Errorf("other session %s: %s: %w", name, cmd, err)
		}
	}
	return c.Logout()
}
