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
func (s *Store) AddAutoUser(ctx context.Context, address, user, template string) error {
	address = strings.ToLower(strings.TrimSpace(address))
	if !strings.Contains(address, "@") || strings.Count(template, "%s") != 1 || !strings.Contains(template, "@") {
		return ErrInvalid
	}
	tag, err := s.pool.Exec(ctx, `INSERT INTO auto_users (address, user_id, template) SELECT $1, id, $3 FROM users WHERE name = $2
		ON CONFLICT (address) DO UPDATE SET user_id = excluded.user_id, template = excluded.template`, address, user, template)
	if err == nil && tag.RowsAffected() == 0 {
		return ErrNoUser
	}
	return wrap("add auto user", err)
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
// correspondent; it wins over a random one (view custom_addrs).
func (s *Store) SetExplicitAddr(ctx context.Context, autoAddress, correspondent, address string) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO explicit_addrs (auto_address, correspondent, address) VALUES ($1, $2, $3)
		ON CONFLICT (auto_address, correspondent) DO UPDATE SET address = excluded.address`,
		strings.ToLower(autoAddress), strings.ToLower(correspondent), strings.ToLower(address))
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
// concurrent first messages to one correspondent agree). ErrAddressTaken: the
// address is used for another correspondent.
func (s *Store) RecordRandomAddr(ctx context.Context, autoAddress, correspondent, address string) (string, error) {
	autoAddress, correspondent, address = strings.ToLower(autoAddress), strings.ToLower(correspondent), strings.ToLower(address)
	var got string
	err := s.tx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO random_addrs (auto_address, correspondent, address) VALUES ($1, $2, $3)
			ON CONFLICT (auto_address, correspondent) DO NOTHING`, autoAddress, correspondent, address)
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "23505" {
			return ErrAddressTaken
		} else if err != nil {
			return err
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
