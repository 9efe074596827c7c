# assistants-go: the common tasks. Only Go (1.25+) is needed; tools come through the Go module proxy.
GO      ?= go
PKGS    := ./...
SPEC    := openapi/assistants.yaml
GENFILE := gen/assistants.gen.go

.PHONY: all generate check-generated vet test test-short demo serve fuzz chaos lint bench bench-peers

all: test

## generate: regenerate gen/ from the spec (oapi-codegen pinned in tools.go)
generate:
	$(GO) generate ./gen

## check-generated: fail when a fresh generation differs from gen/ or gen/ has uncommitted or untracked files
check-generated:
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	sed 's|^output:.*|output: '"$$tmp"'/gen.go|' gen/config.yaml > "$$tmp/config.yaml" && \
	$(GO) run github.com/oapi-codegen/oapi-codegen/v2/cmd/oapi-codegen -config "$$tmp/config.yaml" $(SPEC) && \
	if ! cmp -s "$$tmp/gen.go" $(GENFILE); then echo "check-generated: $(GENFILE) is stale; run 'make generate' and commit"; diff -u $(GENFILE) "$$tmp/gen.go" | head -40; exit 1; fi && \
	if [ -d .git ] || git rev-parse --git-dir >/dev/null 2>&1; then \
	  st=$$(git status --porcelain -- gen openapi); \
	  if [ -n "$$st" ]; then echo "check-generated: uncommitted or untracked changes in gen/ or openapi/:"; echo "$$st"; exit 1; fi; \
	fi && echo "check-generated: gen/ is up to date"

vet:
	$(GO) vet $(PKGS)

## test: everything CI runs
test: check-generated vet
	$(GO) test -race -count=1 -timeout 20m $(PKGS)

STATICCHECK_VERSION ?= v0.8.2

## lint: go vet, staticcheck and govulncheck, all through the Go module proxy
lint: vet
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...
	./scripts/govulncheck.sh

## demo: the main job against the embedded server (or OPENAI_BASE_URL when set)
demo:
	$(GO) run ./cmd/assistants demo

## serve: the embedded Assistants server on 127.0.0.1:8080
serve:
	$(GO) run ./cmd/assistants serve --addr 127.0.0.1:8080
