package message

import (
	"encoding/base64"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestPreview(t *testing.T) {
	html := "<html><head><title>T</title><style>p {color: red}</style></head><body><p>Hello&nbsp;<b>W&ouml;rld</b></p>\n<!-- hidden --><p>second&amp;line</p></body></html>"
	b64 := base64.StdEncoding.EncodeToString([]byte(html))
	long := strings.Repeat("wörd ", 100)
	tests := []struct{ name, msg, want string }{
		{"plain", "Subject: x\r\n\r\n  Hello,\r\n\r\n\tthere  \r\n", "Hello, there"},
		{"base64 html", "Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n" + b64[:40] + "\r\n" + b64[40:] + "\r\n",
			"Hello Wörld second&line"},
		{"latin1 qp", "Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nGr=FC=DFe=\r\n aus M=FCnchen\r\n", "Grüße aus München"},
		{"alternative: the first", "Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nplain one\r\n--b\r\nContent-Type: text/html\r\n\r\n<p>html one</p>\r\n--b--\r\n", "plain one"},
		{"attachment skipped", "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; filename=a.txt\r\n\r\nfile\r\n--b\r\nContent-Type: text/plain\r\n\r\nbody\r\n--b--\r\n", "body"},
		{"inline tags join", "Content-Type: text/html\r\n\r\n<div>one</div><div>W<b>o</b>rld &lt;3</div>\r\n", "one World <3"},
		{"no text", "Content-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n", ""},
		{"long", "Subject: x\r\n\r\n" + long + "\r\n", strings.TrimSpace(strings.Repeat("wörd ", 40))},
	}
	for _, tc := range tests {
		got := Preview([]byte(tc.msg))
		if got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
		if n := utf8.RuneCountInString(got); n > MaxPreview {
			t.Errorf("%s: %d characters", tc.name, n)
		}
	}
}
