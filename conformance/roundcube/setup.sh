#!/bin/sh
# Installs what conformance/roundcube drives, when missing: Debian's
# Roundcube (roundcube, with roundcube-sqlite3 for its database), PHP's
# command-line interpreter (its built-in web server serves Roundcube) and
# Chromium (run headless through the DevTools protocol). `make roundcube`
# runs it first; the harness itself installs nothing. Never needed by
# `make test`.
set -eu
cd "$(dirname "$0")/.."
# roundcube-core asks (debconf) whether dbconfig-common should make its
# database; the harness brings its own SQLite file, so: no. Only before the
# first install, as root (a later debconf answer changes nothing).
if [ ! -e /usr/share/roundcube/index.php ] && [ "$(id -u)" -eq 0 ] && command -v debconf-set-selections >/dev/null 2>&1; then
	echo "roundcube-core roundcube/dbconfig-install boolean false" | debconf-set-selections
fi
exec sh ./install-deps.sh \
	/usr/share/roundcube/index.php=roundcube \
	/usr/share/bug/roundcube-sqlite3/control=roundcube-sqlite3 \
	php=php-cli \
	chromium=chromium
