# snapcompose — `make help` lists the targets.

GO       ?= go
BIN      := bin
FUZZTIME ?= 30s
BENCHTIME ?= 1s

.DEFAULT_GOAL := help

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_\/-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## Build bin/snapcompose.
	$(GO) build -o $(BIN)/snapcompose ./cmd/snapcompose

.PHONY: run
run: build ## Build, then plan the example composition (examples/seed) and print it.
	$(BIN)/snapcompose plan -f examples/seed/manifest.templates.json --catalog examples/seed/catalog

.PHONY: test
test: ## Run every test: unit, golden, property, schema, fuzz seeds, layering.
	$(GO) test -race -count=1 ./...

.PHONY: bench
bench: ## Run the benchmarks and print their figures (plan time for the example and for 1,000 services).
	$(GO) test -run='^$$' -bench=. -benchmem -benchtime=$(BENCHTIME) ./...

.PHONY: lint
lint: ## Check formatting, go vet and the package layering rule.
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$unformatted" ]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) test -count=1 -run TestLayering ./internal/domain/

.PHONY: fuzz
fuzz: ## Run every fuzz target for FUZZTIME each (default 30s).
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for target in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$target"; \
	    $(GO) test -run='^$$' -fuzz="^$$target$$" -fuzztime=$(FUZZTIME) $$pkg; \
	  done; \
	done

.PHONY: golden
golden: ## Rewrite golden files after an intended change of output.
	$(GO) test ./cmd/snapcompose/ -run TestGolden -update

.PHONY: clean
clean: ## Remove build output.
	rm -rf $(BIN)
