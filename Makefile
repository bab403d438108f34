# Decimail. The two commands a fresh machine needs: `make run` and `make test`.
GO      ?= go
PKGS    := ./...
# -race where time allows: the race detector runs on every package.
TESTFLAGS ?= -race -timeout 20m

.PHONY: run test test-deps vet bench bench-compare bench-compare-10k bench-compare-100k property fuzz coverage build clean capture roundcube

## run: private Postgres under ./var, demo account (demo/demo), daemons on loopback;
## Ctrl-C stops it and make exits 0. The binary is built, then run: `go run`
## exits 1 when interrupted, whatever its program does. DEVFLAGS are more
## flags of `decimail dev` (e.g. -var DIR -imap 127.0.0.1:0).
BIN      ?= bin/decimail
DEVFLAGS ?=
run: build
	exec $(BIN) dev $(DEVFLAGS)

## test: every test on real Postgres (started privately when no DSN is set)
test: vet test-deps
	$(GO) test $(TESTFLAGS) $(PKGS)

## test-deps: the Debian packages of the real clients the tests run
## (conformance/clients.deps), installed when missing; go test installs nothing
test-deps:
	sh conformance/install-deps.sh $$(grep -v '^#' conformance/clients.deps)

vet:
	$(GO) vet $(PKGS)

## capture: record real clients (CLIENT=thunderbird|neomutt|offlineimap, all three
## by default; SCENARIO=... for one) against the current code into
## fixtures/transcripts/CLIENT/ (conformance/TRANSCRIPTS.md "Capturing"). A developer
## tool, never part of `make test`; installs the clients first (capture/setup.sh).
CLIENT   ?= thunderbird neomutt offlineimap
SCENARIO ?=
capture:
	sh conformance/capture/setup.sh
	for c in $(CLIENT); do $(GO) run ./conformance/capture $$c $(SCENARIO) || exit 1; done

## roundcube: Debian's Roundcube in headless Chromium against a private
## Decimail: login, sort, threads, a view, search, flag, delete, send
## (conformance/ROUNDCUBE.md). Installs the packages when missing
## (conformance/roundcube/setup.sh); screenshots and logs go to
## var/roundcube/. A developer tool, never part of `make test`.
## ROUNDCUBE_FLAGS: -plain (no STARTTLS), -cache (Roundcube's caches on),
## -keep (leave it running), -out DIR.
ROUNDCUBE_FLAGS ?=
roundcube:
	sh conformance/roundcube/setup.sh
	GO=$(GO) $(GO) run ./conformance/roundcube $(ROUNDCUBE_FLAGS)

build:
	$(GO) build -o $(BIN) ./server/cmd/decimail

## bench: the benchmarks in bench/ and the packages (go test -bench)
bench:
	$(GO) test -run XXX -bench . -benchtime 3x ./bench/... ./server/...

## bench-compare: Decimail side by side with a private Dovecot, at 10,000
## messages (every line) and then 100,000 (the lines a large mailbox decides);
## rewrites bench/RESULTS.md and bench/RESULTS-100k.md (about 35 minutes)
bench-compare: bench-compare-10k bench-compare-100k

## bench-compare-10k: the 10,000-message comparison alone; rewrites bench/RESULTS.md (about 8 minutes)
bench-compare-10k:
	GO=$(GO) sh bench/compare.sh

## bench-compare-100k: the lines of a large mailbox (issue 15's and the listings)
## at 100,000 messages, both servers, fast and durable; rewrites bench/RESULTS-100k.md
## (about 25 minutes: loading 100,000 messages twice dominates)
BENCH_100K_LINES = HeaderListing,FetchUIDFlags,BodyPeek200OneByOne,BodyPeekUnreadOneByOne,BodyPeekUnreadBatched,SelectInbox,NoopRoundTrip,StatusOneByOne,StartupUnpipelined,SearchSubjectCommon,SearchFromCommon,StoreSeen,StoreSeenSilent,StoreUnseen,StoreUnseenSilent,IdleNotify
bench-compare-100k:
	DECIMAIL_BENCH_SIZES=100000 DECIMAIL_BENCH_QUICK=1 DECIMAIL_BENCH_LINES=$(BENCH_100K_LINES) \
		DECIMAIL_BENCH_RESULTS=RESULTS-100k.md GO=$(GO) sh bench/compare.sh

## property: the rapid properties with many more checks (rapid reads RAPID_CHECKS;
## a -rapid.checks flag would break packages without rapid tests)
RAPID_CHECKS ?= 10000
property:
	RAPID_CHECKS=$(RAPID_CHECKS) $(GO) test -run 'Property|Model|StateMachine' -timeout 120m ./...

## fuzz: each fuzz target for FUZZTIME. FuzzServer runs one worker (each
## worker process starts its own Postgres) and minimises new inputs by 30
## runs, not 60 s: at ~40 inputs/s the default spent most of the time there.
FUZZTIME ?= 30s
fuzz:
	$(GO) test -run XXX -fuzz FuzzReadCommand -fuzztime $(FUZZTIME) ./server/imapd/
	$(GO) test -run XXX -fuzz FuzzServer -fuzztime $(FUZZTIME) -fuzzminimizetime 30x -parallel 1 ./server/imapd/
	$(GO) test -run XXX -fuzz FuzzParse -fuzztime $(FUZZTIME) ./server/message/
	$(GO) test -run XXX -fuzz FuzzParseDefinition -fuzztime $(FUZZTIME) ./server/query/

clean:
	rm -rf bin

## conformance-dovecot: every IMAP scenario against a private Dovecot (installs dovecot-imapd first if missing)
conformance-dovecot:
	GO=$(GO) sh conformance/dovecot.sh

## coverage: regenerate scenarios/COVERAGE.md (the scenario coverage matrix)
coverage:
	$(GO) run ./conformance/coverage
