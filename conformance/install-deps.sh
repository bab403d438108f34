#!/bin/sh
# Installs the Debian packages of the tools the tests run, before `go test`
# (go test itself never installs anything). Each argument is BINARY=PACKAGE,
# BINARY a command name looked up in PATH, or an absolute path to a file
# the package installs (a program, or any file of a package without one):
#
#   conformance/install-deps.sh curl=curl mbsync=isync /usr/sbin/dovecot=dovecot-imapd
#
# `make test-deps` passes the tools listed in conformance/clients.deps.
# Idempotent and quick when everything is there (no apt at all); otherwise
# apt-get update once, then apt-get install of the missing packages only.
# As root, or through sudo when it is available.
set -eu

missing=""
for dep in "$@"; do
	bin=${dep%%=*}
	pkg=${dep#*=}
	if [ -z "$bin" ] || [ -z "$pkg" ] || [ "$bin" = "$dep" ]; then
		echo "install-deps: '$dep' is not BINARY=PACKAGE" >&2
		exit 2
	fi
	case $bin in
	/*) [ -e "$bin" ] && continue ;;
	*) command -v "$bin" >/dev/null 2>&1 && continue ;;
	esac
	case " $missing " in
	*" $pkg "*) ;;
	*) missing="$missing $pkg" ;;
	esac
done
[ -n "$missing" ] || exit 0

if [ "$(id -u)" -eq 0 ]; then
	as_root=""
elif command -v sudo >/dev/null 2>&1; then
	as_root="sudo"
else
	echo "install-deps: the tests need the Debian packages$missing;" >&2
	echo "install-deps: not root and no sudo: install them as root (apt-get install$missing) and run make again" >&2
	exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
	echo "install-deps: the tests need the Debian packages$missing, and there is no apt-get: install them by other means" >&2
	exit 1
fi
echo "install-deps: installing$missing" >&2
# shellcheck disable=SC2086 # $as_root is empty or sudo; $missing a list of package names
$as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
# shellcheck disable=SC2086
$as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing

# Check again: a package that installs no such binary is a bad mapping.
for dep in "$@"; do
	bin=${dep%%=*}
	case $bin in
	/*) [ -e "$bin" ] && continue ;;
	*) command -v "$bin" >/dev/null 2>&1 && continue ;;
	esac
	echo "install-deps: $bin still missing after installing ${dep#*=}" >&2
	exit 1
done
