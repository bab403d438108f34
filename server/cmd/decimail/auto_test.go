package main

import (
	"regexp"
	"strings"
	"testing"

	"decimail/server/pgrun"
)

// TestCLIAutoAdd (issue 18): `decimail auto add` says what the auto
// address does and that replies to the addresses it hands out reach the
// user; the auto address is then one of the user's addresses (address
// list), and another user's address cannot become one.
func TestCLIAutoAdd(t *testing.T) {
	run := cliRun(t, pgrun.TestDB(t))
	run(true, "migrate")
	run(true, "user", "add", "alice", "-password", "secret")
	run(true, "user", "add", "bob", "-password", "secret")
	run(true, "address", "add", "bob@example.test", "bob")
	out := run(true, "auto", "add", "alice", "Auto@Example.test", "%s@example.test")
	if !regexp.MustCompile(`such as [a-z0-9]{8}@example\.test \(template %s@example\.test\)`).MatchString(out) ||
		!strings.Contains(out, "auto@example.test itself are addresses of alice: replies to them are delivered to alice's INBOX") {
		t.Errorf("auto add says:\n%s", out)
	}
	if list := run(true, "address", "list"); !regexp.MustCompile(`(?m)^auto@example\.test +alice$`).MatchString(list) {
		t.Errorf("address list after auto add:\n%s", list)
	}
	if out := run(false, "auto", "add", "alice", "bob@example.test", "%s@example.test"); !strings.Contains(out, "bob@example.test is an address of another user") {
		t.Errorf("auto add of bob's address: %s", out)
	}
}
