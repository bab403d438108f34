package store

import (
	"bufio"
	"errors"
	"io"
	"os"
	"path/filepath"
)

// Incoming is a message on its way in (SMTP DATA, and IMAP APPEND when it
// moves over): written to an unlinked temporary file while it arrives, so a
// slow or large message costs disk, not memory, until DeliverIncoming reads
// it once to parse and store it. IncomingBytes wraps a message already in
// memory. Not safe for concurrent use.
//
// The content is head followed by the file's bytes from skip on (Splice
// replaces the start of the message, e.g. a rewritten header, without
// copying the rest).
type Incoming struct {
	f    *os.File // nil: in memory
	w    *bufio.Writer
	mem  []byte
	n    int64 // bytes written to f
	head []byte
	skip int64
}

// NewIncoming creates an empty Incoming in <SpoolDir>/incoming (the system's
// temporary directory without a spool). The file is unlinked at once: a
// crash leaves nothing behind, Close frees the space.
func (s *Store) NewIncoming() (*Incoming, error) {
	dir := os.TempDir()
	if s.spool != "" {
		dir = filepath.Join(s.spool, "incoming")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
	}
	f, err := os.CreateTemp(dir, "in-*")
	if err != nil {
		return nil, err
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, err
	}
	return &Incoming{f: f, w: bufio.NewWriterSize(f, 64<<10)}, nil
}

// IncomingBytes is an Incoming over raw (not copied).
func IncomingBytes(raw []byte) *Incoming { return &Incoming{head: raw} }

// Write appends to the message.
func (in *Incoming) Write(p []byte) (int, error) {
	if in.f == nil {
		return 0, errors.New("store: write to an in-memory Incoming")
	}
	n, err := in.w.Write(p)
	in.n += int64(n)
	return n, err
}

// Size is the message's length in bytes.
func (in *Incoming) Size() int64 { return int64(len(in.head)) + in.n - in.skip }

// Close releases the file.
func (in *Incoming) Close() error {
	if in.f == nil {
		return nil
	}
	err := in.f.Close()
	in.f = nil
	return err
}

// Splice replaces the first n bytes of the message with head.
func (in *Incoming) Splice(n int64, head []byte) {
	n = min(max(n, 0), in.Size())
	if n <= int64(len(in.head)) {
		in.head = append(append([]byte{}, head...), in.head[n:]...)
		return
	}
	in.skip += n - int64(len(in.head))
	in.head = append([]byte{}, head...)
}

// Prefix returns the first max bytes of the message (all of it if shorter).
func (in *Incoming) Prefix(max int) ([]byte, error) {
	return in.read(min(int64(max), in.Size()))
}

// Bytes returns the whole message, read into one new buffer (the head
// itself for an in-memory Incoming that was not spliced).
func (in *Incoming) Bytes() ([]byte, error) {
	if in.f == nil && in.skip == 0 {
		return in.head, nil
	}
	return in.read(in.Size())
}

func (in *Incoming) read(size int64) ([]byte, error) {
	b := make([]byte, size)
	k := copy(b, in.head)
	if int64(k) == size || in.f == nil {
		return b, nil
	}
	if err := in.w.Flush(); err != nil {
		return nil, err
	}
	if _, err := in.f.ReadAt(b[k:], in.skip); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return b, nil
}
