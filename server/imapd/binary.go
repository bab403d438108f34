package imapd

// BINARY (RFC 3516, now part of RFC 9051 §6.4.5): FETCH BINARY[part],
// BINARY.PEEK[part] and BINARY.SIZE[part] give a part's content with its
// Content-Transfer-Encoding undone (message.Binary); APPEND takes a
// literal8 (append.go).

import (
	"bytes"
	"errors"

	"decimail/server/message"
	"decimail/server/store"
)

// binaries decodes the row's BINARY items (indexed like f.req.items; nil
// for other items and for a part that does not exist). An unknown
// encoding fails the request: "NO" with "UNKNOWN-CTE" (rfc9051.txt:5912-5915).
func (f *fetcher) binaries(r *store.FetchRow) ([][]byte, error) {
	var out [][]byte
	var raw []byte
	for i, it := range f.req.items {
		if it.kind != itemBinary && it.kind != itemBinarySize {
			continue
		}
		if out == nil {
			out = make([][]byte, len(f.req.items))
			raw = append(append(make([]byte, 0, len(r.Header)+len(r.Body)), r.Header...), r.Body...)
		}
		d, err := message.Binary(raw, it.part)
		if errors.Is(err, message.ErrUnknownCTE) {
			return nil, No("UNKNOWN-CTE", "unknown content-transfer-encoding in part "+partName(it.part))
		}
		out[i] = d
	}
	return out, nil
}

// binary writes one BINARY / BINARY.SIZE item from its decoded data.
func (f *fetcher) binary(it *fetchItem, d []byte) {
	w := f.w
	w.Raw(it.name)
	w.SP()
	switch {
	case it.kind == itemBinarySize: // the size of what BINARY returns (rfc9051.txt:5917-5921)
		f.number(uint64(len(d)))
		return
	case d == nil:
		w.Raw("NIL") // no such part: nstring
		return
	}
	if it.partial { // "the same as for a partial FETCH BODY", of the decoded data (rfc9051.txt:4379-4383)
		d, _ = cut(d, nil, uint64(it.origin), uint64(it.count))
		if len(d) == 0 {
			w.Raw(`""`)
			return
		}
	}
	if bytes.IndexByte(d, 0) < 0 {
		// No NUL: a string, not a literal8 (rfc9051.txt:5899-5903).
		f.literal(d, nil)
		return
	}
	w.Raw("~") // literal8 = "~{" number64 "}" CRLF *OCTET (rfc9051.txt:6663)
	w.literalHeader(int64(len(d)))
	w.bw.Write(d)
}
