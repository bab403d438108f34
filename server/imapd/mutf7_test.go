package imapd

import "testing"

func TestMUTF7(t *testing.T) {
	for utf, wire := range map[string]string{
		"INBOX":              "INBOX",
		"~peter/mail/台北/日本語": "~peter/mail/&U,BTFw-/&ZeVnLIqe-", // rfc3501.txt:1127-1129
		"A&B":                "A&-B",
		"Entwürfe":           "Entw&APw-rfe",
	} {
		if got := encodeMUTF7(utf); got != wire {
			t.Errorf("encode(%q) = %q, want %q", utf, got, wire)
		}
		if got, err := decodeMUTF7(wire); err != nil || got != utf {
			t.Errorf("decode(%q) = %q, %v; want %q", wire, got, err, utf)
		}
	}
	// Not storable as Postgres text (FuzzServer: NO [SERVERBUG] from SELECT,
	// STATUS, SUBSCRIBE, COPY, APPEND).
	for _, bad := range []string{"&", "&U,BTFw", "&AGE-", "\xff", "\xff&-", "a\x00b", "&AAA-", "x&AAE-\xc3"} {
		if _, err := decodeMUTF7(bad); err == nil {
			t.Errorf("decode(%q) accepted", bad)
		}
	}
}
