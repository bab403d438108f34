package inflate

import (
	"bufio"
	"bytes"
	"compress/flate"
	"encoding/hex"
	"io"
	"testing"
	"time"

	kflate "github.com/klauspost/compress/flate"
)

// What mbsync 1.4.4 sent after COMPRESS DEFLATE, one write per line
// (captured on the server's socket): each batch is a deflate block ended
// with zlib's Z_PARTIAL_FLUSH; the last one, 30 pipelined commands, a
// dynamic-code block.
var partialFlushed = []struct{ hex, plain string }{
	{"3256f073f4750d0e707476e5e50208",
		"3 NAMESPACE\r\n"},
	{"2013051fcfe01005252505252d255e2e8000",
		"4 LIST \"\" \"*\"\r\n"},
	{"32550876f57175060a78fa39f94700450002",
		"5 SELECT \"INBOX\"\r\n"},
	{"c84c21d4d345c1cd35c4d943c1d0cad8404103ccf771740fd6e4e50208",
		"6 UID FETCH 1:30 (UID FLAGS)\r\n"},
	{"40261de2200c005110bd0a1245ba7f5bda5a4215022c21dcff1a20a71d3dee6566d6d3f9f6bcbf2faf6d7b7cbeffb820e61857c43ec61a5047d5429d54837a556dd45975445d5427d45575273528efa86455c42a6915b94a5ea157092c042b89856225b290ac64169a95d042b4925aa816a9856a915a768b492d548bd49a6a915a532d526baa456a4db548ada916a935d522b5a65a4bed27",
		"7 UID FETCH 1 (BODY.PEEK[])\r\n8 UID FETCH 2 (BODY.PEEK[])\r\n9 UID FETCH 3 (BODY.PEEK[])\r\n10 UID FETCH 4 (BODY.PEEK[])\r\n11 UID FETCH 5 (BODY.PEEK[])\r\n12 UID FETCH 6 (BODY.PEEK[])\r\n13 UID FETCH 7 (BODY.PEEK[])\r\n14 UID FETCH 8 (BODY.PEEK[])\r\n15 UID FETCH 9 (BODY.PEEK[])\r\n16 UID FETCH 10 (BODY.PEEK[])\r\n17 UID FETCH 11 (BODY.PEEK[])\r\n18 UID FETCH 12 (BODY.PEEK[])\r\n19 UID FETCH 13 (BODY.PEEK[])\r\n20 UID FETCH 14 (BODY.PEEK[])\r\n21 UID FETCH 15 (BODY.PEEK[])\r\n22 UID FETCH 16 (BODY.PEEK[])\r\n23 UID FETCH 17 (BODY.PEEK[])\r\n24 UID FETCH 18 (BODY.PEEK[])\r\n25 UID FETCH 19 (BODY.PEEK[])\r\n26 UID FETCH 20 (BODY.PEEK[])\r\n27 UID FETCH 21 (BODY.PEEK[])\r\n28 UID FETCH 22 (BODY.PEEK[])\r\n29 UID FETCH 23 (BODY.PEEK[])\r\n30 UID FETCH 24 (BODY.PEEK[])\r\n31 UID FETCH 25 (BODY.PEEK[])\r\n32 UID FETCH 26 (BODY.PEEK[])\r\n33 UID FETCH 27 (BODY.PEEK[])\r\n34 UID FETCH 28 (BODY.PEEK[])\r\n35 UID FETCH 29 (BODY.PEEK[])\r\n36 UID FETCH 30 (BODY.PEEK[])\r\n"},
}

// readWithin reads len(want) octets from r, which reads from a pipe that
// holds nothing more than the stream so far: a decoder that waits for more
// input before handing out what it has decoded does not finish in time.
func readWithin(r io.Reader, n int) ([]byte, bool) {
	got := make(chan []byte, 1)
	go func() {
		b := make([]byte, n)
		k, _ := io.ReadFull(r, b)
		got <- b[:k]
	}()
	select {
	case b := <-got:
		return b, true
	case <-time.After(time.Second):
		return nil, false
	}
}

// TestPartialFlush: each batch a peer ends with Z_PARTIAL_FLUSH is handed
// out as soon as its octets have arrived. compress/flate holds back the
// first (no sync flush); klauspost/compress with WithPartialBlock the
// dynamic-code block of 30 commands (it reads bits ahead that the peer
// has not sent): the reasons this package exists. If an assertion about
// them fails, that library has changed and this copy may go.
func TestPartialFlush(t *testing.T) {
	decoders := []struct {
		name   string
		new    func(io.Reader) io.Reader
		stalls int // the first batch not handed out; -1: none
	}{
		{"inflate", func(r io.Reader) io.Reader { return NewReader(r) }, -1},
		{"inflate over bufio", func(r io.Reader) io.Reader { return NewReader(bufio.NewReader(r)) }, -1},
		{"compress/flate", func(r io.Reader) io.Reader { return flate.NewReader(r) }, 0},
		{"klauspost WithPartialBlock", func(r io.Reader) io.Reader {
			return kflate.NewReaderOpts(bufio.NewReader(r), kflate.WithPartialBlock())
		}, 4},
	}
	for _, d := range decoders {
		pr, pw := io.Pipe()
		defer pw.Close()
		r := d.new(pr)
		stalled := -1
		for i, p := range partialFlushed {
			b, _ := hex.DecodeString(p.hex)
			go pw.Write(b)
			got, ok := readWithin(r, len(p.plain))
			if !ok {
				stalled = i
				break
			}
			if !bytes.Equal(got, []byte(p.plain)) {
				t.Fatalf("%s, batch %d: %q, want %q", d.name, i, got, p.plain)
			}
		}
		if stalled != d.stalls {
			t.Errorf("%s: the first batch not handed out is %d, want %d (-1: none)", d.name, stalled, d.stalls)
		}
	}
}

// A stream of sync flushes and a final block decodes as with compress/flate.
func TestRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	w, _ := flate.NewWriter(&buf, 5)
	var want []byte
	for i := range 200 {
		line := bytes.Repeat([]byte{byte('a' + i%26)}, i*37%1000)
		want = append(want, line...)
		w.Write(line)
		if i%7 == 0 {
			w.Flush()
		}
	}
	w.Close()
	got, err := io.ReadAll(NewReader(&buf))
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("round trip: %d octets, err %v; want %d octets", len(got), err, len(want))
	}
}
