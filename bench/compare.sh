#!/bin/sh
# make bench-compare-10k (and, with settings, -100k; make bench-compare runs
# both): Decimail side by side with a private Dovecot on the same corpus, in
# one run; prints the table and rewrites bench/RESULTS.md.
# DECIMAIL_BENCH_SIZES=1000,10000 picks the corpus sizes (default 10000).
set -eu
GO=${GO:-go}
cd "$(dirname "$0")/.."
if [ ! -x /usr/sbin/dovecot ] || ! dpkg -s dovecot-imapd >/dev/null 2>&1; then
	echo "installing dovecot-imapd (Debian package) ..." >&2
	SUDO=""
	[ "$(id -u)" -eq 0 ] || SUDO=sudo
	$SUDO apt-get install -y -q dovecot-imapd >/dev/null || { $SUDO apt-get update -q && $SUDO apt-get install -y -q dovecot-imapd; }
	# The package enables a system-wide dovecot on 143; we run a private one.
	$SUDO systemctl disable --now dovecot >/dev/null 2>&1 || true
fi
exec $GO test ./bench -run '^TestCompare$' -compare -count 1 -v -timeout 90m
