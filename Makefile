# crawlcache — every target needs only Go (see README).
GO      ?= go
BIN     ?= bin/crawlcache
PKGS    ?= ./...

.PHONY: build test test-short race bench lint run soak clean check-warc

build:
	$(GO) build -o $(BIN) .

## test: the whole suite with the race detector (what CI runs).
test:
	$(GO) vet $(PKGS)
	$(GO) test -race -count=1 -timeout 20m $(PKGS)

## test-short: the suite without the race detector, for quick iteration.
test-short:
	$(GO) test -count=1 -timeout 10m $(PKGS)

## bench: crawl scenarios against plain colly (table in docs/BENCH.md and the
## README), then the Go micro-benchmarks of the cache, frontier and pipeline.
bench:
	$(GO) run ./bench -out docs/BENCH.md
	$(GO) test -run '^$$' -bench . -benchmem -count=1 -timeout 30m ./cache/ ./frontier/ ./pipeline/

## run: the main job, offline: the bundled demo shop on 127.0.0.1:8089 crawled
## twice with configs/example.yaml on the embedded store (see README).
run: build
	$(BIN) demo

## lint: go vet and a gofmt check.
lint:
	$(GO) vet $(PKGS)
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

## check-warc: an independent reader (npm's warcio) must list a `cache export`
## file's records, statuses and payload digests (TestWarcioIndex). Needs npm;
## without it, or without the npm registry, the check is skipped with a note.
WARCIO_DIR ?= .cache/warcio
check-warc:
	@if ! command -v npm >/dev/null 2>&1; then echo "check-warc: npm not found, skipped"; \
	elif ! npm install --silent --no-audit --no-fund --prefix $(WARCIO_DIR) warcio@2.4.11 >/dev/null 2>&1; then \
		echo "check-warc: could not install warcio from npm, skipped"; \
	else CRAWLCACHE_WARCIO=$(CURDIR)/$(WARCIO_DIR)/node_modules/.bin/warcio $(GO) test -count=1 -run TestWarcioIndex -v ./warc/; fi

## soak: long reliability tests (kill -9 loops, store outages, 600-page fault crawl).
soak:
	CRAWLCACHE_SOAK=1 $(GO) test -count=1 -timeout 30m -run Soak -v ./e2e/

clean:
	rm -rf bin
