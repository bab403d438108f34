package store

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
)

// AuthPolicy is the failed-login limiter shared by SMTP AUTH and IMAP
// LOGIN/AUTHENTICATE, across connections and server processes (the
// auth_limits table, schema 0004). Every attempt is charged before the
// password is checked and refunded when it succeeds, so the counts are
// failures, and parallel attempts cannot slip past the count.
//
// Per remote address (IPv4 address, IPv6 /64): AddrFree failures go
// through at once; the AddrFree-th blocks the address for Base, and each
// further failure blocks it twice as long as the one before, up to AddrMax;
// while blocked, attempts are refused without checking the password. With
// the defaults an address gets 10 guesses, then 1 s, 2 s, 4 s ... apart:
// about 20 in the first 17 minutes, then 4 an hour.
//
// Per account (from any address): attempts beyond UserFree failures wait
// Base, 2*Base, ... up to UserMax before the password is checked. This only
// slows: the real user is never refused because someone elsewhere guesses
// their password, they wait at most UserMax.
//
// A key with no attempt for Window starts again from zero.
type AuthPolicy struct {
	AddrFree int           // auth_addr_free, default 10
	UserFree int           // auth_user_free, default 20
	Base     time.Duration // auth_delay_base, default 1s
	AddrMax  time.Duration // auth_addr_max_block, default 15m
	UserMax  time.Duration // auth_user_max_wait, default 8s
	Window   time.Duration // auth_window, default 1h
}

func (p *AuthPolicy) defaults() {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	dur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&p.AddrFree, 10)
	def(&p.UserFree, 20)
	dur(&p.Base, time.Second)
	dur(&p.AddrMax, 15*time.Minute)
	dur(&p.UserMax, 8*time.Second)
	dur(&p.Window, time.Hour)
}

// loadAuthPolicy overlays the configuration table's auth_* keys on p.
func (s *Store) loadAuthPolicy(ctx context.Context, p AuthPolicy) (AuthPolicy, error) {
	var errs []error
	for _, k := range []struct {
		key string
		dst any
	}{
		{"auth_addr_free", &p.AddrFree}, {"auth_user_free", &p.UserFree}, {"auth_delay_base", &p.Base},
		{"auth_addr_max_block", &p.AddrMax}, {"auth_user_max_wait", &p.UserMax}, {"auth_window", &p.Window},
	} {
		v, err := s.Config(ctx, k.key, "\x00")
		if err != nil || v == "\x00" {
			errs = append(errs, err)
			continue
		}
		v = strings.TrimSpace(v)
		switch d := k.dst.(type) {
		case *int:
			*d, err = strconv.Atoi(v)
		case *time.Duration:
			*d, err = time.ParseDuration(v)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", k.key, err))
		}
	}
	p.defaults()
	return p, errors.Join(errs...)
}

// ErrAuthThrottled: the attempt was refused without checking the password,
// the remote address having failed too often (see AuthPolicy). Returned
// wrapped in a *ThrottledError.
var ErrAuthThrottled = errors.New("store: too many failed logins from this address")

// ThrottledError says how long the address stays blocked.
type ThrottledError struct{ RetryAfter time.Duration }

func (e *ThrottledError) Error() string {
	return fmt.Sprintf("%v; retry in %v", ErrAuthThrottled, e.RetryAfter.Round(time.Second))
}
func (e *ThrottledError) Unwrap() error { return ErrAuthThrottled }

// authKeys are the limiter's keys for an attempt.
func authKeys(remote netip.Addr, name string) (addr, user string) {
	addr = "addr:local"
	if remote.IsValid() {
		remote = remote.Unmap()
		if remote.Is6() {
			p, _ := remote.Prefix(64)
			addr = "addr:" + p.String()
		} else {
			addr = "addr:" + remote.String()
		}
	}
	// The key is Postgres text: no NUL, valid UTF-8 (also where the cut falls).
	name = strings.ToLower(strings.TrimSpace(name))
	if len(name) > 200 {
		name = name[:200]
	}
	name = strings.ToValidUTF8(strings.ReplaceAll(name, "\x00", "\uFFFD"), "\uFFFD")
	return addr, "user:" + name
}

// AuthenticateFrom is Authenticate behind the failed-login limiter
// (AuthPolicy), for an attempt from remote (invalid: a local socket). It
// returns ErrAuthFailed, a *ThrottledError (errors.Is ErrAuthThrottled) or
// the user.
func (s *Store) AuthenticateFrom(ctx context.Context, remote netip.Addr, name, password string) (User, error) {
	keys, err := s.authBegin(ctx, remote, name)
	if err != nil {
		return User{}, err
	}
	u, err := s.Authenticate(ctx, name, password)
	if errors.Is(err, ErrAuthFailed) {
		return u, err
	}
	// A success, or our own failure: not the client's fault.
	if rerr := s.authSucceeded(ctx, keys); rerr != nil && err == nil {
		return User{}, rerr
	}
	return u, err
}

// limiterKeys are one attempt's keys (authKeys).
type limiterKeys struct{ addr, user string }

// authBegin charges one attempt from remote for name before its
// credentials are checked: a *ThrottledError if the address is blocked,
// else after the account's wait, if any. Every mechanism (PLAIN, LOGIN,
// SCRAM) goes through here, so all count alike.
func (s *Store) authBegin(ctx context.Context, remote netip.Addr, name string) (limiterKeys, error) {
	p := s.auth
	addr, user := authKeys(remote, name)
	var refused, wait pgtype.Interval
	err := retryLocked(func() error {
		return s.pool.QueryRow(ctx, `SELECT refused, user_wait FROM auth_begin($1, $2, $3, $4, $5, $6, $7, $8)`,
			addr, user, p.AddrFree, p.UserFree, p.Base, p.AddrMax, p.UserMax, p.Window).Scan(&refused, &wait)
	})
	if err != nil {
		return limiterKeys{}, wrap("auth limiter", err)
	}
	s.purgeAuthLimits(ctx)
	if refused.Valid {
		return limiterKeys{}, &ThrottledError{RetryAfter: intervalDuration(refused)}
	}
	if wait.Valid {
		t := time.NewTimer(intervalDuration(wait))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return limiterKeys{}, ctx.Err()
		}
	}
	return limiterKeys{addr, user}, nil
}

// authSucceeded refunds authBegin's charge.
func (s *Store) authSucceeded(ctx context.Context, k limiterKeys) error {
	err := retryLocked(func() error {
		_, err := s.pool.Exec(ctx, `SELECT auth_success($1, $2, $3)`, k.addr, k.user, s.auth.AddrFree)
		return err
	})
	return wrap("auth limiter", err)
}

// retryLocked runs f again after a deadlock or serialization failure (its
// statement is one implicit transaction, so nothing of it was kept), a few
// times, as tx does.
func retryLocked(f func() error) error {
	for attempt := 0; ; attempt++ {
		err := f()
		if isRetryable(err) && attempt < 8 {
			time.Sleep(time.Duration(attempt+1) * 5 * time.Millisecond)
			continue
		}
		return err
	}
}

// purgeAuthLimits deletes forgotten limiter rows, at most once a minute per process.
func (s *Store) purgeAuthLimits(ctx context.Context) {
	now := time.Now().UnixNano()
	last := s.authPurged.Load()
	if now-last < int64(time.Minute) || !s.authPurged.CompareAndSwap(last, now) {
		return
	}
	s.pool.Exec(ctx, `DELETE FROM auth_limits WHERE updated_at < now() - $1::interval
		AND coalesce(blocked_until, '-infinity') < now()`, s.auth.Window)
}

func intervalDuration(i pgtype.Interval) time.Duration {
	return time.Duration(i.Microseconds)*time.Microsecond + time.Duration(i.Days)*24*time.Hour +
		time.Duration(i.Months)*30*24*time.Hour
}
