# assistants-go: the common tasks. Go 1.26+ (and PostgreSQL for its tests: ASSISTANTS_TEST_DATABASE_URL, default the local test database); tools come through the Go module proxy.
GO      ?= go
PKGS    := ./...
SPEC    := openapi/assistants.yaml

.PHONY: all generate check-generated footprint vet test test-short demo serve fuzz chaos load lint bench bench-peers bench-short

all: test

## generate: regenerate gen/, gen/genserver/, the typed calls (calls.gen.go) and helpers' stream calls from the spec
## (oapi-codegen pinned in tools/go.mod, then internal/gencalls; the directives are in gen/generate.go)
generate:
	$(GO) generate ./gen

## check-generated: fail when a fresh generation differs from the committed files or they have uncommitted changes
check-generated:
	GO="$(GO)" SPEC="$(SPEC)" ./scripts/check-generated.sh

vet:
	$(GO) vet $(PKGS)

## test: everything CI runs
test: check-generated vet
	$(GO) test -race -count=1 -timeout 20m $(PKGS)
	$(MAKE) bench-short
	$(MAKE) footprint

STATICCHECK_VERSION ?= v0.8.2

## lint: go vet, staticcheck and govulncheck, all through the Go module proxy
lint: vet
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...
	./scripts/govulncheck.sh

FUZZTIME ?= 30s
FUZZ_TARGETS := .:FuzzNewAPIError ./helpers:FuzzSSEDecoder ./helpers:FuzzAccumulator ./server:FuzzServerRequests ./server:FuzzParseToolCalls ./server:FuzzDeepBodies

## fuzz: run every fuzz target for FUZZTIME each (their seed corpora also run in make test)
fuzz:
	@for t in $(FUZZ_TARGETS); do pkg=$${t%%:*}; name=$${t##*:}; \
	  echo "fuzz $$pkg $$name for $(FUZZTIME)"; \
	  $(GO) test $$pkg -run '^$$' -fuzz "^$$name$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 5s || exit 1; \
	done

## chaos: 200 concurrent conversations against the embedded server with seeded faults, before and after the work
## (lost replies, cut bodies and streams, resets mid-handler: internal/chaos DefaultFaults); then --restarts: 200
## conversations against serve processes killed with SIGKILL and restarted during the run, on SQLite (one replica)
## and on PostgreSQL with two replicas (ASSISTANTS_TEST_DATABASE_URL, default the local test database)
chaos:
	$(GO) run ./cmd/assistants chaos --conversations 200
	$(GO) run ./cmd/assistants chaos --conversations 200 --restarts

LOAD_CLIENTS  ?= 64
LOAD_DURATION ?= 60s

## load: LOAD_CLIENTS concurrent clients holding full conversations for LOAD_DURATION against serve on loopback, on SQLite
## (one server) then PostgreSQL (two replicas; ASSISTANTS_TEST_DATABASE_URL, default the local test database); prints
## conversations/s, p50/p99 per route, errors and resident memory for docs/benchmarks.md (internal/load)
load:
	$(GO) run ./internal/load -clients $(LOAD_CLIENTS) -duration $(LOAD_DURATION)

## demo: the main job against the embedded server (or OPENAI_BASE_URL when set)
demo:
	$(GO) run ./cmd/assistants demo

## serve: the embedded Assistants server on 127.0.0.1:8080
serve:
	$(GO) run ./cmd/assistants serve --addr 127.0.0.1:8080

BENCH_COUNT ?= 10
BENCH_TIME  ?= 500ms

## bench-peers: ours vs openai-go vs go-openai vs bare net/http, BENCH_COUNT interleaved runs; writes docs/benchmarks.md
bench-peers:
	cd bench && $(GO) test -c -o peers.test . && \
	mkdir -p results && : > results/peers.raw.txt && : > results/load.txt && \
	for i in $$(seq $(BENCH_COUNT)); do \
	  echo "bench-peers: run $$i of $(BENCH_COUNT)"; \
	  { cut -d' ' -f1 /proc/loadavg >> results/load.txt; } 2>/dev/null || true; \
	  ./peers.test -test.run '^$$' -test.bench . -test.benchtime $(BENCH_TIME) -test.v >> results/peers.raw.txt || { rm -f peers.test; exit 1; }; \
	done; \
	rm -f peers.test && \
	$(GO) run ./cmd/report -raw results/peers.raw.txt -clean results/peers.txt -load results/load.txt -out ../docs/benchmarks.md -command "make bench-peers BENCH_COUNT=$(BENCH_COUNT)" && \
	rm -f results/peers.raw.txt && echo "bench-peers: wrote docs/benchmarks.md and bench/results/peers.txt"

## footprint: a client-only program links none of the server's or generator's dependencies; its size beside go-openai's
## (go mod download first: the consumer's go mod tidy runs offline, from the module cache)
footprint:
	$(GO) mod download
	cd bench && $(GO) test -count=1 -run '^TestConsumer(Footprint|Tidy)$$' -v .

## bench-short: every peer benchmark once, so the bench module keeps building and running; and the tests of
## the report that writes docs/benchmarks.md (it keeps the document's server sections)
bench-short:
	cd bench && $(GO) test -run '^$$' -bench . -benchtime=1x ./...
	cd bench && $(GO) test -count=1 ./cmd/...
