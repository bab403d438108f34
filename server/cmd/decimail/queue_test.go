package main

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"decimail/server/pgrun"
	"decimail/server/store"
)

// TestQueueCommands: decimail queue list|show|retry|drop on a real queue
// (issue 18): list and show say who sends what to whom, how often it was
// tried, when next and why it failed; retry makes a message due now;
// drop removes it; a message a relay worker holds is refused without
// -force.
func TestQueueCommands(t *testing.T) {
	ctx := context.Background()
	dsn := pgrun.TestDB(t)
	st, err := store.Open(ctx, dsn, store.Options{PasswordCost: bcrypt.MinCost})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	u, err := st.CreateUser(ctx, "alice", "pw")
	if err != nil {
		t.Fatal(err)
	}
	raw := func(subject string) []byte {
		return []byte("From: Alice <alice@example.test>\r\nTo: bob@remote.example\r\nSubject: " + subject +
			"\r\nMessage-ID: <" + subject + "@example.test>\r\n\r\nhello\r\n")
	}
	id1, err := st.Enqueue(ctx, u.ID, "alice@example.test", []string{"bob@remote.example", "carol@remote.example"}, raw("first"))
	if err != nil {
		t.Fatal(err)
	}
	id2, err := st.Enqueue(ctx, u.ID, "alice@example.test", []string{"dave@remote.example"}, raw("second"))
	if err != nil {
		t.Fatal(err)
	}
	// A failed attempt on the first: due in an hour, with its error.
	m, err := st.ClaimOutbound(ctx, time.Now().Add(time.Second), time.Minute)
	if err != nil || m == nil || m.ID != id1 {
		t.Fatalf("claim: %v %v", m, err)
	}
	if err := st.FinishOutbound(ctx, m, store.OutboundResult{Remaining: m.RcptTo, NextAttempt: time.Now().Add(time.Hour),
		LastError: "451 4.3.0 smart host says try later"}); err != nil {
		t.Fatal(err)
	}

	run := cliRun(t, dsn)
	s1, s2 := strconv.FormatInt(id1, 10), strconv.FormatInt(id2, 10)

	list := run(true, "queue", "list")
	lines := strings.Split(list, "\n")
	if len(lines) < 3 || !strings.HasPrefix(lines[0], "ID") {
		t.Fatalf("queue list:\n%s", list)
	}
	first, second := strings.Fields(lines[1]), strings.Fields(lines[2])
	// ID AGE ATTEMPTS NEXT(in 59m) SENDER RECIPIENTS... LAST ERROR
	if first[0] != s1 || first[2] != "1" || first[3] != "in" || !strings.HasPrefix(first[4], "59m") ||
		first[5] != "alice@example.test" || !strings.Contains(lines[1], "bob@remote.example, carol@remote.example") ||
		!strings.Contains(lines[1], "451 4.3.0 smart host says try later") {
		t.Errorf("first line of queue list: %q", lines[1])
	}
	if second[0] != s2 || second[2] != "0" || second[3] != "now" || second[4] != "alice@example.test" ||
		second[5] != "dave@remote.example" {
		t.Errorf("second line of queue list: %q", lines[2])
	}

	show := run(true, "queue", "show", s1)
	for _, want := range []string{"id:           " + s1, "user:         alice", "sender:       alice@example.test",
		"recipients:   bob@remote.example, carol@remote.example", "attempts:     1", "(in 59m",
		"last error:   451 4.3.0 smart host says try later", "\nSubject: first\n", "Message-ID: <first@example.test>"} {
		if !strings.Contains(show, want) {
			t.Errorf("queue show lacks %q:\n%s", want, show)
		}
	}
	if strings.Contains(show, "hello") {
		t.Errorf("queue show printed the body:\n%s", show)
	}

	// retry: due now, so a relay worker claims it at once.
	if out := run(true, "queue", "retry", s1); !strings.Contains(out, "due now") {
		t.Errorf("queue retry: %s", out)
	}
	q, _, err := st.QueueMessage(ctx, id1)
	if err != nil || q.NextAttempt.After(time.Now()) {
		t.Fatalf("after retry: next attempt %v (%v)", q.NextAttempt, err)
	}

	// A message a worker holds: retry and drop refuse it without -force.
	m, err = st.ClaimOutbound(ctx, time.Now(), time.Hour)
	if err != nil || m == nil {
		t.Fatalf("claim: %v %v", m, err)
	}
	held := strconv.FormatInt(m.ID, 10)
	if out := run(false, "queue", "drop", held); !strings.Contains(out, "being sent") {
		t.Errorf("drop of a held message: %s", out)
	}
	if out := run(true, "queue", "list"); !strings.Contains(out, "sending") {
		t.Errorf("queue list does not show the held message as sending:\n%s", out)
	}
	run(true, "queue", "drop", "-force", held)

	// drop: gone from the queue; the other stays.
	other := s1
	if held == s1 {
		other = s2
	}
	if out := run(true, "queue", "drop", other); !strings.Contains(out, "dropped") {
		t.Errorf("queue drop: %s", out)
	}
	if out := run(false, "queue", "show", other); !strings.Contains(out, "no message "+other+" in the queue") {
		t.Errorf("show of a dropped message: %s", out)
	}
	if out := run(true, "queue", "list"); !strings.Contains(out, "the queue is empty") {
		t.Errorf("queue list after dropping everything:\n%s", out)
	}
	if out := run(false, "queue", "retry", "x1"); !strings.Contains(out, "not a queue id") {
		t.Errorf("retry x1: %s", out)
	}
}
