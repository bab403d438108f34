package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"decimail/server/store"
)

// The outbound queue commands (issue 18): what the relay has not sent yet,
// and why. A queued message has no spool file (its data is a column of
// outbound_queue), so drop deletes the row; the sender's Sent copy stays.

func init() {
	register(&command{name: "queue list", help: "list the outbound queue: id, age, attempts, next attempt, sender, recipients, last error",
		run: withStore(func(ctx context.Context, s *store.Store, args []string) error {
			if err := needArgs(args, 0, "no arguments"); err != nil {
				return err
			}
			es, err := s.QueueList(ctx)
			if err != nil {
				return err
			}
			writeQueueList(os.Stdout, es, time.Now())
			return nil
		})})
	register(&command{name: "queue show", args: "ID", help: "show a queued message: its envelope, attempts, last error and header",
		run: withStore(func(ctx context.Context, s *store.Store, args []string) error {
			id, err := queueID(args)
			if err != nil {
				return err
			}
			e, data, err := s.QueueMessage(ctx, id)
			if err != nil {
				return queueErr(id, err)
			}
			writeQueueEntry(os.Stdout, e, data, time.Now())
			return nil
		})})
	var force bool
	forceFlag := func(what string) func(fs *flag.FlagSet) {
		return func(fs *flag.FlagSet) {
			fs.BoolVar(&force, "force", false, what+" even a message a relay worker holds now (it may then be sent twice, or still be sent)")
		}
	}
	register(&command{name: "queue retry", args: "ID", help: "make a queued message due now (the relay tries it at once)",
		flags: forceFlag("retry"),
		run: withStore(func(ctx context.Context, s *store.Store, args []string) error {
			id, err := queueID(args)
			if err != nil {
				return err
			}
			if err := s.RetryQueued(ctx, id, time.Now(), force); err != nil {
				return queueErr(id, err)
			}
			fmt.Printf("message %d is due now\n", id)
			return nil
		})})
	register(&command{name: "queue drop", args: "ID", help: "remove a queued message: not sent, no bounce (the sender's Sent copy stays)",
		flags: forceFlag("drop"),
		run: withStore(func(ctx context.Context, s *store.Store, args []string) error {
			id, err := queueID(args)
			if err != nil {
				return err
			}
			if err := s.DropQueued(ctx, id, time.Now(), force); err != nil {
				return queueErr(id, err)
			}
			fmt.Printf("message %d dropped\n", id)
			return nil
		})})
}

func queueID(args []string) (int64, error) {
	if err := needArgs(args, 1, "ID (see decimail queue list)"); err != nil {
		return 0, err
	}
	id, err := strconv.ParseInt(args[0], 10, 64)
	if err != nil || id <= 0 {
		return 0, fmt.Errorf("%q is not a queue id (see decimail queue list)", args[0])
	}
	return id, nil
}

func queueErr(id int64, err error) error {
	switch {
	case errors.Is(err, store.ErrNotQueued):
		return fmt.Errorf("no message %d in the queue (sent, bounced or dropped)", id)
	case errors.Is(err, store.ErrQueueBusy):
		return fmt.Errorf("message %d is being sent by a relay worker now; try again, or use -force", id)
	}
	return err
}

func writeQueueList(w io.Writer, es []store.QueueEntry, now time.Time) {
	if len(es) == 0 {
		fmt.Fprintln(w, "the queue is empty")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tAGE\tATTEMPTS\tNEXT\tSENDER\tRECIPIENTS\tLAST ERROR")
	for _, e := range es {
		lastErr := e.LastError
		if len(lastErr) > 60 {
			lastErr = lastErr[:57] + "..."
		}
		fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t%s\t%s\t%s\n", e.ID, ago(now.Sub(e.CreatedAt)), e.Attempts, next(e, now),
			printable(sender(e.MailFrom)), printable(strings.Join(e.RcptTo, ", ")), printable(lastErr))
	}
	tw.Flush()
	fmt.Fprintf(w, "%d message(s) queued\n", len(es))
}

func writeQueueEntry(w io.Writer, e store.QueueEntry, data []byte, now time.Time) {
	user := e.User
	if user == "" {
		user = "(none: relayed for a trusted client, or the user was deleted)"
	}
	lastErr := e.LastError
	if lastErr == "" {
		lastErr = "(none)"
	}
	nextAt := e.NextAttempt.Format(time.RFC1123Z) + " (" + next(e, now) + ")"
	if e.Leased(now) {
		nextAt = "being sent now (relay worker lease until " + e.LockedUntil.Format(time.RFC1123Z) + ")"
	}
	fmt.Fprintf(w, "id:           %d\n", e.ID)
	fmt.Fprintf(w, "user:         %s\n", printable(user))
	fmt.Fprintf(w, "sender:       %s\n", printable(sender(e.MailFrom)))
	fmt.Fprintf(w, "recipients:   %s\n", printable(strings.Join(e.RcptTo, ", ")))
	fmt.Fprintf(w, "size:         %d bytes\n", e.Size)
	fmt.Fprintf(w, "queued:       %s (%s ago)\n", e.CreatedAt.Format(time.RFC1123Z), ago(now.Sub(e.CreatedAt)))
	fmt.Fprintf(w, "attempts:     %d\n", e.Attempts)
	fmt.Fprintf(w, "next attempt: %s\n", nextAt)
	fmt.Fprintf(w, "last error:   %s\n\n", printable(lastErr))
	// The header section, line by line, escaped (folding kept).
	hdr := data
	if i := bytes.Index(data, []byte("\r\n\r\n")); i >= 0 {
		hdr = data[:i]
	} else if i := bytes.Index(data, []byte("\n\n")); i >= 0 {
		hdr = data[:i]
	}
	for _, l := range strings.Split(string(hdr), "\n") {
		l = strings.TrimSuffix(l, "\r")
		if strings.HasPrefix(l, "\t") {
			l = "        " + l[1:]
		}
		fmt.Fprintln(w, printable(l))
	}
}

func sender(from string) string {
	if from == "" {
		return "<>"
	}
	return from
}

// next says when the relay tries e next.
func next(e store.QueueEntry, now time.Time) string {
	switch {
	case e.Leased(now):
		return "sending"
	case !e.NextAttempt.After(now):
		return "now"
	}
	return "in " + ago(e.NextAttempt.Sub(now))
}

// ago formats a duration for a person: 45s, 12m, 3h5m, 2d4h.
func ago(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh%dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%dh", int(d.Hours())/24, int(d.Hours())%24)
}
