package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/jackc/pgx/v5"
	"golang.org/x/crypto/bcrypt"

	"decimail/internal/testwait"
	"decimail/server/pgrun"
	"decimail/server/store"
)

var binOnce struct {
	sync.Once
	path string
	err  error
	out  []byte
}

// binary builds the decimail command once per test run.
// cliRun returns a runner of the built binary on the database dsn (a
// spool of its own): run(wantOK, args...) fails the test when the command's
// success is not wantOK and returns its combined output.
func cliRun(t *testing.T, dsn string) func(wantOK bool, args ...string) string {
	bin := binary(t)
	env := append(os.Environ(), "DECIMAIL_DATABASE_URL="+dsn, "DECIMAIL_SPOOL="+t.TempDir())
	return func(wantOK bool, args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if (err == nil) != wantOK {
			t.Fatalf("decimail %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
}

func binary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "decimail-bin-")
		if err != nil {
			binOnce.err = err
			return
		}
		binOnce.path = filepath.Join(dir, "decimail")
		binOnce.out, binOnce.err = exec.Command("go", "build", "-o", binOnce.path, ".").CombinedOutput()
	})
	if binOnce.err != nil {
		t.Fatalf("build: %v\n%s", binOnce.err, binOnce.out)
	}
	return binOnce.path
}

// daemon is a `decimail serve` process.
type daemon struct {
	cmd              *exec.Cmd
	imap, smtp, subm string
}

// listeningRe matches the line runDaemons logs once a listener is bound.
var listeningRe = regexp.MustCompile(`msg=listening daemon=(\S+) addr=(\S+)`)

// startDaemon starts `decimail serve` on ports the kernel picks and returns
// once its log says all three listeners are bound. Its log goes on to
// stderr.
func startDaemon(t *testing.T, dsn, spool string) *daemon {
	t.Helper()
	d := &daemon{}
	d.cmd = exec.Command(binary(t), "serve", "-imap", "127.0.0.1:0", "-smtp", "127.0.0.1:0", "-submission", "127.0.0.1:0", "-hostname", "mx.test")
	d.cmd.Env = append(os.Environ(), "DECIMAIL_DATABASE_URL="+dsn, "DECIMAIL_SPOOL="+spool)
	d.cmd.Stdout = os.Stderr
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	d.cmd.Stderr = pw
	err = d.cmd.Start()
	pw.Close()
	if err != nil {
		pr.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { d.cmd.Process.Kill(); d.cmd.Wait() })
	// Copy the log to stderr until the process exits (EOF), reporting the
	// listeners on the way.
	listening := make(chan [2]string, 8)
	go func() {
		defer pr.Close()
		defer close(listening)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			fmt.Fprintln(os.Stderr, sc.Text())
			if m := listeningRe.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case listening <- [2]string{m[1], m[2]}:
				default: // nobody is waiting any more
				}
			}
		}
	}()
	addrs := map[string]*string{"imap": &d.imap, "smtp": &d.smtp, "submission": &d.subm}
	timeout := time.After(30 * time.Second)
	for left := len(addrs); left > 0; {
		select {
		case l, ok := <-listening:
			if !ok {
				t.Fatalf("decimail serve exited before listening (log above)")
			}
			if p := addrs[l[0]]; p != nil && *p == "" {
				*p = l[1]
				left--
			}
		case <-timeout:
			t.Fatalf("decimail serve did not log its listeners within 30 s (imap %q, smtp %q, submission %q)", d.imap, d.smtp, d.subm)
		}
	}
	return d
}

func (d *daemon) kill9() {
	d.cmd.Process.Signal(syscall.SIGKILL)
	d.cmd.Wait()
}

func sendMail(addr, subject string) error {
	c, err := smtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	msg := "From: Bob <bob@remote.example>\r\nTo: alice@example.test\r\nSubject: " + subject + "\r\n\r\nhello\r\n"
	return c.SendMail("bob@remote.example", []string{"alice@example.test"}, strings.NewReader(msg))
}

func countMessages(t *testing.T, dsn string) int {
	t.Helper()
	st, err := store.Open(context.Background(), dsn, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var n int
	if err := st.Pool().QueryRow(context.Background(), `SELECT count(*) FROM messages`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// The daemons as a user runs them: SMTP delivery reaches an IDLE client and a
// matching query mailbox; a message acknowledged with 250 survives kill -9 of
// the server and a restart of Postgres; a server killed between DATA and
// 250 leaves no half-stored message.
func TestServeEndToEnd(t *testing.T) {
	ctx := context.Background()
	pgdir := t.TempDir()
	inst, err := pgrun.Start(ctx, pgrun.Options{Dir: pgdir, NoContainers: true, Durable: true})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { inst.Stop() }()
	dsn, spool := inst.DSN, t.TempDir()
	st, err := store.Open(ctx, dsn, store.Options{PasswordCost: bcrypt.MinCost})
	if err != nil {
		t.Fatal(err)
	}
	u, err := st.CreateUser(ctx, "alice", "pw")
	if err == nil {
		err = st.AddAddress(ctx, "alice@example.test", "alice")
	}
	if err == nil {
		_, err = st.DefineMailbox(ctx, u.ID, "Go", "SUBJECT golang")
	}
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, dsn, spool)

	// An IDLE client on INBOX sees the SMTP delivery.
	nc, err := net.Dial("tcp", d.imap)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	br := bufio.NewReader(nc)
	line := func() string {
		nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		l, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("imap read: %v", err)
		}
		return strings.TrimRight(l, "\r\n")
	}
	until := func(prefix string) []string {
		var got []string
		for {
			l := line()
			got = append(got, l)
			if strings.HasPrefix(l, prefix) {
				return got
			}
		}
	}
	line() // greeting
	fmt.Fprintf(nc, "a LOGIN alice pw\r\nb SELECT INBOX\r\nc IDLE\r\n")
	until("+ ")
	if err := sendMail(d.smtp, "e2e golang news"); err != nil {
		t.Fatalf("SMTP: %v", err)
	}
	if l := line(); l != "* 1 EXISTS" {
		t.Fatalf("IDLE got %q, want * 1 EXISTS", l)
	}
	fmt.Fprintf(nc, "DONE\r\nd STATUS Go (MESSAGES)\r\ne UID FETCH 1 (BODY.PEEK[HEADER.FIELDS (Delivered-To)])\r\n")
	got := strings.Join(until("e "), "\n")
	if !strings.Contains(got, `* STATUS "Go" (MESSAGES 1)`) || !strings.Contains(got, "Delivered-To: alice@example.test") {
		t.Fatalf("after delivery:\n%s", got)
	}
	nc.Close()

	// Acknowledged, then kill -9 and a Postgres restart: the message stays.
	if err := sendMail(d.smtp, "acknowledged"); err != nil {
		t.Fatalf("SMTP: %v", err)
	}
	d.kill9()
	inst.Stop()
	if inst, err = pgrun.Start(ctx, pgrun.Options{Dir: pgdir, NoContainers: true, Durable: true}); err != nil {
		t.Fatal(err)
	}
	dsn = inst.DSN
	if n := countMessages(t, dsn); n != 2 {
		t.Fatalf("%d messages after kill -9 and restart, want 2", n)
	}

	// Killed between DATA and 250: delivery is held inside its transaction
	// (a trigger sleeps), the server dies, the client gets no 250 and the
	// store has nothing of the message.
	st, err = store.Open(ctx, dsn, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Pool().Exec(ctx, `CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN PERFORM pg_sleep(2); RETURN NEW; END $$;
		CREATE TRIGGER slow BEFORE INSERT ON messages FOR EACH ROW EXECUTE FUNCTION slow()`); err != nil {
		t.Fatal(err)
	}
	var members int
	if err := st.Pool().QueryRow(ctx, `SELECT count(*) FROM mailbox_messages`).Scan(&members); err != nil {
		t.Fatal(err)
	}
	d = startDaemon(t, dsn, spool)
	res := make(chan error, 1)
	go func() { res <- sendMail(d.smtp, "never acknowledged") }()
	// Wait until the delivery transaction is inside the INSERT (DATA was
	// sent): only pg_stat_activity shows it.
	var orphan int
	testwait.For(t, 10*time.Second, "the delivery to reach the trigger's pg_sleep", func() (bool, string) {
		err := st.Pool().QueryRow(ctx, `SELECT pid FROM pg_stat_activity WHERE wait_event = 'PgSleep'`).Scan(&orphan)
		return err == nil, fmt.Sprint(err)
	})
	d.kill9()
	if err := <-res; err == nil {
		t.Fatal("the client got 250 from a server killed before commit")
	}
	// The orphaned backend finishes its sleep, finds its client gone and
	// rolls back. Its INSERT holds ROW EXCLUSIVE on messages until then, so
	// a SHARE lock is granted once its transaction has ended (committed
	// or not), and the counts are read in the same snapshot.
	var n, after, inboxMembers int
	err = pgx.BeginFunc(ctx, st.Pool(), func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SET LOCAL lock_timeout = '15s'`); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `LOCK TABLE messages IN SHARE MODE`); err != nil {
			return fmt.Errorf("waiting for the orphaned backend %d to end its transaction: %w", orphan, err)
		}
		return tx.QueryRow(ctx, `SELECT (SELECT count(*) FROM messages), (SELECT count(*) FROM mailbox_messages),
			(SELECT count(*) FROM mailbox_messages mm JOIN mailboxes b ON b.id = mm.mailbox_id WHERE b.name = 'INBOX')`).Scan(&n, &after, &inboxMembers)
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Pool().Exec(ctx, `DROP TRIGGER slow ON messages`); err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Fatalf("%d messages after a kill between DATA and 250, want 2", n)
	}
	if after != members {
		t.Fatalf("%d mailbox memberships after a kill between DATA and 250, %d before (a half-stored message)", after, members)
	}
	if inboxMembers != 2 {
		t.Fatalf("INBOX holds %d, want 2 (no half-stored message)", inboxMembers)
	}
}
