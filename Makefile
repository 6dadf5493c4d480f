# snapcompose — `make help` lists the targets.

GO       ?= go
BIN      := bin
FUZZTIME ?= 30s
BENCHTIME ?= 1s
# The private Postgres `make test` starts when TEST_DATABASE_URL is unset:
# one per checkout, under /tmp so the postgres user can reach it.
TEST_PGDIR ?= /tmp/snapcompose-test-$(shell printf '%s' "$(CURDIR)" | cksum | cut -d' ' -f1)

.DEFAULT_GOAL := help

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_\/-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## Build bin/snapcompose.
	$(GO) build -o $(BIN)/snapcompose ./cmd/snapcompose

.PHONY: postgres
postgres: ## Make sure PostgreSQL server binaries exist (installs Debian's package as root if missing).
	@if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || command -v pg_config >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing PostgreSQL (apt-get install postgresql)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	else echo "PostgreSQL server binaries not found: install them (apt-get install postgresql, brew install postgresql) or set DATABASE_URL"; exit 1; fi

.PHONY: run
run: build ## Build and serve on 127.0.0.1:8080 (managed Postgres under .snapcompose/ unless DATABASE_URL is set).
	@if [ -z "$$DATABASE_URL" ]; then $(MAKE) --no-print-directory postgres; fi
	$(BIN)/snapcompose serve --addr $${SNAPCOMPOSE_ADDR:-127.0.0.1:8080}

.PHONY: test
test: build ## Run every test (a private Postgres is started unless TEST_DATABASE_URL is set).
	@if [ -n "$$TEST_DATABASE_URL" ]; then \
	  $(GO) test -race -count=1 ./...; \
	else \
	  $(MAKE) --no-print-directory postgres || exit 1; \
	  url=$$($(BIN)/snapcompose db start --data-dir $(TEST_PGDIR) --ephemeral) || exit 1; \
	  trap '$(BIN)/snapcompose db stop --data-dir $(TEST_PGDIR)' EXIT; \
	  TEST_DATABASE_URL="$$url" $(GO) test -race -count=1 ./...; \
	fi

.PHONY: db/reset
db/reset: build ## Delete the managed development database under .snapcompose/ (stops it first).
	-$(BIN)/snapcompose db stop --data-dir .snapcompose
	rm -rf .snapcompose/postgres

.PHONY: bench
bench: build ## Run the benchmarks and print their figures (a private Postgres is started for the database ones).
	@if [ -n "$$TEST_DATABASE_URL" ]; then \
	  $(GO) test -run='^$$' -bench=. -benchmem -benchtime=$(BENCHTIME) ./...; \
	else \
	  url=$$($(BIN)/snapcompose db start --data-dir $(TEST_PGDIR) --ephemeral) || exit 1; \
	  trap '$(BIN)/snapcompose db stop --data-dir $(TEST_PGDIR)' EXIT; \
	  TEST_DATABASE_URL="$$url" $(GO) test -run='^$$' -bench=. -benchmem -benchtime=$(BENCHTIME) ./...; \
	fi

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
