package conformance

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"decimail/internal/imaptest"
)

// A fixture (scenarios/fixtures/NAME.fix) lists IMAP operations that build
// the account a scenario starts from, one per line:
//
//	create Archive/2025
//	subscribe Archive
//	append INBOX plain.eml (\Seen) "02-Jun-2025 09:00:00 +0000"
//
// append takes the mailbox, a file in fixtures/messages/ and the optional
// flag list and date exactly as APPEND takes them. Lines starting with # are
// comments. The loader uses only CREATE, SUBSCRIBE and APPEND, so it works
// against any server — except for
//
//	define "Flagged" FLAGGED
//
// which makes a query mailbox (a saved SEARCH program) and which only a
// target implementing Definer understands (Decimail), and
//
//	set view_expunge delete
//
// which sets a per-user setting (Setter); use them only in fixtures of
// applies: decimail scenarios.

// Definer is implemented by targets that can create query mailboxes (fixture
// directive define NAME DEFINITION) outside IMAP.
type Definer interface {
	Define(t testing.TB, user, name, definition string)
}

// Setter is implemented by targets with per-user settings (fixture
// directive set KEY VALUE).
type Setter interface {
	Set(t testing.TB, user, key, value string)
}

// LoadFixture logs in, applies the fixture (if name is not empty) and returns
// the capabilities the server advertises after login.
func LoadFixture(t testing.TB, addr, user, pass, dir, name string) []string {
	t.Helper()
	return loadFixture(t, nil, addr, user, pass, dir, name)
}

// loadFixture is LoadFixture with a target for define lines (may be nil).
func loadFixture(t testing.TB, tg Target, addr, user, pass, dir, name string) []string {
	t.Helper()
	c, err := Dial("fixture", addr)
	if err != nil {
		t.Fatalf("fixture: %v", err)
	}
	defer c.Close()
	if err := c.Login(user, pass); err != nil {
		t.Fatalf("fixture: %v", err)
	}
	untagged, _, err := c.Command("F0", "CAPABILITY")
	if err != nil {
		t.Fatalf("fixture: %v", err)
	}
	// What the target advertises before (AUTH=...) and after login.
	caps := c.greetingCaps
	for _, r := range untagged {
		if len(r.Data) > 0 && strings.EqualFold(r.Data[0].S, "CAPABILITY") {
			for _, tok := range r.Data[1:] {
				caps = append(caps, tok.S)
			}
		}
	}
	if name != "" {
		var define func(name, def string) error
		if d, ok := tg.(Definer); ok {
			define = func(name, def string) error { d.Define(t, user, name, def); return nil }
		}
		var set func(key, value string) error
		if st, ok := tg.(Setter); ok {
			set = func(key, value string) error { st.Set(t, user, key, value); return nil }
		}
		if err := applyFixture(c, dir, name, define, set); err != nil {
			t.Fatalf("fixture %s: %v", name, err)
		}
	}
	c.Command("F9", "LOGOUT")
	return caps
}

func applyFixture(c *Conn, dir, name string, define func(name, def string) error, set func(key, value string) error) error {
	data, err := os.ReadFile(filepath.Join(dir, name+".fix"))
	if err != nil {
		return err
	}
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		op, args, _ := strings.Cut(line, " ")
		tag := "F" + strconv.Itoa(i+1)
		switch op {
		case "create":
			_, _, err = c.Command(tag, "CREATE "+imaptest.Quote(args))
		case "subscribe":
			_, _, err = c.Command(tag, "SUBSCRIBE "+imaptest.Quote(args))
		case "append":
			f := strings.Fields(args)
			if len(f) < 2 {
				return fmt.Errorf("line %d: append MAILBOX FILE [FLAGS] [DATE]", i+1)
			}
			var msg []byte
			msg, err = os.ReadFile(filepath.Join(dir, "messages", f[1]))
			if err != nil {
				return err
			}
			rest := strings.TrimSpace(strings.TrimPrefix(strings.TrimPrefix(args, f[0]), " "+f[1]))
			cmd := "APPEND " + imaptest.Quote(f[0]) + " "
			if rest != "" {
				cmd += rest + " "
			}
			_, _, err = c.Command(tag, cmd+"{"+strconv.Itoa(len(msg))+"}", msg)
		case "define":
			mbox, def, ok := splitDefine(args)
			if !ok {
				return fmt.Errorf("line %d: define \"NAME\" DEFINITION", i+1)
			}
			if define == nil {
				return fmt.Errorf("line %d: define needs a target that implements Definer (applies: decimail)", i+1)
			}
			err = define(mbox, def)
		case "set":
			key, value, ok := strings.Cut(args, " ")
			if !ok || key == "" || strings.TrimSpace(value) == "" {
				return fmt.Errorf("line %d: set KEY VALUE", i+1)
			}
			if set == nil {
				return fmt.Errorf("line %d: set needs a target that implements Setter (applies: decimail)", i+1)
			}
			err = set(key, strings.TrimSpace(value))
		default:
			return fmt.Errorf("line %d: unknown operation %q", i+1, op)
		}
		if err != nil {
			return fmt.Errorf("line %d: %v", i+1, err)
		}
	}
	return nil
}

// splitDefine splits `"Name with space" DEFINITION` or `Name DEFINITION`.
func splitDefine(args string) (name, def string, ok bool) {
	args = strings.TrimSpace(args)
	if rest, found := strings.CutPrefix(args, `"`); found {
		name, def, ok = strings.Cut(rest, `"`)
	} else {
		name, def, ok = strings.Cut(args, " ")
	}
	def = strings.TrimSpace(def)
	return name, def, ok && name != "" && def != ""
}

// CleanAccount empties an account over IMAP: it deletes every mailbox but
// INBOX, unsubscribes everything and expunges INBOX. UIDs of INBOX do not
// restart at 1, so scenarios that depend on UID values fail on such targets.
func CleanAccount(t testing.TB, addr, user, pass string) {
	t.Helper()
	c, err := Dial("reset", addr)
	if err != nil {
		t.Fatalf("reset: %v", err)
	}
	defer c.Close()
	if err := c.Login(user, pass); err != nil {
		t.Fatalf("reset: %v", err)
	}
	names := func(cmd string) []string {
		untagged, _, err := c.Command("R1", cmd)
		if err != nil {
			t.Fatalf("reset: %v", err)
		}
		var out []string
		for _, r := range untagged {
			if len(r.Data) == 4 {
				out = append(out, r.Data[3].S)
			}
		}
		// Children before parents.
		slices.SortFunc(out, func(a, b string) int { return len(b) - len(a) })
		return out
	}
	for _, m := range names(`LSUB "" "*"`) {
		c.Command("R2", "UNSUBSCRIBE "+imaptest.Quote(m))
	}
	for _, m := range names(`LIST "" "*"`) {
		if !strings.EqualFold(m, "INBOX") {
			c.Command("R3", "DELETE "+imaptest.Quote(m))
		}
	}
	if _, _, err := c.Command("R4", "SELECT INBOX"); err != nil {
		t.Fatalf("reset: %v", err)
	}
	c.Command("R5", `STORE 1:* +FLAGS.SILENT (\Deleted)`)
	c.Command("R6", "EXPUNGE")
	c.Command("R7", "LOGOUT")
}
