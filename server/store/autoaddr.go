package store

import (
	"context"
	"errors"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// AutoUser is an auto_users row: mail a user sends From this address goes out
// From a per-correspondent address instead (the original Decimail's feature).
type AutoUser struct {
	Address  string
	UserID   int64
	Template string // e.g. "%s@example.com"; %s is replaced by a random token
}

// ErrAddressTaken is returned by RecordRandomAddr when the generated address
// already belongs to another correspondent: generate another.
var ErrAddressTaken = errors.New("store: address already recorded")

// AddAutoUser maps an auto address to a user with an address template.
// The auto address and every address handed out for it (RecordRandomAddr,
// SetExplicitAddr) are addresses of the user (rows of addresses, as
// `address add` makes them): replies to them are delivered to the user
// with no catch-all, `address list` shows them and `address del` ends one.
// Remapping an auto address to another user moves its addresses along.
// An auto address that is another user's address is ErrAddressTaken.
func (s *Store) AddAutoUser(ctx context.Context, address, user, template string) error {
	address = strings.ToLower(strings.TrimSpace(address))
	if !strings.Contains(address, "@") || strings.Count(template, "%s") != 1 || !strings.Contains(template, "@") {
		return ErrInvalid
	}
	err := s.tx(ctx, func(tx pgx.Tx) error {
		var uid int64
		err := tx.QueryRow(ctx, `INSERT INTO auto_users (address, user_id, template) SELECT $1, id, $3 FROM users WHERE name = $2
			ON CONFLICT (address) DO UPDATE SET user_id = excluded.user_id, template = excluded.template
			RETURNING user_id`, address, user, template).Scan(&uid)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNoUser
		} else if err != nil {
			return err
		}
		if err := recordAddress(ctx, tx, address, uid); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE addresses SET user_id = $2 WHERE address IN (
			SELECT address FROM random_addrs WHERE auto_address = $1 UNION SELECT address FROM explicit_addrs WHERE auto_address = $1)`,
			address, uid)
		return err
	})
	if errors.Is(err, ErrNoUser) || errors.Is(err, ErrAddressTaken) {
		return err
	}
	return wrap("add auto user", err)
}

// recordAddress makes address one of user's addresses (a row of
// addresses) unless it already is; ErrAddressTaken when it is another
// user's.
func recordAddress(ctx context.Context, tx pgx.Tx, address string, userID int64) error {
	var owner int64
	err := tx.QueryRow(ctx, `WITH ins AS (INSERT INTO addresses (address, user_id) VALUES ($1, $2)
			ON CONFLICT (address) DO NOTHING RETURNING user_id)
		SELECT user_id FROM ins UNION ALL SELECT user_id FROM addresses WHERE address = $1`, address, userID).Scan(&owner)
	if err != nil {
		return err
	}
	if owner != userID {
		return ErrAddressTaken
	}
	return nil
}

// AutoUser looks an auto address up (ErrNoUser if there is none).
func (s *Store) AutoUser(ctx context.Context, address string) (AutoUser, error) {
	a := AutoUser{Address: strings.ToLower(strings.TrimSpace(address))}
	err := s.pool.QueryRow(ctx, `SELECT user_id, template FROM auto_users WHERE address = $1`, a.Address).Scan(&a.UserID, &a.Template)
	if errors.Is(err, pgx.ErrNoRows) {
		return AutoUser{}, ErrNoUser
	}
	return a, wrap("auto user", err)
}

// SetExplicitAddr records the address an auto address uses for one
// correspondent; it wins over a random one (view custom_addrs). The
// address becomes one of the auto address's user's addresses
// (ErrAddressTaken if it is another user's).
func (s *Store) SetExplicitAddr(ctx context.Context, autoAddress, correspondent, address string) error {
	autoAddress, correspondent, address = strings.ToLower(autoAddress), strings.ToLower(correspondent), strings.ToLower(address)
	err := s.tx(ctx, func(tx pgx.Tx) error {
		var uid int64
		if err := tx.QueryRow(ctx, `SELECT user_id FROM auto_users WHERE address = $1`, autoAddress).Scan(&uid); errors.Is(err, pgx.ErrNoRows) {
			return ErrNoUser
		} else if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO explicit_addrs (auto_address, correspondent, address) VALUES ($1, $2, $3)
			ON CONFLICT (auto_address, correspondent) DO UPDATE SET address = excluded.address`,
			autoAddress, correspondent, address); err != nil {
			return err
		}
		return recordAddress(ctx, tx, address, uid)
	})
	if errors.Is(err, ErrNoUser) || errors.Is(err, ErrAddressTaken) {
		return err
	}
	return wrap("set explicit address", err)
}

// CorrespondentAddr returns the recorded address for (auto address,
// correspondent): explicit first, then random; "" if none.
func (s *Store) CorrespondentAddr(ctx context.Context, autoAddress, correspondent string) (string, error) {
	var a string
	err := s.pool.QueryRow(ctx, `SELECT address FROM custom_addrs WHERE auto_address = $1 AND correspondent = $2
		ORDER BY explicit DESC LIMIT 1`, strings.ToLower(autoAddress), strings.ToLower(correspondent)).Scan(&a)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	return a, wrap("correspondent address", err)
}

// RecordRandomAddr records address for (auto address, correspondent) unless
// one is already recorded, and returns the address now recorded (so two
// concurrent first messages to one correspondent agree). A new address
// becomes one of the user's addresses (see AddAutoUser). ErrAddressTaken:
// the address is used for another correspondent, or is another user's.
func (s *Store) RecordRandomAddr(ctx context.Context, autoAddress, correspondent, address string) (string, error) {
	autoAddress, correspondent, address = strings.ToLower(autoAddress), strings.ToLower(correspondent), strings.ToLower(address)
	var got string
	err := s.tx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO random_addrs (auto_address, correspondent, address) VALUES ($1, $2, $3)
			ON CONFLICT (auto_address, correspondent) DO NOTHING`, autoAddress, correspondent, address)
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "23505" {
			return ErrAddressTaken
		} else if err != nil {
			return err
		}
		if tag.RowsAffected() == 1 {
			// A new address: deliverable to the user from now on
			// (replies to it); one that is another user's is not used.
			var uid int64
			if err := tx.QueryRow(ctx, `SELECT user_id FROM auto_users WHERE address = $1`, autoAddress).Scan(&uid); err != nil {
				return err
			}
			if err := recordAddress(ctx, tx, address, uid); err != nil {
				return err
			}
		}
		return tx.QueryRow(ctx, `SELECT address FROM custom_addrs WHERE auto_address = $1 AND correspondent = $2
			ORDER BY explicit DESC LIMIT 1`, autoAddress, correspondent).Scan(&got)
	})
	if errors.Is(err, ErrAddressTaken) {
		return "", ErrAddressTaken
	}
	return got, wrap("record random address", err)
}

// DeliveredTo returns the envelope recipient of the most recent of the user's
// messages whose Message-ID is one of msgIDs, trying them in the given order;
// "" if none is found or none has one.
func (s *Store) DeliveredTo(ctx context.Context, userID int64, msgIDs []string) (string, error) {
	for _, id := range msgIDs {
		if id == "" {
			continue
		}
		var a string
		err := s.pool.QueryRow(ctx, `SELECT delivered_to FROM messages WHERE user_id = $1 AND message_id = $2
			AND delivered_to <> '' ORDER BY id DESC LIMIT 1`, userID, id).Scan(&a)
		if errors.Is(err, pgx.ErrNoRows) {
			continue
		} else if err != nil {
			return "", wrap("delivered to", err)
		}
		return a, nil
	}
	return "", nil
}
