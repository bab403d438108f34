package schema_test

import (
	"context"
	"slices"
	"testing"

	"decimail/schema"
	"decimail/server/query"
)

// TestMigrateSortKeys: messages stored before 0016 get their SORT keys
// from their stored header by its Go step (message.BaseSubject, the
// first addr-mailbox of From/To/Cc, folded), as deliveries now write them;
// more rows than one batch are all reached.
func TestMigrateSortKeys(t *testing.T) {
	ctx := context.Background()
	c := emptyDB(t)
	if _, err := schema.MigrateTo(ctx, c, 15); err != nil { // as version 15 left it
		t.Fatal(err)
	}
	// 1,200 messages (more than two batches): odd ones a reply to a list
	// with a non-ASCII subject, even ones without Subject, From or Cc.
	for _, q := range []string{
		`INSERT INTO users (name, password_hash) VALUES ('u', 'x')`,
		`INSERT INTO messages (user_id, internal_date, internal_day, size, header, body, envelope, bodystructure, body_simple, thread_id)
		 SELECT 1, now(), current_date, 10, convert_to(CASE WHEN i % 2 = 1
			THEN E'From: "Jürgen" <JUERGEN.' || i || E'@x.de>\r\nTo: team: Ann@x, bob@x;\r\nCc: =?UTF-8?Q?=C3=89mile?= <EMILE@x>\r\nSubject: Re: [golang] =?UTF-8?Q?Gr=C3=BC=C3=9Fe?= (fwd)\r\n\r\n'
			ELSE E'To: zed@x\r\n\r\n' END, 'UTF8'), '', '', '', '', 1
		 FROM generate_series(1, 1200) i`,
	} {
		if _, err := c.Exec(ctx, q); err != nil {
			t.Fatalf("%.60s…: %v", q, err)
		}
	}
	applied, err := schema.Migrate(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(applied, "0016_sort_keys.sql") {
		t.Fatalf("applied %v", applied)
	}
	count := counter(t, c)
	odd := `SELECT count(*) FROM messages WHERE base_subject = $1 AND subject_reply AND from_mbox = 'juergen.' || id AND to_mbox = 'ann' AND cc_mbox = 'emile'`
	if n := count(odd, query.Fold("Grüße")); n != 600 {
		t.Errorf("%d odd rows with their keys, want 600", n)
	}
	even := `SELECT count(*) FROM messages WHERE base_subject = '' AND NOT subject_reply AND from_mbox = '' AND to_mbox = 'zed' AND cc_mbox = ''`
	if n := count(even); n != 600 {
		t.Errorf("%d even rows with their keys, want 600", n)
	}
}

// TestMigrateDisplayKeys: messages stored before 0019 get their SORT=DISPLAY
// keys (the first From/To display-name, decoded, else the addr-spec;
// folded) from their stored header by its Go step, across batches.
func TestMigrateDisplayKeys(t *testing.T) {
	ctx := context.Background()
	c := emptyDB(t)
	if _, err := schema.MigrateTo(ctx, c, 18); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`INSERT INTO users (name, password_hash) VALUES ('u', 'x')`,
		`INSERT INTO messages (user_id, internal_date, internal_day, size, header, body, envelope, bodystructure, body_simple, thread_id)
		 SELECT 1, now(), current_date, 10, convert_to(CASE WHEN i % 2 = 1
			THEN E'From: =?UTF-8?Q?J=C3=BCrgen?= <j' || i || E'@x.de>\r\nTo: ZED@X.test\r\n\r\n'
			ELSE E'Subject: none\r\n\r\n' END, 'UTF8'), '', '', '', '', 1
		 FROM generate_series(1, 1200) i`,
	} {
		if _, err := c.Exec(ctx, q); err != nil {
			t.Fatalf("%.60s…: %v", q, err)
		}
	}
	applied, err := schema.Migrate(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(applied, "0019_display_keys.sql") {
		t.Fatalf("applied %v", applied)
	}
	count := counter(t, c)
	if n := count(`SELECT count(*) FROM messages WHERE from_display = $1 AND to_display = $2`,
		query.Fold("Jürgen"), query.Fold("zed@x.test")); n != 600 {
		t.Errorf("%d odd rows with their keys, want 600", n)
	}
	if n := count(`SELECT count(*) FROM messages WHERE from_display = '' AND to_display = ''`); n != 600 {
		t.Errorf("%d even rows without keys, want 600", n)
	}
}
