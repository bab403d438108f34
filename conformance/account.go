package conformance

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"decimail/fixtures"
	"decimail/server/store"
)

// The account setups a client capture can start from: the capture harness
// (conformance/capture) builds the account with SetupAccount, writes the
// setup's name into every transcript's "# account:" header, and the replay
// (TestTranscripts) builds the same account from that header, so both see
// the same mailboxes, UIDs and subscriptions. A transcript without the
// header starts from AccountSeed (the Dovecot captures).
const (
	// AccountSeed is the account the Dovecot captures started from:
	// CreateBareUser (INBOX only, unsubscribed), Sent, Drafts, Trash with
	// their special-use attributes, the seed (fixtures.LoadSeed: 47
	// messages, UIDs as in the manifest), every folder but INBOX
	// subscribed.
	AccountSeed = "seed"
	// AccountSeedViews is AccountSeed plus the default views every new user
	// gets (store.DefaultViews: All Mail, Flagged, Unread, with their
	// special-use attributes), created before the seed is loaded and
	// subscribed: what a user of `make run` sees, on the seed's folders.
	AccountSeedViews = "seed+views"
)

// AccountSetups lists the setups SetupAccount knows.
var AccountSetups = []string{AccountSeed, AccountSeedViews}

// Seed account credentials.
const (
	SeedUser     = "testuser"
	SeedPassword = "pass"
)

// SetupAccount creates testuser/pass with the named setup; the user must
// not exist.
func SetupAccount(ctx context.Context, st *store.Store, setup string) (int64, error) {
	if setup == "" {
		setup = AccountSeed
	}
	if setup != AccountSeed && setup != AccountSeedViews {
		return 0, fmt.Errorf("unknown account setup %q (known: %v)", setup, AccountSetups)
	}
	u, err := st.CreateBareUser(ctx, SeedUser, SeedPassword)
	if err != nil {
		return 0, err
	}
	for _, m := range []struct{ name, use string }{{"Sent", `\Sent`}, {"Drafts", `\Drafts`}, {"Trash", `\Trash`}} {
		if _, err := st.CreateMailbox(ctx, u.ID, m.name, "", m.use); err != nil {
			return 0, err
		}
	}
	subscribe := []string{"Sent", "Drafts", "Trash", "Archive", "Archive/2025", "Lists/golang"}
	if setup == AccountSeedViews {
		for _, v := range store.DefaultViews {
			if _, err := st.CreateMailbox(ctx, u.ID, v.Name, v.Definition, v.SpecialUse); err != nil {
				return 0, fmt.Errorf("view %s: %w", v.Name, err)
			}
			subscribe = append(subscribe, v.Name)
		}
	}
	if err := fixtures.LoadSeed(ctx, st, u.ID); err != nil {
		return 0, err
	}
	for _, name := range subscribe {
		if err := st.Subscribe(ctx, u.ID, name); err != nil {
			return 0, err
		}
	}
	return u.ID, nil
}

// ExtraMessage reads one of the extra seed messages
// (fixtures/transcripts/seed/extra-*.eml), delivered during some captures.
func ExtraMessage(file string) ([]byte, error) {
	dir, err := seedDir()
	if err != nil {
		return nil, err
	}
	return os.ReadFile(filepath.Join(dir, file))
}

// seedDir finds fixtures/transcripts/seed from the working directory (the
// repository root or a package directory).
func seedDir() (string, error) {
	for _, d := range []string{"fixtures/transcripts/seed", "../fixtures/transcripts/seed", "../../fixtures/transcripts/seed"} {
		if st, err := os.Stat(d); err == nil && st.IsDir() {
			return d, nil
		}
	}
	return "", fmt.Errorf("fixtures/transcripts/seed not found from the working directory")
}

// ExtraMessages lists the extra seed messages.
func ExtraMessages() ([]string, error) {
	dir, err := seedDir()
	if err != nil {
		return nil, err
	}
	m, err := filepath.Glob(filepath.Join(dir, "extra-*.eml"))
	for i := range m {
		m[i] = filepath.Base(m[i])
	}
	sort.Strings(m)
	return m, err
}
