package imapd

import (
	"crypto/tls"
	"time"
)

// Config is one server instance's configuration; there is no package-level
// mutable state (STYLE.md rule 8). Zero values get the defaults below.
type Config struct {
	// Hostname appears in the greeting and in logs.
	Hostname string
	// Version is reported by ID (rfc2971).
	Version string
	// TLS enables STARTTLS (Serve) and is required by ServeTLS.
	TLS *tls.Config
	// AllowPlaintext permits LOGIN / AUTHENTICATE PLAIN without TLS from
	// non-loopback peers. Loopback peers may always log in in plaintext.
	AllowPlaintext bool
	// LogIMAP logs the conversation at debug level (configuration key
	// imapd_log_imap); LOGIN/AUTHENTICATE credentials are redacted.
	LogIMAP bool

	MaxLine          int   // command text outside literals, default 64 KiB
	MaxLiteral       int64 // literal of a non-APPEND command, default 1 MiB; also all of its literals together
	MaxAppendLiteral int64 // APPEND message, default 64 MiB
	// MaxPreAuthLiterals caps the literals of a command before login,
	// default 8 KiB (a LOGIN's name and password).
	MaxPreAuthLiterals int64
	// MaxMemoryPerIP caps the literal bytes held in memory at once by all
	// connections from one remote address, default 128 MiB; over it a
	// literal is refused (NO [LIMIT]) until some are released. Loopback
	// peers are exempt unless LimitLoopback is set; negative: no limit.
	MaxMemoryPerIP int64
	// MaxListPattern bounds a LIST/LSUB pattern (reference and pattern
	// joined, decoded), default 4 KiB (configuration key
	// imapd_max_list_pattern); longer ones get NO [LIMIT]. Matching is
	// linear (query.ListPattern); no name is longer than
	// store.Limits.MailboxName (1,000 bytes by default), so a longer
	// pattern has nothing to say that a shorter one cannot. Negative: no
	// limit.
	MaxListPattern int

	// IdleTimeout is the autologout timer once authenticated; RFC 3501
	// requires at least 30 minutes (rfc3501.txt:1185), the default; smaller
	// values are for tests only. PreAuthTimeout applies
	// before authentication. IDLE handlers use IdleTimeout as well.
	IdleTimeout    time.Duration
	PreAuthTimeout time.Duration
	WriteTimeout   time.Duration // per write, default 2 min
	// MaxConnsPerIP bounds simultaneous connections from one remote address,
	// default 100 (IMAP clients open several); negative means no limit.
	// Loopback peers are exempt unless LimitLoopback is set.
	MaxConnsPerIP int
	LimitLoopback bool
	// AuthFailDelay slows down failed logins, default 1s.
	AuthFailDelay time.Duration
	// SentDedupWindow: an APPEND to the \Sent mailbox of a message whose
	// copy the submission server filed there less than this long ago is
	// answered with that copy's UID and stores nothing (append.go,
	// store/sentdedup.go); configuration key imapd_sent_dedup_window,
	// default 10 minutes, negative: off.
	SentDedupWindow time.Duration

	// Disabled switches capabilities off by name, e.g. {"IDLE": true};
	// commands of a disabled extension answer BAD like unknown commands.
	Disabled map[string]bool
	// PerUserDisabled, when set, adds capabilities to switch off for a
	// user after login (workarounds for particular clients/accounts).
	PerUserDisabled func(user string) map[string]bool

	// storeSearch: every SEARCH is answered by the store's query, none
	// from the session's view (search.go: viewTerms); tests compare the
	// two answers.
	storeSearch bool
}

func (c Config) withDefaults() Config {
	def := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	if c.Hostname == "" {
		c.Hostname = "localhost"
	}
	if c.Version == "" {
		c.Version = "dev"
	}
	if c.MaxLine == 0 {
		c.MaxLine = 64 << 10
	}
	if c.MaxLiteral == 0 {
		c.MaxLiteral = 1 << 20
	}
	if c.MaxAppendLiteral == 0 {
		c.MaxAppendLiteral = 64 << 20
	}
	if c.MaxPreAuthLiterals == 0 {
		c.MaxPreAuthLiterals = 8 << 10
	}
	if c.MaxMemoryPerIP == 0 {
		c.MaxMemoryPerIP = 128 << 20
	}
	if c.MaxListPattern == 0 {
		c.MaxListPattern = DefaultMaxListPattern
	}
	def(&c.IdleTimeout, 30*time.Minute)
	def(&c.PreAuthTimeout, 2*time.Minute)
	def(&c.WriteTimeout, 2*time.Minute)
	def(&c.AuthFailDelay, time.Second)
	def(&c.SentDedupWindow, DefaultSentDedupWindow)
	if c.MaxConnsPerIP == 0 {
		c.MaxConnsPerIP = 100
	}
	return c
}

// DefaultSentDedupWindow is Config.SentDedupWindow's default: long enough
// for a client to APPEND its copy after a slow submission, short enough
// that an old message appended again (from an archive) is stored.
const DefaultSentDedupWindow = 10 * time.Minute

// DefaultMaxListPattern is Config.MaxListPattern's default.
const DefaultMaxListPattern = 4096

func (c Config) limits() Limits {
	return Limits{MaxLine: c.MaxLine, MaxLiteral: c.MaxLiteral, MaxAppend: c.MaxAppendLiteral,
		MaxCommandLiterals: c.MaxLiteral, MaxPreAuthLiterals: c.MaxPreAuthLiterals}
}
