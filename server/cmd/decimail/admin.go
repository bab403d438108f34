package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"decimail/server/store"
)

func init() {
	var password string
	pwFlag := func(fs *flag.FlagSet) {
		fs.StringVar(&password, "password", "", "the password (default: read a line from stdin)")
	}
	readPassword := func() (string, error) {
		if password != "" {
			return password, nil
		}
		fmt.Fprint(os.Stderr, "password: ")
		line, err := bufio.NewReader(os.Stdin).ReadString('\n')
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			return "", fmt.Errorf("empty password (%v)", err)
		}
		return line, nil
	}
	register(&command{name: "user add", args: "NAME", help: "create a user with the default folders and views", flags: pwFlag,
		run: withStore(func(ctx context.Context, s *store.Store, args []string) error {
			if err := needArgs(args, 1, "NAME"); err != nil {
				return err
			}
			pw, err := readPassword()
			if err != nil {
				return err
			}
			u, err := s.CreateUser(ctx, args[0], pw)
			if err == nil {
				fmt.Printf("created user %s (id %d)\n", printable(u.Name), u.ID)
			}
			return err
		})})
	register(&command{name: "user passwd", args: "NAME", help: "change a user's password", flags: pwFlag,
		run: withStore(func(ctx context.Context, s *store.Store, args []string) error {
			if err := needArgs(args, 1, "NAME"); err != nil {
				return err
			}
			pw, err := readPassword()
			if err != nil {
				return err
			}
			return s.SetPassword(ctx, args[0], pw)
		})})
	register(&command{name: "user list", help: "list users", run: withStore(func(ctx context.Context, s *store.Store, _ []string) error {
		us, err := s.Users(ctx)
		for _, u := range us {
			fmt.Println(printable(u.Name))
		}
		return err
	})})
	register(&command{name: "user del", args: "NAME", help: "delete a user and all their mail", run: withStore(func(ctx context.Context, s *store.Store, args []string) error {
		if err := needArgs(args, 1, "NAME"); err != nil {
			return err
		}
		return s.DeleteUser(ctx, args[0])
	})})

	register(&command{name: "user set", args: "NAME KEY [VALUE]",
		help: "set a per-user setting (view_expunge trash|delete, imapd_disable CAPABILITIES, quota_storage KIB, quota_messages N); no VALUE: back to the default",
		run: withStore(func(ctx context.Context, s *store.Store, args []string) error {
			if len(args) < 2 || len(args) > 3 {
				return fmt.Errorf("want NAME KEY [VALUE]")
			}
			value := ""
			if len(args) == 3 {
				value = args[2]
			}
			return s.SetUserSetting(ctx, args[0], args[1], value)
		})})

	register(&command{name: "address add", args: "ADDRESS USER", help: "deliver ADDRESS (or a catch-all @domain) to USER",
		run: withStore(func(ctx context.Context, s *store.Store, args []string) error {
			if err := needArgs(args, 2, "ADDRESS USER"); err != nil {
				return err
			}
			return s.AddAddress(ctx, args[0], args[1])
		})})
	register(&command{name: "address list", help: "list addresses", run: withStore(func(ctx context.Context, s *store.Store, _ []string) error {
		as, err := s.Addresses(ctx)
		for _, a := range as {
			fmt.Printf("%-40s %s\n", printable(a.Address), printable(a.User))
		}
		return err
	})})
	register(&command{name: "address del", args: "ADDRESS", help: "remove an address", run: withStore(func(ctx context.Context, s *store.Store, args []string) error {
		if err := needArgs(args, 1, "ADDRESS"); err != nil {
			return err
		}
		return s.DeleteAddress(ctx, args[0])
	})})

	register(&command{name: "mailbox define", args: "USER NAME DEFINITION",
		help: "create or redefine a query mailbox (DEFINITION: an IMAP SEARCH program, plus FOLDER/ONLYFOLDER; redefining changes UIDVALIDITY)",
		run: withUser(func(ctx context.Context, s *store.Store, u store.User, args []string) error {
			if err := needArgs(args, 2, "USER NAME DEFINITION"); err != nil {
				return err
			}
			m, err := s.DefineMailbox(ctx, u.ID, args[0], args[1])
			if err == nil {
				fmt.Printf("%s: %q (UIDVALIDITY %d)\n", printable(m.Name), m.Definition, m.UIDValidity)
			}
			return err
		})})
	register(&command{name: "mailbox list", args: "USER", help: "list a user's mailboxes with counts",
		run: withUser(func(ctx context.Context, s *store.Store, u store.User, _ []string) error {
			ms, err := s.Mailboxes(ctx, u.ID)
			for _, m := range ms {
				kind := "folder"
				if m.IsQuery() {
					kind = "query: " + m.Definition
				}
				fmt.Printf("%-24s %6d msgs %6d unseen  %-10s %s\n", printable(m.Name), m.Messages, m.Unseen, printable(m.SpecialUse), printable(kind))
			}
			return err
		})})
	register(&command{name: "mailbox drop", args: "USER NAME", help: "delete a query mailbox (its messages stay in their folders)",
		run: withUser(func(ctx context.Context, s *store.Store, u store.User, args []string) error {
			if err := needArgs(args, 1, "USER NAME"); err != nil {
				return err
			}
			m, err := s.Mailbox(ctx, u.ID, args[0])
			if err != nil {
				return err
			}
			if !m.IsQuery() {
				return fmt.Errorf("%s is a folder, not a query mailbox (delete folders over IMAP)", printable(m.Name))
			}
			return s.DeleteMailbox(ctx, u.ID, m.Name)
		})})

	var mbox string
	register(&command{name: "deliver", args: "USER", help: "MDA: store the message on stdin for USER",
		flags: func(fs *flag.FlagSet) { fs.StringVar(&mbox, "mailbox", "INBOX", "folder to deliver to") },
		run: withUser(func(ctx context.Context, s *store.Store, u store.User, _ []string) error {
			raw, err := io.ReadAll(os.Stdin)
			if err != nil {
				return err
			}
			d, err := s.Deliver(ctx, u.ID, raw, store.DeliverOptions{Mailbox: mbox, InternalDate: time.Now()})
			if err == nil {
				fmt.Printf("delivered to %s as UID %d\n", printable(mbox), d.UID)
			}
			return err
		})})
}

func withStore(f func(ctx context.Context, s *store.Store, args []string) error) func(context.Context, *flag.FlagSet, []string) error {
	return func(ctx context.Context, _ *flag.FlagSet, args []string) error {
		s, err := openStore(ctx)
		if err != nil {
			return err
		}
		defer s.Close()
		return f(ctx, s, args)
	}
}

func withUser(f func(ctx context.Context, s *store.Store, u store.User, args []string) error) func(context.Context, *flag.FlagSet, []string) error {
	return withStore(func(ctx context.Context, s *store.Store, args []string) error {
		if len(args) < 1 {
			return fmt.Errorf("want USER first (see -h)")
		}
		u, err := s.UserByName(ctx, args[0])
		if err != nil {
			return fmt.Errorf("%s: %w", args[0], err)
		}
		return f(ctx, s, u, args[1:])
	})
}
