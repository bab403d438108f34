package store

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// DKIMKey is a sending domain's signing key (schema 0015).
type DKIMKey struct {
	Domain, Selector string
	Signer           crypto.Signer
	Created          time.Time
}

// DNSName is where the public key is published.
func (k DKIMKey) DNSName() string { return k.Selector + "._domainkey." + k.Domain }

// DNSRecord is the TXT record to publish (RFC 6376 §3.6.1).
func (k DKIMKey) DNSRecord() (string, error) {
	der, err := x509.MarshalPKIXPublicKey(k.Signer.Public())
	if err != nil {
		return "", err
	}
	return "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der), nil
}

// GenerateDKIMKey makes a 2048-bit RSA key for domain under selector,
// replacing any key the domain had (the old DNS record can then go).
func (s *Store) GenerateDKIMKey(ctx context.Context, domain, selector string) (DKIMKey, error) {
	domain = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(domain), "."))
	if domain == "" || strings.ContainsAny(domain, " @/\\") || selector == "" || strings.ContainsAny(selector, " .@/\\") {
		return DKIMKey{}, fmt.Errorf("%w: domain %q, selector %q", ErrInvalid, domain, selector)
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return DKIMKey{}, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return DKIMKey{}, err
	}
	p := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	k := DKIMKey{Domain: domain, Selector: selector, Signer: key}
	err = s.pool.QueryRow(ctx, `INSERT INTO dkim_keys (domain, selector, private_key) VALUES ($1, $2, $3)
		ON CONFLICT (domain) DO UPDATE SET selector = excluded.selector, private_key = excluded.private_key, created = now()
		RETURNING created`, domain, selector, p).Scan(&k.Created)
	return k, err
}

// DKIMKey returns the key of domain, or ErrNotFound.
func (s *Store) DKIMKey(ctx context.Context, domain string) (DKIMKey, error) {
	var k DKIMKey
	var p string
	err := s.pool.QueryRow(ctx, `SELECT domain, selector, private_key, created FROM dkim_keys WHERE domain = $1`,
		strings.ToLower(domain)).Scan(&k.Domain, &k.Selector, &p, &k.Created)
	if errors.Is(err, pgx.ErrNoRows) {
		return k, ErrNotFound
	} else if err != nil {
		return k, err
	}
	b, _ := pem.Decode([]byte(p))
	if b == nil {
		return k, fmt.Errorf("dkim key of %s: not PEM", domain)
	}
	key, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return k, fmt.Errorf("dkim key of %s: %w", domain, err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return k, fmt.Errorf("dkim key of %s: not a signing key", domain)
	}
	k.Signer = signer
	return k, nil
}

// DKIMKeys lists the domains with keys.
func (s *Store) DKIMKeys(ctx context.Context) ([]DKIMKey, error) {
	rows, err := s.pool.Query(ctx, `SELECT domain FROM dkim_keys ORDER BY domain`)
	if err != nil {
		return nil, err
	}
	domains, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	var out []DKIMKey
	for _, d := range domains {
		k, err := s.DKIMKey(ctx, d)
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, nil
}
