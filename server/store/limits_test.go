package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"decimail/server/pgrun"
	"decimail/server/query"
	"decimail/server/store"
)

// openStore opens a store on dsn with the given limits and creates user
// "u" if it does not exist yet.
func openStore(t *testing.T, dsn string, l store.Limits) (*store.Store, store.User) {
	t.Helper()
	ctx := context.Background()
	s, err := store.Open(ctx, dsn, store.Options{SpoolDir: t.TempDir(), PasswordCost: bcrypt.MinCost, Limits: l})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	u, err := s.UserByName(ctx, "u")
	if err != nil {
		if u, err = s.CreateUser(ctx, "u", "pw"); err != nil {
			t.Fatal(err)
		}
	}
	return s, u
}

func wantNameError(t *testing.T, what string, err error, sentinel error, tooLong, control bool) {
	t.Helper()
	var ne *store.NameError
	switch {
	case !errors.Is(err, sentinel):
		t.Errorf("%s: err = %v, want %v", what, err, sentinel)
	case !errors.As(err, &ne):
		t.Errorf("%s: err = %v, want a *store.NameError", what, err)
	case ne.TooLong != tooLong || ne.Control != control:
		t.Errorf("%s: %+v, want TooLong %v Control %v", what, ne, tooLong, control)
	}
}

// Issue 13: a 60,000-character mailbox name was accepted and a 900,000
// one failed in a btree index as a server error. Names are limited to
// 1,000 bytes and 255 a level, in the store, for every way in.
func TestMailboxNameLengthLimits(t *testing.T) {
	s, u := newStore(t)
	ctx := context.Background()
	level := strings.Repeat("x", 249)
	max := strings.Join([]string{level, level, level, level + "y"}, "/") // 1,000 bytes
	if len(max) != store.DefaultMaxMailboxName {
		t.Fatalf("test name is %d bytes", len(max))
	}
	if _, err := s.CreateMailbox(ctx, u.ID, max, "", ""); err != nil {
		t.Fatalf("1,000-byte name: %v", err)
	}
	for what, name := range map[string]string{
		"1,001 bytes":    max + "z",
		"60,000 bytes":   strings.Repeat("a/", 30000)[:59999],
		"900,000 bytes":  strings.Repeat("b", 900000),
		"256-byte level": "top/" + strings.Repeat("c", 256),
	} {
		_, err := s.CreateMailbox(ctx, u.ID, name, "", "")
		wantNameError(t, "CreateMailbox "+what, err, store.ErrLimit, true, false)
		_, err = s.DefineMailbox(ctx, u.ID, name, "SEEN")
		wantNameError(t, "DefineMailbox "+what, err, store.ErrLimit, true, false)
		err = s.RenameMailbox(ctx, u.ID, "Archive", name)
		wantNameError(t, "RenameMailbox "+what, err, store.ErrLimit, true, false)
		err = s.Subscribe(ctx, u.ID, name)
		wantNameError(t, "Subscribe "+what, err, store.ErrLimit, true, false)
	}
	// Renaming a parent moves its inferiors (and subscriptions) along: the
	// longest of them must fit too.
	mustCreate := func(name string) {
		t.Helper()
		if _, err := s.CreateMailbox(ctx, u.ID, name, "", ""); err != nil {
			t.Fatal(err)
		}
	}
	mustCreate("p/" + level + "/" + level)
	must(t, s.Subscribe(ctx, u.ID, "q/"+level+"/"+level+"/"+level))
	mustCreate("q")
	long := level + "/" + level + "/" + level[:200] // 700 bytes: p's child would be 1,202
	err := s.RenameMailbox(ctx, u.ID, "p", long)
	wantNameError(t, "RenameMailbox of a parent", err, store.ErrLimit, true, false)
	err = s.RenameMailbox(ctx, u.ID, "q", long[:300]) // q's subscribed inferior would be 1,052
	wantNameError(t, "RenameMailbox of a subscribed parent", err, store.ErrLimit, true, false)
	must(t, s.RenameMailbox(ctx, u.ID, "p", "pp"))
	if _, err := s.Mailbox(ctx, u.ID, "pp/"+level+"/"+level); err != nil {
		t.Fatalf("after renaming p to pp: %v", err)
	}
}

// Names with terminal escape sequences were accepted and printed raw by
// `decimail mailbox list`. C0, DEL and C1 characters are refused ("Servers
// MAY refuse to create mailbox names containing Unicode CTL characters",
// rfc9051.txt:980-981), by every way a name gets in.
func TestMailboxNameControlCharacters(t *testing.T) {
	s, u := newStore(t)
	ctx := context.Background()
	for _, name := range []string{"a\x1b[31mred", "bell\a", "tab\there", "del\x7f", "csi\u009b31m", "x/\x00", "nl\n"} {
		what := fmt.Sprintf("%q", name)
		_, err := s.CreateMailbox(ctx, u.ID, name, "", "")
		wantNameError(t, "CreateMailbox "+what, err, store.ErrInvalid, false, true)
		_, err = s.DefineMailbox(ctx, u.ID, name, "SEEN")
		wantNameError(t, "DefineMailbox "+what, err, store.ErrInvalid, false, true)
		err = s.RenameMailbox(ctx, u.ID, "Archive", name)
		wantNameError(t, "RenameMailbox "+what, err, store.ErrInvalid, false, true)
		err = s.Subscribe(ctx, u.ID, name)
		wantNameError(t, "Subscribe "+what, err, store.ErrInvalid, false, true)
	}
	// What is not a control character stays allowed.
	for _, name := range []string{"Entwürfe", "€ & ¥", "nbsp\u00a0here", "日本語/メール", "a~b"} {
		if _, err := s.CreateMailbox(ctx, u.ID, name, "", ""); err != nil {
			t.Errorf("CreateMailbox(%q): %v", name, err)
		}
	}
	ms, err := s.Mailboxes(ctx, u.ID)
	must(t, err)
	for _, m := range ms {
		if strings.ContainsFunc(m.Name, func(r rune) bool { return r < 0x20 || r >= 0x7f && r <= 0x9f }) {
			t.Errorf("mailbox %q was created", m.Name)
		}
	}
}

// Issue 13: 5,000 copies of HEADER X a were more than 13 minutes of
// planning; 60,000 characters of HEADER value ran 37 s and then failed as
// a server error. Copies cost one; programs over the limits are refused
// before they reach Postgres, as ErrLimit.
func TestSearchLimits(t *testing.T) {
	s, u := newStore(t)
	ctx := context.Background()
	for i := range 6 {
		deliver(t, s, u, msg(fmt.Sprintf("limits %d", i), "body text"), store.DeliverOptions{})
	}
	ib := mailbox(t, s, u, "INBOX")
	search := func(prog string) ([]uint32, error) {
		t.Helper()
		n, err := query.ParseDefinition(prog)
		if err != nil {
			t.Fatal(err)
		}
		return s.Search(ctx, ib.Box(), n, &query.Env{MaxUID: 6})
	}
	one, err := search(`HEADER Subject "limits 3"`)
	must(t, err)
	if !slices.Equal(one, []uint32{4}) {
		t.Fatalf("HEADER Subject \"limits 3\" = %v", one)
	}
	many, err := search(strings.Repeat(`HEADER Subject "limits 3" `, 5000))
	if err != nil || !slices.Equal(many, one) {
		t.Fatalf("5,000 copies: %v %v, want %v", many, err, one)
	}
	var distinct strings.Builder
	for i := range 5000 {
		fmt.Fprintf(&distinct, "HEADER X a%d ", i)
	}
	for what, prog := range map[string]string{
		"5,000 distinct keys":           distinct.String(),
		"60,000-character HEADER value": "HEADER Subject " + strings.Repeat("x", 60000),
		"long field name":               "HEADER " + strings.Repeat("X", 2000) + " a",
	} {
		_, err := search(prog)
		var le *query.LimitError
		if !errors.Is(err, store.ErrLimit) || !errors.As(err, &le) {
			t.Errorf("%s: err = %v, want ErrLimit with a LimitError", what, err)
		}
	}
}

// Definitions get the same limits, with a clear error; a definition
// stored before a limit was lowered keeps working.
func TestDefinitionLimits(t *testing.T) {
	dsn := pgrun.TestDB(t)
	s, u := openStore(t, dsn, store.Limits{})
	ctx := context.Background()
	var distinct strings.Builder
	for i := range 1001 {
		fmt.Fprintf(&distinct, "SUBJECT s%d ", i)
	}
	_, err := s.DefineMailbox(ctx, u.ID, "Big", distinct.String())
	if !errors.Is(err, store.ErrLimit) || !strings.Contains(err.Error(), "1001 search keys, at most 1000 allowed") {
		t.Errorf("1,001 keys: %v", err)
	}
	_, err = s.CreateMailbox(ctx, u.ID, "Big", "BODY "+strings.Repeat("v", 1025), "")
	if !errors.Is(err, store.ErrLimit) || !strings.Contains(err.Error(), "1025 bytes in a search string, at most 1024 allowed") {
		t.Errorf("long value: %v", err)
	}
	if _, err := s.Mailbox(ctx, u.ID, "Big"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a refused definition left a mailbox: %v", err)
	}
	if _, err := s.DefineMailbox(ctx, u.ID, "Golang", strings.Repeat("SUBJECT golang ", 3000)+"OR FROM gopher BODY golang"); err != nil {
		t.Fatalf("3,000 copies: %v", err)
	}
	// Lowered limits: the stored view still gets its messages.
	low, _ := openStore(t, dsn, store.Limits{Search: query.Limits{MaxTerms: 1, MaxValue: 3}})
	deliver(t, low, u, msg("golang news", "about golang"), store.DeliverOptions{})
	if got := uids(t, low, u, "Golang"); len(got) != 1 {
		t.Fatalf("Golang view after a delivery under lower limits: %v", got)
	}
	if _, err := low.DefineMailbox(ctx, u.ID, "Golang", "SUBJECT golang"); !errors.Is(err, store.ErrLimit) {
		t.Fatalf("redefinition over the lowered value limit: %v", err)
	}
}

// The limits come from Options, else the configuration table, else the
// defaults.
func TestLimitsFromConfiguration(t *testing.T) {
	dsn := pgrun.TestDB(t)
	s, u := openStore(t, dsn, store.Limits{})
	ctx := context.Background()
	want := store.Limits{Search: query.Limits{MaxTerms: query.DefaultMaxTerms, MaxValue: query.DefaultMaxValue},
		MailboxName: store.DefaultMaxMailboxName, MailboxLevel: store.DefaultMaxMailboxLevel}
	if got := s.Limits(); got != want {
		t.Fatalf("defaults: %+v, want %+v", got, want)
	}
	must(t, s.SetConfig(ctx, "mailbox_max_name", "20"))
	must(t, s.SetConfig(ctx, "search_max_terms", "-1"))
	c, _ := openStore(t, dsn, store.Limits{MailboxLevel: 8})
	want.MailboxName, want.MailboxLevel, want.Search.MaxTerms = 20, 8, -1
	if got := c.Limits(); got != want {
		t.Fatalf("configured: %+v, want %+v", got, want)
	}
	_, err := c.CreateMailbox(ctx, u.ID, "abcdefgh/abcdefghi", "", "")
	wantNameError(t, "9-byte level", err, store.ErrLimit, true, false)
	_, err = c.CreateMailbox(ctx, u.ID, "abcdefgh/abcdefgh/abc", "", "")
	wantNameError(t, "21 bytes", err, store.ErrLimit, true, false)
	must(t, s.SetConfig(ctx, "search_max_value", "lots"))
	if _, err := store.Open(ctx, dsn, store.Options{}); err == nil || !strings.Contains(err.Error(), "search_max_value") {
		t.Fatalf("a bad configuration value: %v", err)
	}
}
