#!/bin/sh
# Installs what the capture harness (conformance/capture) drives: Thunderbird
# 153 ESR under Xvfb with xdotool, neomutt in tmux, offlineimap3; plus
# x11-apps/imagemagick for screenshots of the Thunderbird window. Run once
# per machine, before `go run ./conformance/capture`; the harness checks the
# binaries and names this script when one is missing (it installs nothing
# itself, and `make test` never needs these packages).
set -eu
cd "$(dirname "$0")/.."
exec sh ./install-deps.sh \
	thunderbird=thunderbird \
	Xvfb=xvfb \
	xdotool=xdotool \
	xwd=x11-apps \
	/usr/bin/convert=imagemagick \
	neomutt=neomutt \
	offlineimap=offlineimap3 \
	tmux=tmux \
	certutil=libnss3-tools
