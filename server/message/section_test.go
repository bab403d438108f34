package message

import "testing"

// TestBinary: FETCH BINARY's content of a part (RFC 9051 §6.4.5): encodings
// undone, text/* lines ending in CRLF, other types byte for byte, unknown
// encodings an error, missing parts nil.
func TestBinary(t *testing.T) {
	raw := []byte("Subject: b\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n" +
		"--b\r\nContent-Type: text/csv\r\nContent-Transfer-Encoding: base64\r\n\r\nYSxiCmMsZAo=\r\n" + // "a,b\nc,d\n"
		"--b\r\nContent-Type: image/png\r\nContent-Transfer-Encoding: BASE64\r\n\r\nAAoN\r\n" + // 00 0a 0d
		"--b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nx=3D=\r\ny=00\r\n" +
		"--b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: uuencode\r\n\r\nbegin\r\n" +
		"--b\r\nContent-Type: text/plain\r\n\r\n\r\n" +
		"--b--\r\n")
	for _, tc := range []struct {
		part []int
		want string
		err  error
	}{
		{nil, string(raw), nil},
		{[]int{1}, "a,b\r\nc,d\r\n", nil},
		{[]int{2}, "\x00\n\r", nil},
		{[]int{3}, "x=y\x00", nil},
		{[]int{4}, "", ErrUnknownCTE},
		{[]int{5}, "", nil},
		{[]int{6}, "", nil},
	} {
		got, err := Binary(raw, tc.part)
		if err != tc.err || string(got) != tc.want {
			t.Errorf("Binary %v: %q, %v; want %q, %v", tc.part, got, err, tc.want, tc.err)
		}
		if len(tc.part) > 0 && tc.part[0] == 5 && got == nil {
			t.Errorf("an empty part is not a missing one")
		}
		if len(tc.part) > 0 && tc.part[0] == 6 && got != nil {
			t.Errorf("a missing part is nil, got %q", got)
		}
	}
}
