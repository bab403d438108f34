#!/bin/sh
# Runs every scenario against a private Dovecot (conformance/dovecot.go
# starts and stops it on a free loopback port). Installs Debian's
# dovecot-imapd when it is missing. Extra arguments go to `go test`,
# e.g. conformance/dovecot.sh -run 'TestScenarios/rfc3501/fetch' -v
set -eu
cd "$(dirname "$0")/.."
if ! [ -x /usr/sbin/dovecot ]; then
	apt-get update
	DEBIAN_FRONTEND=noninteractive apt-get install -y dovecot-imapd
	# The package may start a system Dovecot on port 143; the suite never uses it.
	service dovecot stop >/dev/null 2>&1 || true
fi
DECIMAIL_CONFORMANCE_TARGET=dovecot exec "${GO:-go}" test ./conformance -count 1 -parallel 16 "$@"
