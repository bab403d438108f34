package store

import (
	"context"
	"errors"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"golang.org/x/crypto/bcrypt"
)

// User is an account.
type User struct {
	ID   int64
	Name string
}

// DefaultFolders every new user gets, with their RFC 6154 attributes.
var DefaultFolders = []struct{ Name, SpecialUse string }{
	{"INBOX", ""}, {"Sent", `\Sent`}, {"Drafts", `\Drafts`}, {"Trash", `\Trash`},
	{"Junk", `\Junk`}, {"Archive", `\Archive`},
}

// DefaultViews are the query mailboxes every new user gets (DESIGN "Views users expect").
var DefaultViews = []struct{ Name, Definition, SpecialUse string }{
	{"All Mail", "ALL", `\All`},
	{"Flagged", "FLAGGED", `\Flagged`},
	{"Unread", "UNSEEN", ""},
}

// dummyHash is a hash of the store's cost, compared against for unknown
// users so that their failure takes as long as a wrong password.
func (s *Store) dummyHash() []byte {
	s.dummyOnce.Do(func() {
		h, _ := s.hash("decimail")
		s.dummy = []byte(h)
	})
	return s.dummy
}

func (s *Store) hash(password string) (string, error) {
	cost := s.cost
	if cost == 0 {
		cost = bcrypt.DefaultCost
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), cost)
	return string(h), err
}

// CreateUser adds a user with the default folders and views, all subscribed.
func (s *Store) CreateUser(ctx context.Context, name, password string) (User, error) {
	return s.createUser(ctx, name, password, true)
}

// CreateBareUser adds a user with only INBOX (unsubscribed), the empty
// account the RFC scenarios start from on any server.
func (s *Store) CreateBareUser(ctx context.Context, name, password string) (User, error) {
	return s.createUser(ctx, name, password, false)
}

func (s *Store) createUser(ctx context.Context, name, password string, defaults bool) (User, error) {
	name = strings.TrimSpace(name)
	if name == "" || strings.ContainsAny(name, " \t\r\n\"") {
		return User{}, ErrInvalid
	}
	h, err := s.hash(password)
	if err != nil {
		return User{}, err
	}
	v, _ := newSCRAMVerifier(password) // none (NULLs) for a password SASLprep refuses
	u := User{Name: name}
	err = s.tx(ctx, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `INSERT INTO users (name, password_hash, scram_salt, scram_iters, scram_stored_key,
			scram_server_key) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`,
			append([]any{name, h}, v.args()...)...).Scan(&u.ID); err != nil {
			return err
		}
		if !defaults {
			_, err := s.createMailbox(ctx, tx, u.ID, "INBOX", "", "")
			return err
		}
		for _, f := range DefaultFolders {
			if _, err := s.createMailbox(ctx, tx, u.ID, f.Name, "", f.SpecialUse); err != nil {
				return err
			}
			if err := subscribe(ctx, tx, u.ID, f.Name); err != nil {
				return err
			}
		}
		for _, v := range DefaultViews {
			if _, err := s.createMailbox(ctx, tx, u.ID, v.Name, v.Definition, v.SpecialUse); err != nil {
				return err
			}
			if err := subscribe(ctx, tx, u.ID, v.Name); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil && strings.Contains(err.Error(), "users_name_key") {
		return User{}, ErrExists
	}
	return u, wrap("create user", err)
}

// Authenticate checks a password. A user without a SCRAM verifier (one
// whose password predates schema 0027) gains one now, the password being
// known: SCRAM-SHA-256 works for them from then on, without a reset.
func (s *Store) Authenticate(ctx context.Context, name, password string) (User, error) {
	var u User
	var h string
	var hasSCRAM bool
	err := pgx.ErrNoRows
	// A name Postgres text cannot hold (invalid UTF-8, NUL) is no user's;
	// the query would fail with an error instead of finding nobody.
	if utf8.ValidString(name) && !strings.Contains(name, "\x00") {
		err = s.pool.QueryRow(ctx, `SELECT id, name, password_hash, scram_salt IS NOT NULL FROM users WHERE name = $1`,
			name).Scan(&u.ID, &u.Name, &h, &hasSCRAM)
	}
	if errors.Is(err, pgx.ErrNoRows) {
		// Spend the time of a hash check anyway: no user enumeration by timing.
		bcrypt.CompareHashAndPassword(s.dummyHash(), []byte(password))
		return User{}, ErrAuthFailed
	}
	if err != nil {
		return User{}, wrap("authenticate", err)
	}
	if bcrypt.CompareHashAndPassword([]byte(h), []byte(password)) != nil {
		return User{}, ErrAuthFailed
	}
	if !hasSCRAM {
		if v, ok := newSCRAMVerifier(password); ok {
			// Only if the hash is still the one checked: a SetPassword
			// in between wrote its own verifier.
			if _, err := s.pool.Exec(ctx, `UPDATE users SET scram_salt = $3, scram_iters = $4, scram_stored_key = $5,
				scram_server_key = $6 WHERE id = $1 AND password_hash = $2 AND scram_salt IS NULL`,
				append([]any{u.ID, h}, v.args()...)...); err != nil {
				s.log.Warn("store: adding a SCRAM verifier", "user", u.Name, "err", err)
			}
		}
	}
	return u, nil
}

// UserByName looks a user up.
func (s *Store) UserByName(ctx context.Context, name string) (User, error) {
	u := User{Name: name}
	err := s.pool.QueryRow(ctx, `SELECT id FROM users WHERE name = $1`, name).Scan(&u.ID)
	if errors.Is(err, pgx.ErrNoRows) {
		return User{}, ErrNoUser
	}
	return u, wrap("user", err)
}

// SetPassword changes a user's password.
func (s *Store) SetPassword(ctx context.Context, name, password string) error {
	h, err := s.hash(password)
	if err != nil {
		return err
	}
	v, _ := newSCRAMVerifier(password) // none (NULLs) for a password SASLprep refuses
	tag, err := s.pool.Exec(ctx, `UPDATE users SET password_hash = $2, scram_salt = $3, scram_iters = $4,
		scram_stored_key = $5, scram_server_key = $6 WHERE name = $1`, append([]any{name, h}, v.args()...)...)
	if err == nil && tag.RowsAffected() == 0 {
		return ErrNoUser
	}
	return wrap("set password", err)
}

// Users lists all users by name.
func (s *Store) Users(ctx context.Context) ([]User, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, name FROM users ORDER BY name`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (User, error) {
		var u User
		return u, r.Scan(&u.ID, &u.Name)
	})
}

// DeleteUser removes a user and all their mail (the messages' spool files are
// left to the delete daemon through delete_log).
func (s *Store) DeleteUser(ctx context.Context, name string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM users WHERE name = $1`, name)
	if err == nil && tag.RowsAffected() == 0 {
		return ErrNoUser
	}
	return wrap("delete user", err)
}

// Address is a mapping from an address (or "@domain" catch-all) to a user.
type Address struct {
	Address string
	User    string
}

// AddAddress maps an address, or a catch-all "@domain", to a user.
func (s *Store) AddAddress(ctx context.Context, address, user string) error {
	address = strings.ToLower(strings.TrimSpace(address))
	if !strings.Contains(address, "@") || strings.Count(address, "@") != 1 || strings.HasSuffix(address, "@") {
		return ErrInvalid
	}
	tag, err := s.pool.Exec(ctx, `INSERT INTO addresses (address, user_id) SELECT $1, id FROM users WHERE name = $2`, address, user)
	if err == nil && tag.RowsAffected() == 0 {
		return ErrNoUser
	}
	if err != nil && strings.Contains(err.Error(), "addresses_pkey") {
		return ErrExists
	}
	return wrap("add address", err)
}

// DeleteAddress removes an address mapping.
func (s *Store) DeleteAddress(ctx context.Context, address string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM addresses WHERE address = lower($1)`, address)
	if err == nil && tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return wrap("delete address", err)
}

// Addresses lists all address mappings.
func (s *Store) Addresses(ctx context.Context) ([]Address, error) {
	rows, err := s.pool.Query(ctx, `SELECT a.address, u.name FROM addresses a JOIN users u ON u.id = a.user_id ORDER BY u.name, a.address`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Address, error) {
		var a Address
		return a, r.Scan(&a.Address, &a.User)
	})
}

// LookupAddress finds the user an address is delivered to: the exact address
// first, then the domain's catch-all.
func (s *Store) LookupAddress(ctx context.Context, address string) (User, error) {
	address = strings.ToLower(strings.TrimSpace(address))
	at := strings.LastIndexByte(address, '@')
	if at < 0 {
		return User{}, ErrNoUser
	}
	var u User
	err := s.pool.QueryRow(ctx, `SELECT u.id, u.name FROM addresses a JOIN users u ON u.id = a.user_id
		WHERE a.address = $1 OR a.address = $2 ORDER BY a.address = $1 DESC LIMIT 1`,
		address, address[at:]).Scan(&u.ID, &u.Name)
	if errors.Is(err, pgx.ErrNoRows) {
		return User{}, ErrNoUser
	}
	return u, wrap("lookup address", err)
}
