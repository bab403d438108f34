package main

import (
	"context"
	"net/netip"
	"testing"

	"github.com/xdg-go/scram"
	"golang.org/x/crypto/bcrypt"

	"decimail/server/pgrun"
	"decimail/server/store"
)

// TestCLIUserSCRAM: `user add` and `user passwd` store the SCRAM-SHA-256
// verifier of the password they set, so SCRAM works with it at once.
func TestCLIUserSCRAM(t *testing.T) {
	dsn := pgrun.TestDB(t)
	run := cliRun(t, dsn)
	run(true, "migrate")
	run(true, "user", "add", "alice", "-password", "secret")
	ctx := context.Background()
	st, err := store.Open(ctx, dsn, store.Options{PasswordCost: bcrypt.MinCost})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	login := func(pass string) error {
		t.Helper()
		cl, err := scram.SHA256.NewClient("alice", pass, "")
		if err != nil {
			t.Fatal(err)
		}
		conv := cl.NewConversation()
		x := st.NewSCRAM(netip.Addr{}, false, store.ChannelBinding{})
		msg, _ := conv.Step("")
		for {
			out, done, _, err := x.Step(ctx, []byte(msg))
			if err != nil {
				return err
			}
			if msg, err = conv.Step(string(out)); err != nil {
				t.Fatalf("client: %v", err)
			}
			if done {
				return nil
			}
		}
	}
	if err := login("secret"); err != nil {
		t.Fatalf("SCRAM after user add: %v", err)
	}
	run(true, "user", "passwd", "alice", "-password", "new")
	if err := login("secret"); err == nil {
		t.Fatal("the old password still works with SCRAM after user passwd")
	}
	if err := login("new"); err != nil {
		t.Fatalf("SCRAM after user passwd: %v", err)
	}
}
