package smtpd

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/mail"
	"strings"

	"decimail/server/store"
)

// AddrStore is what Rewrite needs from the store (*store.Store implements it).
type AddrStore interface {
	AutoUser(ctx context.Context, address string) (store.AutoUser, error)
	DeliveredTo(ctx context.Context, userID int64, msgIDs []string) (string, error)
	CorrespondentAddr(ctx context.Context, autoAddress, correspondent string) (string, error)
	RecordRandomAddr(ctx context.Context, autoAddress, correspondent, address string) (string, error)
}

// Outgoing is the part of a submitted message address rewriting looks at.
type Outgoing struct {
	From          string   // From: addr-spec, lowercased
	Correspondent string   // first To: address (else first recipient), lowercased
	InReplyTo     string   // "<id>"
	References    []string // "<id>"s in header order
}

// Rewrite returns the address a message from userID goes out From. Unless
// From is an auto_users address of that user it returns From unchanged.
// Otherwise, in this order:
//
//  1. a reply (In-Reply-To, then References newest first) to a message the
//     user received: the address that message was delivered to;
//  2. the address recorded for the correspondent (custom_addrs: explicit
//     rows win over random ones);
//  3. a new address from the template ("%s@example.com", %s = 8 random
//     lowercase letters/digits), recorded in random_addrs, so the same
//     correspondent gets the same address next time.
//
// Every address handed out here is one of the user's addresses (the store
// records it in addresses: RecordRandomAddr, SetExplicitAddr), so replies
// to it are delivered to the user, with no catch-all needed.
func Rewrite(ctx context.Context, st AddrStore, userID int64, m Outgoing) (string, error) {
	from := strings.ToLower(m.From)
	a, err := st.AutoUser(ctx, from)
	if errors.Is(err, store.ErrNoUser) || err == nil && a.UserID != userID {
		return m.From, nil
	} else if err != nil {
		return "", err
	}
	ids := []string{}
	if m.InReplyTo != "" {
		ids = append(ids, m.InReplyTo)
	}
	for i := len(m.References) - 1; i >= 0; i-- {
		ids = append(ids, m.References[i])
	}
	if len(ids) > 0 {
		addr, err := st.DeliveredTo(ctx, userID, ids)
		if err != nil || addr != "" {
			return addr, err
		}
	}
	corr := strings.ToLower(m.Correspondent)
	if corr == "" {
		return m.From, nil // nobody to key an address on
	}
	addr, err := st.CorrespondentAddr(ctx, a.Address, corr)
	if err != nil || addr != "" {
		return addr, err
	}
	for try := 0; try < 10; try++ {
		addr, err = st.RecordRandomAddr(ctx, a.Address, corr, strings.Replace(a.Template, "%s", token(8), 1))
		if !errors.Is(err, store.ErrAddressTaken) {
			return addr, err
		}
	}
	return "", fmt.Errorf("smtpd: no free address from template %q", a.Template)
}

const tokenChars = "abcdefghijklmnopqrstuvwxyz0123456789"

func token(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	for i := range b {
		b[i] = tokenChars[int(b[i])%len(tokenChars)]
	}
	return string(b)
}

// header is what submission reads from a message's header.
type header struct {
	From       string // first From: address, lowercased
	FirstTo    string
	InReplyTo  string
	References []string

	froms      []string // every From: address, lowercased
	fromFields int      // number of From: fields
	fromBad    bool     // a From: field that is not an address list
}

// headerFields splits raw's header section into fields (name, value with
// folding kept, byte range of the whole field).
func headerFields(raw []byte, fn func(name string, value []byte, start, end int) bool) {
	i := 0
	for i < len(raw) {
		if raw[i] == '\r' || raw[i] == '\n' { // blank line: end of header
			return
		}
		start := i
		for {
			j := bytes.IndexByte(raw[i:], '\n')
			if j < 0 {
				i = len(raw)
				break
			}
			i += j + 1
			if i >= len(raw) || raw[i] != ' ' && raw[i] != '\t' {
				break
			}
		}
		f := raw[start:i]
		c := bytes.IndexByte(f, ':')
		if c <= 0 {
			continue
		}
		if !fn(strings.TrimSpace(string(f[:c])), f[c+1:], start, i) {
			return
		}
	}
}

func unfold(v []byte) string {
	s := strings.ReplaceAll(string(v), "\r\n", "")
	return strings.TrimSpace(strings.ReplaceAll(s, "\n", ""))
}

func readHeader(raw []byte) header {
	var h header
	headerFields(raw, func(name string, v []byte, _, _ int) bool {
		switch strings.ToLower(name) {
		case "from":
			h.fromFields++
			as, err := mail.ParseAddressList(unfold(v))
			if err != nil || len(as) == 0 {
				h.fromBad = true
			}
			for _, a := range as {
				h.froms = append(h.froms, strings.ToLower(a.Address))
			}
			if h.From == "" && len(h.froms) > 0 {
				h.From = h.froms[0]
			}
		case "to":
			if h.FirstTo == "" {
				if as, err := mail.ParseAddressList(unfold(v)); err == nil && len(as) > 0 {
					h.FirstTo = strings.ToLower(as[0].Address)
				}
			}
		case "in-reply-to":
			if ids := msgIDs(unfold(v)); h.InReplyTo == "" && len(ids) > 0 {
				h.InReplyTo = ids[0]
			}
		case "references":
			if h.References == nil {
				h.References = msgIDs(unfold(v))
			}
		}
		return true
	})
	return h
}

// msgIDs extracts "<...>" msg-ids in order (as stored in messages.message_id).
func msgIDs(v string) []string {
	var ids []string
	for {
		i := strings.IndexByte(v, '<')
		if i < 0 {
			return ids
		}
		j := strings.IndexByte(v[i:], '>')
		if j < 0 {
			return ids
		}
		ids = append(ids, v[i:i+j+1])
		v = v[i+j+1:]
	}
}

// replaceFrom replaces the first From: field's address with addr, keeping the
// display name; other bytes are untouched.
func replaceFrom(raw []byte, addr string) []byte {
	out := raw
	headerFields(raw, func(name string, v []byte, start, end int) bool {
		if !strings.EqualFold(name, "from") {
			return true
		}
		na := &mail.Address{Address: addr}
		if a, err := mail.ParseAddress(unfold(v)); err == nil {
			na.Name = a.Name
		}
		var b bytes.Buffer
		b.Grow(len(raw) + len(addr))
		b.Write(raw[:start])
		b.WriteString("From: " + na.String() + "\r\n")
		b.Write(raw[end:])
		out = b.Bytes()
		return false
	})
	return out
}
