-- Issue 18: DKIM keys per sending domain (`decimail dkim generate DOMAIN`).
-- The relay signs outgoing mail whose From domain has a key (RFC 6376),
-- with rsa-sha256 and relaxed/relaxed canonicalization; the DNS record to
-- publish is selector._domainkey.domain TXT "v=DKIM1; k=rsa; p=…".
CREATE TABLE dkim_keys (
    domain      text PRIMARY KEY CHECK (domain = lower(domain)),
    selector    text NOT NULL,
    private_key text NOT NULL,            -- PKCS #8, PEM
    created     timestamptz NOT NULL DEFAULT now()
);
