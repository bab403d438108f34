#!/bin/sh
# Runs every scenario against a private Dovecot (conformance/dovecot.go
# starts and stops it on a free loopback port). Installs Debian's
# dovecot-imapd first when it is missing (install-deps.sh; go test installs
# nothing). Extra arguments go to `go test`, e.g.
# conformance/dovecot.sh -run 'TestScenarios/rfc3501/fetch' -v
set -eu
cd "$(dirname "$0")/.."
if ! [ -x /usr/sbin/dovecot ]; then
	sh conformance/install-deps.sh /usr/sbin/dovecot=dovecot-imapd
	# The package may start a system Dovecot on port 143; the suite never uses it.
	SUDO=""
	[ "$(id -u)" -eq 0 ] || SUDO=sudo
	$SUDO service dovecot stop >/dev/null 2>&1 || true
fi
DECIMAIL_CONFORMANCE_TARGET=dovecot exec "${GO:-go}" test ./conformance -count 1 -parallel 16 "$@"
