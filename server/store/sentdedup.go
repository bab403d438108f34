package store

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
)

// Sent copies filed twice (issue 14 item 10). The submission server files
// a \Seen copy of every message it accepts in the sender's Sent folder
// (smtpd: DeliverOptions.Submitted), and many clients (Thunderbird) then
// APPEND their own copy to Sent: two messages with one Message-ID. An
// APPEND with DeliverOptions.SentWindow is checked first: if its target is
// the user's \Sent mailbox (RFC 6154 special-use) and a copy of a message
// with the same Message-ID was filed there by submission less than the
// window ago and not claimed yet, the APPEND claims it: nothing is stored,
// nothing changes in the mailbox (no EXISTS for anyone), and the client
// gets that copy's UID in APPENDUID (rfc4315.txt:148-153: APPENDUID is
// "Followed by the UIDVALIDITY of the destination mailbox and the UID
// assigned to the appended message"; the filed copy is that message).
//
// The APPEND's flags are added to the claimed copy (it is \Seen already:
// Thunderbird appends with \Seen, which then changes nothing); flags are
// never removed, and the APPEND's date-time does not replace the copy's
// INTERNALDATE. A claim clears messages.submitted, so only the first
// APPEND is answered from the filed copy: a user who appends the message
// again, or appends a message that no submission filed, stores it as usual.

// claimSubmitted claims the filed copy c's APPEND stands for, if any
// (ok false: deliver as usual). msgID is the appended message's Message-ID
// as stored (clean).
func (s *Store) claimSubmitted(ctx context.Context, c Copy, msgID string) (d Delivered, ok bool, err error) {
	if msgID == "" {
		return d, false, nil
	}
	cutoff := time.Now().Add(-c.SentWindow)
	// Almost every APPEND is not of a filed Sent copy: find that out with
	// one read, outside the user's lock and without a transaction, before
	// taking both (the many-sessions line: every APPEND waited for the
	// lock twice).
	var maybe bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM mailboxes b
			JOIN mailbox_messages mm ON mm.mailbox_id = b.id
			JOIN messages m ON m.id = mm.message_id
			WHERE b.user_id = $1 AND b.name = $2 AND b.special_use = '\Sent'
				AND m.user_id = $1 AND m.message_id = $3 AND m.submitted > $4)`,
		c.UserID, NormName(c.Mailbox), msgID, cutoff).Scan(&maybe); err != nil || !maybe {
		return d, false, err
	}
	err = s.change(ctx, c.UserID, lazy, func(tx pgx.Tx) error {
		var uid int64
		err := tx.QueryRow(ctx, `WITH hit AS (
				SELECT m.id, b.id AS mailbox_id, b.uidvalidity, mm.uid
				FROM mailboxes b
				JOIN mailbox_messages mm ON mm.mailbox_id = b.id
				JOIN messages m ON m.id = mm.message_id
				WHERE b.user_id = $1 AND b.name = $2 AND b.special_use = '\Sent'
					AND m.user_id = $1 AND m.message_id = $3 AND m.submitted > $4
				ORDER BY m.submitted DESC LIMIT 1
				FOR UPDATE OF m)
			UPDATE messages m SET submitted = NULL FROM hit WHERE m.id = hit.id
			RETURNING hit.id, hit.mailbox_id, hit.uidvalidity, hit.uid`,
			c.UserID, NormName(c.Mailbox), msgID, cutoff).Scan(&d.MessageID, &d.MailboxID, &d.UIDValidity, &uid)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		d.UID, d.Existing, ok = uint32(uid), true, true
		d.box = Box{userID: c.UserID, id: d.MailboxID}
		return nil
	})
	if err != nil || !ok {
		return Delivered{}, false, err
	}
	if f := c.Flags; f.Seen || f.Answered || f.Flagged || f.Deleted || f.Draft || len(f.Keywords) > 0 {
		// Adds only what the copy lacks: no change, no modseq, nothing
		// for other sessions to see when it has them all.
		if _, _, _, err := s.AddRemoveFlags(ctx, d.box, []uint32{d.UID}, true, f); err != nil {
			return Delivered{}, false, err
		}
	}
	return d, true, nil
}
