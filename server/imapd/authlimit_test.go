package imapd

import (
	"bufio"
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"decimail/server/pgrun"
	"decimail/server/store"
)

// TestLoginGuessesLimitedAcrossConnections (issue 13, finding 3): the
// 1 s delay and BYE after 5 failures were per connection, so 40 parallel
// connections guessed 200 passwords in 8 s. LOGIN now goes through the
// store's limiter, per address across connections (here scaled down: 5
// free failures, then blocks of 100, 200, 400, 800 ms): 20 connections
// guessing for 1.5 s get about 9 passwords checked, the rest are refused
// with NO [UNAVAILABLE] unchecked, and the real user still logs in from
// another address.
func TestLoginGuessesLimitedAcrossConnections(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := pgrun.TestDB(t)
	st, err := store.Open(ctx, dsn, store.Options{PasswordCost: bcrypt.MinCost})
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"auth_addr_free": "5", "auth_user_free": "10", "auth_delay_base": "100ms",
		"auth_addr_max_block": "2s", "auth_user_max_wait": "200ms"} {
		if err := st.SetConfig(ctx, k, v); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	if st, err = store.Open(ctx, dsn, store.Options{PasswordCost: bcrypt.MinCost}); err != nil { // reads auth_*
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	if _, err := st.CreateUser(ctx, "demo", "pw"); err != nil {
		t.Fatal(err)
	}
	e := &testEnv{t: t, st: st}
	_, addr := e.serve(Config{AuthFailDelay: time.Millisecond})

	login := func(d *net.Dialer, pass string, until time.Time) (replies []string) {
		for time.Now().Before(until) {
			nc, err := d.Dial("tcp", addr)
			if err != nil {
				t.Error(err)
				return
			}
			nc.SetDeadline(until.Add(5 * time.Second))
			br := bufio.NewReader(nc)
			br.ReadString('\n') // greeting
			for time.Now().Before(until) {
				if _, err := nc.Write([]byte("a LOGIN demo " + pass + "\r\n")); err != nil {
					break
				}
				l, err := br.ReadString('\n')
				if err != nil || strings.HasPrefix(l, "* BYE") {
					break
				}
				replies = append(replies, strings.TrimSpace(l))
				if pass == "pw" {
					nc.Close()
					return replies
				}
			}
			nc.Close()
		}
		return replies
	}
	end := time.Now().Add(1500 * time.Millisecond)
	var mu sync.Mutex
	var failed, refused int
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			for _, r := range login(&net.Dialer{}, "guess", end) {
				mu.Lock()
				if strings.Contains(r, "[UNAVAILABLE]") {
					refused++
				} else if strings.Contains(r, "[AUTHENTICATIONFAILED]") {
					failed++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	// Every checked guess is charged to the address and none refunded
	// (and a connection's fifth is answered BYE, not NO).
	checked := failed
	if err := st.Pool().QueryRow(ctx, `SELECT failures FROM auth_limits WHERE key = 'addr:127.0.0.1'`).Scan(&checked); err != nil {
		t.Log(err)
	}
	t.Logf("%d guesses checked (%d answered NO), %d refused unchecked", checked, failed, refused)
	if checked < 5 || checked > 10 || refused == 0 {
		t.Fatalf("%d guesses checked in 1.5 s over 20 connections (%d refused), want 5 + 4 (±1)", checked, refused)
	}
	other := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}
	if r := login(other, "pw", time.Now().Add(5*time.Second)); len(r) != 1 || !strings.HasPrefix(r[0], "a OK") {
		t.Fatalf("the real user from another address: %q", r)
	}
}
