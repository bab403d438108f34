package smtpd

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// TestConvLogRedactsPipelinedCredentials: the Debug stream interleaves both
// directions; a client line split by a server reply must not leak.
func TestConvLogRedactsPipelinedCredentials(t *testing.T) {
	var out bytes.Buffer
	w := newConvLog(slog.New(slog.NewTextHandler(&out, nil)))
	for _, chunk := range []string{
		"220 mx ESMTP\r\n", "EHLO c\r\n", "250-mx\r\n250 AUTH PLAIN LOGIN\r\n",
		"NOOP\r\nAU", "250 2.0.0 ok\r\n", "TH PLAIN AHUAc2VjcmV0cGFzcw==\r\n", "235 2.0.0 ok\r\n",
		"AUTH LOGIN\r\n", "334 VXNlcm5hbWU6\r\n", "dQ==\r\n", "334 UGFzc3dvcmQ6\r\n", "c2VjcmV0\r\n", "535 5.7.8 no\r\n",
		"MAIL FROM:<a@b>\r\n", "250 ok\r\n", "DATA\r\n", "354 go\r\n", "Subject: hidden\r\n\r\nbody\r\n.\r\n", "250 ok\r\n",
		"BDAT 5 LAST\r\nab\r\ncQUIT\r\n",
	} {
		w.Write([]byte(chunk))
	}
	w.flush()
	log := out.String()
	for _, secret := range []string{"AHUAc2VjcmV0cGFzcw", "c2VjcmV0", "dQ==", "hidden", "body", "ab"} {
		if strings.Contains(log, secret) {
			t.Errorf("log contains %q:\n%s", secret, log)
		}
	}
	for _, want := range []string{"C: MAIL FROM:<a@b>", "C: [message data, 25 bytes]", "S: 354 go", "C: AUTH LOGIN", "C: QUIT"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
}
