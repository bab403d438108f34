package smtpd

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
)

// TestDataWriterChunks: bare LF becomes CRLF and the header is measured
// however the data is split into writes (a CR and its LF may arrive in two).
func TestDataWriterChunks(t *testing.T) {
	in := "Subject: a\nFrom: b\r\n\r\nbody\nline\r\n\n.x\r\r\n"
	want := strings.ReplaceAll(strings.ReplaceAll(in, "\r\n", "\n"), "\n", "\r\n")
	wantHeader := int64(len("Subject: a\r\nFrom: b\r\n\r\n"))
	for seed := range uint64(200) {
		r := rand.New(rand.NewPCG(seed, 1))
		var out bytes.Buffer
		d := &dataWriter{w: &out, maxHeader: 1 << 20}
		for rest := in; rest != ""; {
			k := 1 + r.IntN(len(rest))
			if err := d.Write([]byte(rest[:k])); err != nil {
				t.Fatal(err)
			}
			rest = rest[k:]
		}
		if out.String() != want || d.headerLen() != wantHeader {
			t.Fatalf("seed %d: %q (header %d), want %q (%d)", seed, out.String(), d.headerLen(), want, wantHeader)
		}
	}
	d := &dataWriter{w: &bytes.Buffer{}, maxHeader: wantHeader - 1}
	if err := d.Write([]byte(in)); !errors.Is(err, errHeaderTooLarge) {
		t.Fatalf("header over the limit: %v", err)
	}
	d = &dataWriter{w: &bytes.Buffer{}, maxHeader: wantHeader}
	if err := d.Write([]byte(in + strings.Repeat("body\r\n", 100))); err != nil {
		t.Fatalf("header at the limit: %v", err)
	}
}
