package store

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Settings are the keys of the configuration table that Decimail reads: the
// one place they are documented. `decimail config` refuses any other key
// and checks values by Type; README.md "Settings" is rendered from this
// table (SettingsMarkdown; a test keeps the two equal). A package that reads
// a new key adds it here.
//
// The daemons read the table when they start. Keys marked Live are taken
// up by a running server too: the configuration table's trigger
// (schema 0012) notifies ConfigChannel on every change, the process's
// Notifier passes that on (Notifier.SubscribeConfig), and `decimail serve`
// rebuilds what they configure; per-user keys are read at each use.
var Settings = []Setting{
	// IMAP
	{Key: "imapd_disable", Type: TypeList, Live: true, Effect: "capabilities switched off for every session, comma-separated (e.g. `IDLE,CONDSTORE`); their commands answer BAD"},
	{Key: "imapd_disable:<user>", Type: TypeList, Live: true, Effect: "capabilities switched off for one user after login (workarounds for one client); read at each login"},
	{Key: "imapd_allow_plaintext", Type: TypeBool, Default: "false", Live: true, Effect: "LOGIN and AUTHENTICATE PLAIN without TLS from other hosts than loopback (loopback may always)"},
	{Key: "imapd_log_imap", Type: TypeBool, Default: "false", Live: true, Effect: "log the IMAP conversation at debug level (`DECIMAIL_DEBUG=1`), credentials redacted"},
	{Key: "imapd_max_list_pattern", Type: TypeInt, Default: "4096", Live: true, check: nonZero, Effect: "bytes of a LIST/LSUB pattern with its reference, decoded; longer: `NO [LIMIT]`; negative: no limit"},
	{Key: "imapd_sent_dedup_window", Type: TypeDuration, Default: "10m", Live: true, check: nonZero, Effect: "an APPEND to `\\Sent` of a message the submission server filed there less than this long ago is answered with the filed copy (see \"Using it with a mail client\"); negative: off"},
	{Key: ViewExpungeKey + ":<user>", Type: TypeEnum, Default: ViewExpungeTrash, Live: true, Values: []string{ViewExpungeTrash, ViewExpungeDelete},
		Effect: "EXPUNGE in a view: `trash` moves the messages to Trash, `delete` deletes them at once (see Views; also `decimail user set`); read at each EXPUNGE"},
	// Quota (RFC 9208; issue 17)
	{Key: QuotaStorageKey + ":<user>", Type: TypeInt, Live: true, check: nonNegative, Effect: "the user's storage limit in KiB (units of 1024 octets), all mailboxes together, each message counted once; a delivery, APPEND or COPY that would exceed it: `NO [OVERQUOTA]`, SMTP 552 5.2.2; unset: no limit (also `decimail user set`)"},
	{Key: QuotaMessagesKey + ":<user>", Type: TypeInt, Live: true, check: nonNegative, Effect: "the user's limit on the number of messages, as `quota_storage`; unset: no limit"},
	// Store limits (issue 13)
	{Key: "search_max_terms", Type: TypeInt, Default: "1000", check: nonZero, Effect: "keys of a SEARCH program or new view definition, counted after copies are removed (`HEADER X a` 5,000 times is one key); more: `NO [LIMIT]`, definition refused; negative: no limit"},
	{Key: "search_max_value", Type: TypeInt, Default: "1024", check: nonZero, Effect: "bytes of one string of a program (a substring, a HEADER field name, a KEYWORD); longer: `NO [LIMIT]`, definition refused"},
	{Key: "mailbox_max_name", Type: TypeInt, Default: "1000", check: nonZero, Effect: "UTF-8 bytes of a mailbox name on CREATE, RENAME (inferiors included), SUBSCRIBE, `mailbox define`; longer: `NO [LIMIT]`"},
	{Key: "mailbox_max_level", Type: TypeInt, Default: "255", check: nonZero, Effect: "bytes of one hierarchy level (between `/`), a directory name in a Maildir; longer: `NO [LIMIT]`"},
	// Failed logins (issue 14)
	{Key: "auth_addr_free", Type: TypeInt, Default: "10", Effect: "failed logins (SMTP and IMAP, all connections and processes) from one address (IPv6: /64) before it is blocked"},
	{Key: "auth_delay_base", Type: TypeDuration, Default: "1s", Effect: "first block of an address, and first wait of an account; each further failure doubles it"},
	{Key: "auth_addr_max_block", Type: TypeDuration, Default: "15m", Effect: "longest block of an address (attempts are refused unchecked meanwhile)"},
	{Key: "auth_user_free", Type: TypeInt, Default: "20", Effect: "failed logins to one account from anywhere before its attempts are slowed"},
	{Key: "auth_user_max_wait", Type: TypeDuration, Default: "8s", Effect: "longest wait before an account's password is checked (it slows, never locks out)"},
	{Key: "auth_window", Type: TypeDuration, Default: "1h", Effect: "a key with no attempt for this long starts again from zero"},
	// SMTP server
	{Key: "smtpd_hostname", Type: TypeString, Default: "`-hostname`", Effect: "name in the SMTP greeting and Received: lines"},
	{Key: "smtpd_max_message_bytes", Type: TypeInt, Default: "52428800", Effect: "largest message accepted (SIZE); larger: 552"},
	{Key: "smtpd_max_recipients", Type: TypeInt, Default: "100", Effect: "RCPT TO per message; more: 452"},
	{Key: "smtpd_max_line_length", Type: TypeInt, Default: "2000", Effect: "longest command or text line"},
	{Key: "smtpd_read_timeout", Type: TypeDuration, Default: "5m", Effect: "wait for a command (RFC 5321 §4.5.3.2)"},
	{Key: "smtpd_write_timeout", Type: TypeDuration, Default: "5m", Effect: "wait for a reply to be written"},
	{Key: "smtpd_data_timeout", Type: TypeDuration, Default: "10m", Effect: "total time for a message's DATA/BDAT transfer (plus 1 s per `smtpd_data_min_rate` bytes); then 421 and disconnect"},
	{Key: "smtpd_data_min_rate", Type: TypeInt, Default: "32768", Effect: "bytes per second that earn a large message one more second"},
	{Key: "smtpd_max_header_bytes", Type: TypeInt, Default: "1048576", Effect: "largest header section of a message; larger: 552"},
	{Key: "smtpd_max_conns_per_ip", Type: TypeInt, Default: "20", Effect: "simultaneous SMTP connections from one address; more: 421"},
	{Key: "smtpd_max_auth_failures", Type: TypeInt, Default: "3", Effect: "failed AUTH per SMTP connection; then 421 and disconnect"},
	{Key: "smtpd_log_conversation", Type: TypeBool, Default: "false", Effect: "log every SMTP line at info level (AUTH and message data redacted)"},
	{Key: "smtpd_allow_insecure_auth", Type: TypeBool, Default: "false", Effect: "AUTH without TLS from any client"},
	{Key: "smtpd_trusted_nets", Type: TypeList, Default: "`127.0.0.0/8,::1/128`", check: prefixes, Effect: "networks that may relay without AUTH and AUTH without TLS (`none`: no network)"},
	// Outbound relay
	{Key: "smtp_relay_host", Type: TypeString, check: hostPort, Effect: "smart host (`host:port`) all outbound mail goes to; empty: direct delivery to the recipients' mail exchangers (`smtp_relay_direct`), or, with that off, queued mail bounces at once"},
	{Key: "smtp_relay_direct", Type: TypeBool, Default: "true", Effect: "without a smart host, deliver to each recipient domain's MX hosts (port `smtp_relay_direct_port`, STARTTLS when offered, unverified); false: bounce such mail"},
	{Key: "smtp_relay_direct_port", Type: TypeInt, Default: "25", check: nonZero, Effect: "the port of direct delivery (another only for tests)"},
	{Key: "smtp_relay_user", Type: TypeString, Effect: "user name for AUTH PLAIN at the smart host (none: no AUTH)"},
	{Key: "smtp_relay_password", Type: TypeString, Secret: true, Effect: "password for the smart host (`config list` does not show it)"},
	{Key: "smtp_relay_hostname", Type: TypeString, Default: "`-hostname`", Effect: "our EHLO name at the smart host"},
	{Key: "smtp_relay_give_up", Type: TypeDuration, Default: "120h", Effect: "a message the smart host keeps refusing temporarily is bounced after this long"},
	{Key: "smtp_relay_retry_base", Type: TypeDuration, Default: "1m", Effect: "first retry delay; doubles per attempt"},
	{Key: "smtp_relay_retry_max", Type: TypeDuration, Default: "4h", Effect: "longest retry delay"},
	{Key: "smtp_relay_poll", Type: TypeDuration, Default: "30s", Effect: "how often the queue is read besides notifications"},
	{Key: "smtp_relay_workers", Type: TypeInt, Default: "2", Effect: "concurrent sends per process"},
	{Key: "smtp_relay_lease", Type: TypeDuration, Default: "30m", Effect: "how long a relay worker holds a queued message; a dead worker's message is retried after it, a live worker's session is cut at half of it"},
	// Delete daemon
	{Key: "delete_retention", Type: TypeDuration, Default: "720h", Effect: "how long the spool file of a deleted message is kept (`0s`: removed at once)"},
	{Key: "delete_sweep", Type: TypeDuration, Default: "1m", Effect: "how often the delete daemon looks besides notifications"},
	{Key: "expunge_horizon", Type: TypeDuration, Default: "2160h", Effect: "how long the delete daemon keeps the tombstone of a message removed from a mailbox (expunged, moved, or out of a view), from which QRESYNC tells a returning client what vanished, and the log of flag changes; a client last synchronised before that is told every UID it names that is gone (README \"Mod-sequences\"); negative: kept for ever"},
	// Written by the server itself
	{Key: objectIDKey, Type: TypeString, Internal: true, Secret: true, Effect: "key of the OBJECTID hash (RFC 8474), made on first use; changing it changes every EMAILID"},
	{Key: "modseq_epoch", Type: TypeString, Internal: true, Effect: "the Postgres start time the modseq sequence was last moved on for (see Durability)"},
}

// SettingType is how a setting's value is read.
type SettingType string

const (
	TypeBool     SettingType = "bool"     // true or false (also 1, 0, t, f, …; stored as true/false)
	TypeInt      SettingType = "int"      // a decimal integer
	TypeDuration SettingType = "duration" // a Go duration: 90s, 10m, 1h30m
	TypeList     SettingType = "list"     // comma-separated words
	TypeString   SettingType = "string"
	TypeEnum     SettingType = "enum" // one of Values
)

// Setting is one key of the configuration table.
type Setting struct {
	// Key is the key; one ending in ":<user>" is per user (the key is
	// e.g. view_expunge:alice, for an existing user).
	Key     string
	Type    SettingType
	Values  []string // TypeEnum
	Default string   // what applies without a row, as README shows it
	Effect  string
	// Live: a running server takes a change up without restart (new
	// connections, or each use for per-user keys); else at the next start.
	Live bool
	// Secret values are not shown by `config list`.
	Secret bool
	// Internal keys are written by the server; `config set` refuses them.
	Internal bool
	check    func(string) error // beyond the type
}

// PerUser reports whether the key is a pattern key:<user>.
func (s Setting) PerUser() bool { return strings.HasSuffix(s.Key, ":<user>") }

// ConfigChannel is the notification channel of configuration changes
// (payload: the key), sent by the configuration table's trigger.
const ConfigChannel = "decimail_config"

// LookupSetting finds the setting of a key; user is the user name of a
// per-user key ("" otherwise). An unknown key is ErrInvalid.
func LookupSetting(key string) (set Setting, user string, err error) {
	for _, s := range Settings {
		if s.Key == key {
			return s, "", nil
		}
		if base, ok := strings.CutSuffix(s.Key, "<user>"); ok && strings.HasPrefix(key, base) && len(key) > len(base) {
			return s, key[len(base):], nil
		}
	}
	return Setting{}, "", fmt.Errorf("%w: unknown setting %q (`decimail config list -all` shows the known ones)", ErrInvalid, key)
}

// Check validates a value of the setting and returns it as it is stored
// (booleans as true/false, surrounding spaces removed).
func (s Setting) Check(value string) (string, error) {
	v := strings.TrimSpace(value)
	bad := func(want string, err error) (string, error) {
		msg := fmt.Sprintf("%s = %q: want %s", s.Key, value, want)
		if err != nil {
			msg += fmt.Sprintf(" (%v)", err)
		}
		return "", fmt.Errorf("%w: %s", ErrInvalid, msg)
	}
	switch s.Type {
	case TypeBool:
		b, err := strconv.ParseBool(v)
		if err != nil {
			return bad("true or false", nil)
		}
		v = strconv.FormatBool(b)
	case TypeInt:
		if _, err := strconv.Atoi(v); err != nil {
			return bad("an integer", nil)
		}
	case TypeDuration:
		if _, err := time.ParseDuration(v); err != nil {
			return bad("a duration such as 90s, 10m or 2h", nil)
		}
	case TypeEnum:
		ok := false
		for _, x := range s.Values {
			ok = ok || x == v
		}
		if !ok {
			return bad(strings.Join(s.Values, " or "), nil)
		}
	case TypeList:
		var items []string
		for _, f := range strings.Split(v, ",") {
			if f = strings.TrimSpace(f); f != "" {
				if strings.ContainsFunc(f, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
					return bad("comma-separated words", nil)
				}
				items = append(items, f)
			}
		}
		v = strings.Join(items, ",")
	}
	if s.check != nil {
		if err := s.check(v); err != nil {
			return bad(err.Error(), nil)
		}
	}
	return v, nil
}

func nonZero(v string) error {
	if n, err := strconv.Atoi(v); err == nil && n == 0 {
		return errors.New("not zero (negative: no limit)")
	}
	if d, err := time.ParseDuration(v); err == nil && d == 0 {
		return errors.New("not zero (negative: off)")
	}
	return nil
}

func nonNegative(v string) error {
	if n, err := strconv.Atoi(v); err == nil && n < 0 {
		return errors.New("not negative (unset the key for no limit)")
	}
	return nil
}

func prefixes(v string) error {
	for _, f := range strings.Split(v, ",") {
		if f == "" || f == "none" {
			continue
		}
		if _, err := netip.ParsePrefix(f); err != nil {
			return errors.New("network prefixes such as 10.0.0.0/8, comma-separated, or none")
		}
	}
	return nil
}

func hostPort(v string) error {
	if v == "" {
		return nil
	}
	if _, p, err := net.SplitHostPort(v); err != nil || p == "" {
		return errors.New("host:port")
	}
	return nil
}

// SetSetting checks key and value against Settings and stores the value
// (as Setting.Check returns it, which it returns too). A per-user key needs
// an existing user; internal keys are refused.
func (s *Store) SetSetting(ctx context.Context, key, value string) (string, error) {
	set, user, err := LookupSetting(key)
	if err != nil {
		return "", err
	}
	if set.Internal {
		return "", fmt.Errorf("%w: %s is written by the server itself", ErrInvalid, key)
	}
	if v, err := set.Check(value); err != nil {
		return "", err
	} else {
		value = v
	}
	if user != "" {
		if _, err := s.UserByName(ctx, user); err != nil {
			return "", fmt.Errorf("%s: user %q: %w", key, user, err)
		}
	}
	return value, wrap("set "+key, s.SetConfig(ctx, key, value))
}

// UnsetSetting removes a key's row, so its default applies again. Keys
// not in Settings may be removed too (left over from older versions);
// removing a row that is not there is ErrNotFound.
func (s *Store) UnsetSetting(ctx context.Context, key string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM configuration WHERE key = $1`, key)
	if err != nil {
		return wrap("unset "+key, err)
	}
	if tag.RowsAffected() == 0 {
		if _, _, err := LookupSetting(key); err != nil {
			return err
		}
		return fmt.Errorf("%w: %s is not set (its default applies)", ErrNotFound, key)
	}
	return nil
}

// ConfigRow is a row of the configuration table.
type ConfigRow struct{ Key, Value string }

// ConfigRows returns the configuration table, by key.
func (s *Store) ConfigRows(ctx context.Context) ([]ConfigRow, error) {
	rows, err := s.pool.Query(ctx, `SELECT key, value FROM configuration ORDER BY key`)
	if err != nil {
		return nil, wrap("configuration", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[ConfigRow])
	return out, wrap("configuration", err)
}

// SettingsMarkdown renders Settings as the table in README.md "Settings".
func SettingsMarkdown() string {
	var b strings.Builder
	b.WriteString("| setting | type | default | live | effect |\n| --- | --- | --- | --- | --- |\n")
	for _, s := range Settings {
		typ := string(s.Type)
		if s.Type == TypeEnum {
			typ = strings.Join(s.Values, " \\| ")
		}
		if s.Internal {
			typ = "internal"
		}
		def := s.Default
		if def == "" {
			def = "—"
		} else if !strings.HasPrefix(def, "`") {
			def = "`" + def + "`"
		}
		live := "restart"
		if s.Live {
			live = "live"
		} else if s.Internal {
			live = "—"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s |\n", s.Key, typ, def, live, s.Effect)
	}
	return b.String()
}
