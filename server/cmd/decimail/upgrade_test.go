package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/crypto/bcrypt"

	"decimail/internal/imaptest"
	"decimail/schema"
	"decimail/server/pgrun"
)

// upgradeMessage is a message stored by the first schema version.
type upgradeMessage struct {
	header, body string
	text         string // decoded text, as version 1 kept it in messages.body_text
	seen, flag   bool
	keywords     []string
	inbox        int64 // UID in INBOX (0: not there)
	archive      int64 // UID in Archive
	flagged      int64 // UID in the view Flagged
}

// Issue 18: a database that the first schema version made, with mail in
// it, goes through every migration since (`decimail migrate`, -status
// before and after) and a server of this version serves the same mail:
// messages, their bytes, UIDs, UIDVALIDITY, UIDNEXT, flags and keywords, in
// folders and in a view; and the texts the later migrations moved and
// folded (0002, 0006, 0008's Go step) are searchable.
func TestUpgradeKeepsMail(t *testing.T) {
	ctx := context.Background()
	inst, _, err := pgrun.Shared(ctx)
	if err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("t_upgrade_%d", os.Getpid())
	dsn, err := pgrun.CloneDB(ctx, inst.DSN, "template0", name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pgrun.DropDB(context.Background(), inst.DSN, name) })
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if applied, err := schema.MigrateTo(ctx, c, 1); err != nil || len(applied) != 1 || applied[0] != "0001_init.sql" {
		t.Fatalf("MigrateTo 1: %v, %v", applied, err)
	}

	msgs := []upgradeMessage{
		{header: "From: alice@example.test\r\nSubject: Treffen in München\r\n\r\n", body: "Bis morgen.\r\n",
			text: "Subject: Treffen in München\nBis morgen.", seen: true, flag: true, inbox: 3, archive: 1, flagged: 1},
		{header: "From: bob@example.test\r\nSubject: fruit\r\n\r\n", body: "one kumquat, 8 bits: \xe9t\xe9\r\n",
			text: "Subject: fruit\none kumquat", keywords: []string{"$Label1", "Work"}, inbox: 5},
		{header: "Subject: plain\r\n\r\n", body: "no flags at all\r\n", text: "Subject: plain\nno flags at all", inbox: 7},
	}
	hash, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := c.Exec(ctx, q, args...); err != nil {
			t.Fatalf("%.70s…: %v", q, err)
		}
	}
	exec(`INSERT INTO users (id, name, password_hash) VALUES (1, 'alice', $1)`, string(hash))
	exec(`INSERT INTO mailboxes (id, user_id, name, uidvalidity, uidnext) VALUES
		(1, 1, 'INBOX', 1234567, 8), (2, 1, 'Archive', 7654321, 2)`)
	exec(`INSERT INTO mailboxes (id, user_id, name, definition, uses_flags, uidvalidity, uidnext) VALUES
		(3, 1, 'Flagged', 'FLAGGED', true, 999, 2)`)
	date := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	for i, m := range msgs {
		id := i + 1
		subject := strings.TrimPrefix(strings.SplitN(m.text, "\n", 2)[0], "Subject: ")
		exec(`INSERT INTO messages (id, user_id, internal_date, internal_day, size, header, body, envelope, bodystructure,
				body_simple, subject, thread_id, header_text, body_text)
			VALUES ($1, 1, $2::timestamptz, ($2::timestamptz AT TIME ZONE 'UTC')::date, $3, $4, $5, '', '', '', $6, $1, $7, $8)`,
			id, date, len(m.header)+len(m.body), []byte(m.header), []byte(m.body), subject,
			strings.SplitN(m.text, "\n", 2)[0]+"\n", strings.SplitN(m.text, "\n", 2)[1])
		exec(`INSERT INTO message_flags (message_id, user_id, size, internal_day, seen, flagged, keywords, modseq)
			VALUES ($1, 1, $2, ($3::timestamptz AT TIME ZONE 'UTC')::date, $4, $5, $6, nextval('modseq_seq'))`,
			id, len(m.header)+len(m.body), date, m.seen, m.flag, append([]string{}, m.keywords...))
		for box, uid := range map[int]int64{1: m.inbox, 2: m.archive, 3: m.flagged} {
			if uid != 0 {
				exec(`INSERT INTO mailbox_messages (mailbox_id, uid, message_id, modseq, recent) VALUES ($1, $2, $3, nextval('modseq_seq'), false)`, box, uid, id)
			}
		}
	}
	exec(`SELECT setval('messages_id_seq', 3); SELECT setval('users_id_seq', 1); SELECT setval('mailboxes_id_seq', 3)`)

	run := cli(t, dbEnv(t, dsn))
	out, err := run("migrate", "-status")
	if err != nil {
		t.Fatalf("migrate -status: %v\n%s", err, out)
	}
	all, _ := schema.All()
	for _, want := range []string{"0001_init.sql                applied ", "0002_message_texts.sql       pending",
		"0008_text_fold.sql           pending (with a Go step)", fmt.Sprintf("%d pending: run `decimail migrate`", len(all)-1)} {
		if !strings.Contains(out, want) {
			t.Errorf("migrate -status at version 1 lacks %q:\n%s", want, out)
		}
	}
	last := "applied " + all[len(all)-1].Name
	if out, err := run("migrate"); err != nil || !strings.Contains(out, last) {
		t.Fatalf("migrate: %v\n%s", err, out)
	}
	if out, err := run("migrate", "-status"); err != nil || strings.Contains(out, "pending") || !strings.HasSuffix(out, "schema is up to date\n") {
		t.Errorf("migrate -status after migrate: %v\n%s", err, out)
	}

	// What a server of this version serves.
	d := startDaemon(t, dsn, t.TempDir())
	ic, err := imaptest.Dial(d.imap)
	if err != nil {
		t.Fatal(err)
	}
	defer ic.Close()
	if err := ic.Login("alice", "pw"); err != nil {
		t.Fatal(err)
	}
	type got struct {
		flags, body string
		size        string
	}
	check := func(mailbox string, uidvalidity, uidnext string, want map[int64]upgradeMessage) {
		t.Helper()
		untagged, _, err := ic.Command("SELECT " + mailbox)
		if err != nil {
			t.Fatalf("SELECT %s: %v", mailbox, err)
		}
		codes := map[string]string{}
		for _, r := range untagged {
			if len(r.Code) == 2 {
				codes[r.CodeName()] = r.Code[1].S
			}
		}
		if codes["UIDVALIDITY"] != uidvalidity || codes["UIDNEXT"] != uidnext {
			t.Errorf("%s: UIDVALIDITY %s UIDNEXT %s, want %s %s", mailbox, codes["UIDVALIDITY"], codes["UIDNEXT"], uidvalidity, uidnext)
		}
		untagged, _, err = ic.Command("UID FETCH 1:* (FLAGS RFC822.SIZE BODY.PEEK[])")
		if err != nil {
			t.Fatalf("FETCH in %s: %v", mailbox, err)
		}
		seen := map[int64]got{}
		for _, r := range untagged {
			a := r.Attrs()
			if a == nil {
				continue
			}
			var uid int64
			fmt.Sscan(a["UID"].S, &uid)
			var flags []string
			for _, f := range a["FLAGS"].L {
				flags = append(flags, f.S)
			}
			seen[uid] = got{flags: strings.Join(flags, " "), body: a["BODY[]"].S, size: a["RFC822.SIZE"].S}
		}
		if len(seen) != len(want) {
			t.Errorf("%s: UIDs %v, want %d messages", mailbox, seen, len(want))
		}
		for uid, m := range want {
			g, ok := seen[uid]
			if !ok {
				t.Errorf("%s: no UID %d", mailbox, uid)
				continue
			}
			var flags []string
			if m.seen {
				flags = append(flags, `\Seen`)
			}
			if m.flag {
				flags = append(flags, `\Flagged`)
			}
			flags = append(flags, m.keywords...)
			if g.body != m.header+m.body || g.size != fmt.Sprint(len(m.header)+len(m.body)) {
				t.Errorf("%s UID %d: %d bytes %q, want %q", mailbox, uid, len(g.body), g.body, m.header+m.body)
			}
			if !sameWords(g.flags, strings.Join(flags, " ")) {
				t.Errorf("%s UID %d: FLAGS (%s), want (%s)", mailbox, uid, g.flags, strings.Join(flags, " "))
			}
		}
	}
	check("INBOX", "1234567", "8", map[int64]upgradeMessage{3: msgs[0], 5: msgs[1], 7: msgs[2]})
	check("Archive", "7654321", "2", map[int64]upgradeMessage{1: msgs[0]})
	check("Flagged", "999", "2", map[int64]upgradeMessage{1: msgs[0]})

	// The texts moved (0002, 0006) and folded (0008) are found.
	if _, _, err := ic.Command("SELECT INBOX"); err != nil {
		t.Fatal(err)
	}
	for q, want := range map[string]string{"BODY kumquat": "SEARCH 5", "CHARSET UTF-8 SUBJECT {8}\r\nMÜNCHEN": "SEARCH 3",
		"KEYWORD Work": "SEARCH 5", "UNSEEN": "SEARCH 5 7"} {
		untagged, _, err := ic.Command("UID SEARCH " + q)
		if err != nil {
			t.Errorf("UID SEARCH %q: %v", q, err)
			continue
		}
		var res []string
		for _, r := range untagged {
			if r.Name() == "SEARCH" {
				res = append(res, strings.TrimRight(strings.TrimPrefix(r.Raw, "* "), "\r\n"))
			}
		}
		if strings.Join(res, "") != want {
			t.Errorf("UID SEARCH %q: %q, want %q", q, res, want)
		}
	}
	// New mail goes on from UIDNEXT.
	_, done, err := ic.Command("APPEND INBOX {14}\r\nSubject: new\r\n")
	if err != nil || done.CodeName() != "APPENDUID" || len(done.Code) != 3 || done.Code[1].S != "1234567" || done.Code[2].S != "8" {
		t.Errorf("APPEND after the upgrade: %v, %v; want APPENDUID 1234567 8", done, err)
	}
}

func sameWords(a, b string) bool {
	x, y := strings.Fields(a), strings.Fields(b)
	if len(x) != len(y) {
		return false
	}
	m := map[string]int{}
	for _, w := range x {
		m[strings.ToLower(w)]++
	}
	for _, w := range y {
		if m[strings.ToLower(w)]--; m[strings.ToLower(w)] < 0 {
			return false
		}
	}
	return true
}
