// Command decimail is Decimail's one binary: the daemons (serve, dev) and the
// administration commands. Run `decimail -h` or `decimail <command> -h`.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"decimail/server/store"
)

type command struct {
	name, args, help string
	run              func(ctx context.Context, fs *flag.FlagSet, args []string) error
	flags            func(fs *flag.FlagSet)
}

var commands []*command

func register(c *command) { commands = append(commands, c) }

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: decimail <command> [flags] [args]\n\ncommands:")
	sort.Slice(commands, func(i, j int) bool { return commands[i].name < commands[j].name })
	for _, c := range commands {
		fmt.Fprintf(w, "  %-18s %s\n", c.name, c.help)
	}
	fmt.Fprintln(w, "\nglobal flags (before or after the command):\n  -var DIR           the dev directory (default ./var): `dev` keeps its cluster there,\n                     the other commands read DIR/dsn")
	fmt.Fprintln(w, "\nThe database is $DECIMAIL_DATABASE_URL, else the running dev cluster of -var DIR (see `decimail dev`).")
	fmt.Fprintln(w, "Run `decimail <command> -h` for a command's flags.")
}

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: logLevel()}))
	slog.SetDefault(log)
	global, err := parseGlobal(os.Args[1:])
	if err != nil {
		fmt.Fprintf(os.Stderr, "decimail: %v\n\n", err)
		usage(os.Stderr)
		os.Exit(2)
	}
	if len(global) == 0 || global[0] == "-h" || global[0] == "--help" || global[0] == "help" {
		usage(os.Stdout)
		return
	}
	name := global[0]
	args := global[1:]
	// Two-word commands: "user add", "mailbox define", ...
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		if c := find(name + " " + args[0]); c != nil {
			name, args = c.name, args[1:]
		}
	}
	c := find(name)
	if c == nil {
		fmt.Fprintf(os.Stderr, "decimail: unknown command %q\n\n", name)
		usage(os.Stderr)
		os.Exit(2)
	}
	fs := flag.NewFlagSet("decimail "+c.name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: decimail %s [flags] %s\n\n%s\n", c.name, c.args, c.help)
		fs.PrintDefaults()
	}
	fs.StringVar(&varDir, "var", varDir, "the dev directory: its dsn file names the database when $DECIMAIL_DATABASE_URL is not set")
	if c.flags != nil {
		c.flags(fs)
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := c.run(ctx, fs, pos); err != nil {
		// Errors may quote user input: escaped, line by line.
		lines := strings.Split(err.Error(), "\n")
		for i, l := range lines {
			lines[i] = printable(l)
		}
		fmt.Fprintf(os.Stderr, "decimail %s: %s\n", c.name, strings.Join(lines, "\n"))
		os.Exit(1)
	}
}

// parseGlobal takes the global flags (-var DIR) off the front of args.
func parseGlobal(args []string) ([]string, error) {
	for len(args) > 0 {
		a := strings.TrimPrefix(args[0], "-")
		if a == args[0] || a == "h" || a == "-help" {
			return args, nil
		}
		a = strings.TrimPrefix(a, "-")
		switch {
		case a == "var":
			if len(args) < 2 {
				return nil, errors.New("-var needs a directory")
			}
			varDir, args = args[1], args[2:]
		case strings.HasPrefix(a, "var="):
			varDir, args = strings.TrimPrefix(a, "var="), args[1:]
		default:
			return nil, fmt.Errorf("unknown global flag %s", args[0])
		}
	}
	return args, nil
}

// parseInterspersed allows flags after positional arguments
// ("user add alice -password x"); "--" ends flag parsing.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos, args = append(pos, args[0]), args[1:]
	}
}

func find(name string) *command {
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	return nil
}

func logLevel() slog.Level {
	if os.Getenv("DECIMAIL_DEBUG") != "" {
		return slog.LevelDebug
	}
	return slog.LevelInfo
}

// varDir is the dev directory (global flag -var): `decimail dev` keeps its
// cluster, spool and certificate there and leaves the DSN of its cluster in
// varDir/dsn while it runs, so that every other command given the same
// -var reaches it.
var varDir = "var"

// databaseURL is $DECIMAIL_DATABASE_URL, else the DSN the running dev
// cluster of varDir left (the order `dev` itself follows).
func databaseURL() (string, error) {
	if dsn := os.Getenv("DECIMAIL_DATABASE_URL"); dsn != "" {
		return dsn, nil
	}
	f := filepath.Join(varDir, "dsn")
	if b, err := os.ReadFile(f); err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	return "", fmt.Errorf("no database: set DECIMAIL_DATABASE_URL, or start `decimail dev -var %s` (make run: ./var); %s does not exist", varDir, f)
}

func openStore(ctx context.Context) (*store.Store, error) {
	dsn, err := databaseURL()
	if err != nil {
		return nil, err
	}
	return store.Open(ctx, dsn, store.Options{SpoolDir: spoolDir(), Log: slog.Default()})
}

func spoolDir() string {
	if d := os.Getenv("DECIMAIL_SPOOL"); d != "" {
		return d
	}
	d, _ := filepath.Abs(filepath.Join(varDir, "spool"))
	return d
}

func needArgs(args []string, n int, what string) error {
	if len(args) != n {
		return fmt.Errorf("want %s (see -h)", what)
	}
	return nil
}
