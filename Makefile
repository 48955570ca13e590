# crawlcache — every target needs only Go (see README).
GO      ?= go
BIN     ?= bin/crawlcache
PKGS    ?= ./...

.PHONY: build test test-short race bench lint run soak clean

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

## soak: long reliability tests (kill -9 loops, store outages, 600-page fault crawl).
soak:
	CRAWLCACHE_SOAK=1 $(GO) test -count=1 -timeout 30m -run Soak -v ./e2e/

clean:
	rm -rf bin
