package main

import (
	"context"
	"flag"
	"fmt"
	"strings"

	"decimail/server/store"
)

// The config commands read and write the configuration table through
// store.Settings, the one list of known keys: unknown keys and values of
// the wrong type are refused before anything is stored.
func init() {
	var all bool
	register(&command{name: "config list", help: "list the settings in the configuration table (-all: every known setting, with defaults)",
		flags: func(fs *flag.FlagSet) {
			fs.BoolVar(&all, "all", false, "also the settings not set, with their defaults, type and whether they reload live")
		},
		run: withStore(func(ctx context.Context, s *store.Store, args []string) error {
			if err := needArgs(args, 0, "no arguments"); err != nil {
				return err
			}
			rows, err := s.ConfigRows(ctx)
			if err != nil {
				return err
			}
			if all {
				listAllSettings(rows)
				return nil
			}
			for _, r := range rows {
				note := ""
				set, _, err := store.LookupSetting(r.Key)
				switch {
				case err != nil:
					note = "  (unknown key: not read by this version)"
				case set.Internal:
					note = "  (written by the server)"
				}
				fmt.Printf("%-32s %s%s\n", printable(r.Key), printable(shown(set, r.Value)), note)
			}
			return nil
		})})
	register(&command{name: "config get", args: "KEY", help: "print a setting's value (its default when not set)",
		run: withStore(func(ctx context.Context, s *store.Store, args []string) error {
			if err := needArgs(args, 1, "KEY"); err != nil {
				return err
			}
			set, _, err := store.LookupSetting(args[0])
			if err != nil {
				return err
			}
			v, err := s.Config(ctx, args[0], "\x00")
			if err != nil {
				return err
			}
			if v == "\x00" {
				fmt.Printf("%s is not set; default: %s\n", printable(args[0]), orNone(strings.Trim(set.Default, "`")))
				return nil
			}
			fmt.Println(printable(v))
			return nil
		})})
	register(&command{name: "config set", args: "KEY VALUE", help: "set a known setting (checked by type; `config list -all` lists them)",
		run: withStore(func(ctx context.Context, s *store.Store, args []string) error {
			if err := needArgs(args, 2, "KEY VALUE"); err != nil {
				return err
			}
			v, err := s.SetSetting(ctx, args[0], args[1])
			if err != nil {
				return err
			}
			set, _, _ := store.LookupSetting(args[0])
			fmt.Printf("%s = %s (%s)\n", printable(args[0]), printable(shown(set, v)), when(set))
			return nil
		})})
	register(&command{name: "config unset", args: "KEY", help: "remove a setting: its default applies again",
		run: withStore(func(ctx context.Context, s *store.Store, args []string) error {
			if err := needArgs(args, 1, "KEY"); err != nil {
				return err
			}
			if err := s.UnsetSetting(ctx, args[0]); err != nil {
				return err
			}
			set, _, err := store.LookupSetting(args[0])
			if err == nil {
				fmt.Printf("%s unset: default %s (%s)\n", printable(args[0]), orNone(strings.Trim(set.Default, "`")), when(set))
			}
			return nil
		})})
}

func listAllSettings(rows []store.ConfigRow) {
	values := map[string]string{}
	for _, r := range rows {
		values[r.Key] = r.Value
	}
	for _, set := range store.Settings {
		live := "restart"
		if set.Live {
			live = "live"
		}
		keys := []string{set.Key}
		if set.PerUser() {
			prefix := strings.TrimSuffix(set.Key, "<user>")
			for _, r := range rows {
				if strings.HasPrefix(r.Key, prefix) {
					keys = append(keys, r.Key)
				}
			}
		}
		for _, k := range keys {
			v, ok := values[k]
			if !ok {
				v = "(default " + orNone(strings.Trim(set.Default, "`")) + ")"
			} else {
				v = shown(set, v)
			}
			fmt.Printf("%-32s %-30s %-8s %s\n", printable(k), printable(v), string(set.Type), live)
		}
	}
	for _, r := range rows {
		if _, _, err := store.LookupSetting(r.Key); err != nil {
			fmt.Printf("%-32s %-30s (unknown key: not read by this version)\n", printable(r.Key), printable(r.Value))
		}
	}
}

// shown hides secret values.
func shown(set store.Setting, v string) string {
	if set.Secret && v != "" {
		return "(secret, set)"
	}
	return v
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func when(set store.Setting) string {
	if set.Live {
		return "running servers take it up now"
	}
	return "takes effect when the daemons restart"
}
