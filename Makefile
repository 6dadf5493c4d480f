# snapcompose — `make help` lists the targets.

GO       ?= go
BIN      := bin
FUZZTIME ?= 30s
BENCHTIME ?= 1s
# The private Postgres `make test` starts when TEST_DATABASE_URL is unset:
# one per checkout, under /tmp so the postgres user can reach it.
TEST_PGDIR ?= /tmp/snapcompose-test-$(shell printf '%s' "$(CURDIR)" | cksum | cut -d' ' -f1)
# onnxruntime's C library for the AI_AGENT scorer (DESIGN.md "The learned agent"): the
# file from npm's onnxruntime-node, fetched once into ORT_CACHE unless ONNXRUNTIME_LIB names one.
ORT_VERSION := 1.24.1
ORT_CACHE ?= $(HOME)/.cache/snapcompose/onnxruntime-$(ORT_VERSION)
ORT_TARBALL_PATH := package/bin/napi-v6/linux/x64/libonnxruntime.so.1
ORT_SIZE := 35057880
ORT_SHA256 := 53ef1ac028dd1b05554b8da28d9159eb3876f99868193d2aaa6e67f0243c23d4
ORT_USER_LIB := $(strip $(ONNXRUNTIME_LIB))
ONNXRUNTIME_LIB := $(or $(ORT_USER_LIB),$(ORT_CACHE)/libonnxruntime.so.1)
export ONNXRUNTIME_LIB

.DEFAULT_GOAL := help

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_\/-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## Build bin/snapcompose and bin/snapagent (static, no cgo).
	$(GO) build -o $(BIN)/snapcompose ./cmd/snapcompose
	CGO_ENABLED=0 $(GO) build -o $(BIN)/snapagent ./cmd/snapagent

.PHONY: postgres
postgres: ## Make sure PostgreSQL server binaries exist (installs Debian's package as root if missing).
	@if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || command -v pg_config >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing PostgreSQL (apt-get install postgresql)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	else echo "PostgreSQL server binaries not found: install them (apt-get install postgresql, brew install postgresql) or set DATABASE_URL"; exit 1; fi

.PHONY: glpk
glpk: ## Make sure GLPK's glpsol exists (the allocator's independent check; installs glpk-utils as root if missing).
	@if command -v glpsol >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing GLPK (apt-get install glpk-utils)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq glpk-utils >/dev/null; \
	else echo "glpsol not found: install glpk-utils (apt-get) or glpk (brew)"; exit 1; fi

.PHONY: chromium
chromium: ## Make sure Chromium exists for the dashboard's browser test (installs Debian's chromium as root if missing).
	@if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || command -v google-chrome >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing Chromium (apt-get install chromium) for the dashboard's browser test"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else echo "chromium not found: the dashboard's browser test is skipped (install chromium to run it)"; fi

# The Bitbrains trace `make pictures` plots allocations on (see data/README.md).
BITBRAINS ?= ../shared/data/bitbrains-rnd-2013-7

.PHONY: pictures
pictures: build onnxruntime chromium ## Redraw docs/: the evaluation plots and the dashboard's screenshots (needs BITBRAINS, a Bitbrains trace directory).
	$(BIN)/snapcompose eval agent --plot docs/eval-agent.png >/dev/null
	$(BIN)/snapcompose eval allocation --usage $(BITBRAINS) --plot docs/eval-allocation.png >/dev/null
	@url=$$($(BIN)/snapcompose db start --data-dir $(TEST_PGDIR) --ephemeral) || exit 1; \
	trap '$(BIN)/snapcompose db stop --data-dir $(TEST_PGDIR)' EXIT; \
	TEST_DATABASE_URL="$$url" SNAPCOMPOSE_SCREENSHOTS=$(CURDIR)/docs $(GO) test -count=1 -run 'TestDashboardInBrowser$$' ./cmd/snapcompose/

.PHONY: onnxruntime
onnxruntime: ## Make sure onnxruntime's C library exists (fetched once from npm onnxruntime-node@1.24.1 unless ONNXRUNTIME_LIB is set).
	@set -e; \
	if [ -n "$(ORT_USER_LIB)" ]; then \
	  [ -f "$(ORT_USER_LIB)" ] || { echo "ONNXRUNTIME_LIB=$(ORT_USER_LIB) does not exist"; exit 1; }; exit 0; \
	fi; \
	lib="$(ORT_CACHE)/libonnxruntime.so.1"; \
	if [ -f "$$lib" ] && [ "$$(wc -c <"$$lib" | tr -d ' ')" = "$(ORT_SIZE)" ]; then exit 0; fi; \
	if [ "$$(uname -sm)" != "Linux x86_64" ]; then echo "the cached onnxruntime is for Linux x86_64 only: set ONNXRUNTIME_LIB to an onnxruntime $(ORT_VERSION) shared library"; exit 1; fi; \
	command -v npm >/dev/null 2>&1 || { echo "npm not found: install Node.js (apt-get install npm), or set ONNXRUNTIME_LIB to an onnxruntime $(ORT_VERSION) shared library"; exit 1; }; \
	tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	echo "fetching onnxruntime $(ORT_VERSION): npm pack onnxruntime-node@$(ORT_VERSION) (about 86 MB, once) into $(ORT_CACHE)"; \
	tgz=$$(cd "$$tmp" && npm pack --silent --cache "$$tmp/npm-cache" onnxruntime-node@$(ORT_VERSION) | tail -n 1); \
	tar xzf "$$tmp/$$tgz" -C "$$tmp" $(ORT_TARBALL_PATH); \
	got_size=$$(wc -c <"$$tmp/$(ORT_TARBALL_PATH)" | tr -d ' '); got_sum=$$(sha256sum "$$tmp/$(ORT_TARBALL_PATH)" | cut -d' ' -f1); \
	if [ "$$got_size" != "$(ORT_SIZE)" ] || [ "$$got_sum" != "$(ORT_SHA256)" ]; then \
	  echo "$(ORT_TARBALL_PATH) from onnxruntime-node@$(ORT_VERSION) is $$got_size bytes, sha256 $$got_sum; want $(ORT_SIZE) bytes, sha256 $(ORT_SHA256)"; exit 1; \
	fi; \
	mkdir -p "$(ORT_CACHE)"; cp "$$tmp/$(ORT_TARBALL_PATH)" "$$lib.tmp.$$$$"; mv -f "$$lib.tmp.$$$$" "$$lib"; \
	echo "onnxruntime $(ORT_VERSION): $$lib (sha256 $(ORT_SHA256))"

.PHONY: run
run: build onnxruntime ## Build and serve on 127.0.0.1:8080 (managed Postgres under .snapcompose/ unless DATABASE_URL is set; AI_AGENT with model/negotiator.onnx; a snapagent serving examples/seed/live as production_server_1).
	@if [ -z "$$DATABASE_URL" ]; then $(MAKE) --no-print-directory postgres; fi
	@if [ -z "$$SNAPCOMPOSE_TOKENS_FILE" ]; then echo "API token: .snapcompose/dev-token (made on first run; send it as Authorization: Bearer \$$(cat .snapcompose/dev-token))"; fi
	@set -u; tmp=$$(mktemp -d); agent=""; \
	stop() { [ -n "$$agent" ] && kill $$agent 2>/dev/null; wait 2>/dev/null; rm -rf "$$tmp"; }; trap stop EXIT; trap 'exit 130' INT TERM; \
	SNAPAGENT_DEMO_TOKEN=$$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n'); export SNAPAGENT_DEMO_TOKEN; \
	(umask 077 && printf '%s\n' "$$SNAPAGENT_DEMO_TOKEN" >"$$tmp/agent.token"); \
	echo "snapagent on $(DEMO_AGENT): examples/seed/live as host production_server_1 (examples/seed/hosts.yaml)"; \
	$(BIN)/snapagent --listen $(DEMO_AGENT) --root $(CURDIR)/examples/seed/live --token-file "$$tmp/agent.token" \
	  --sample-interval 5s --hostname production_server_1 2>"$$tmp/agent.log" & agent=$$!; \
	$(BIN)/snapcompose serve --addr $${SNAPCOMPOSE_ADDR:-127.0.0.1:8080} --catalog $${SNAPCOMPOSE_CATALOG:-examples/seed/catalog} \
	  --hosts $${SNAPCOMPOSE_HOSTS:-examples/seed/hosts.yaml}

.PHONY: test
test: build glpk onnxruntime chromium ## Run every test (a private Postgres is started unless TEST_DATABASE_URL is set).
	@if [ -n "$$TEST_DATABASE_URL" ]; then \
	  $(GO) test -race -count=1 ./...; \
	else \
	  $(MAKE) --no-print-directory postgres || exit 1; \
	  url=$$($(BIN)/snapcompose db start --data-dir $(TEST_PGDIR) --ephemeral) || exit 1; \
	  trap '$(BIN)/snapcompose db stop --data-dir $(TEST_PGDIR)' EXIT; \
	  TEST_DATABASE_URL="$$url" $(GO) test -race -count=1 ./...; \
	fi

# make model: the committed model is trained on MODEL_N compositions simulated with
# MODEL_SEED into a fresh private Postgres (removed afterwards).
MODEL_SEED ?= 2026
MODEL_N ?= 48000
MODEL_PGDIR ?= /tmp/snapcompose-model-$(shell printf '%s' "$(CURDIR)" | cksum | cut -d' ' -f1)

.PHONY: model
model: build ## Regenerate model/negotiator.onnx and its card from the simulator (seed 2026, 48,000 compositions; byte for byte).
	@$(MAKE) --no-print-directory postgres || exit 1
	@set -e; \
	$(BIN)/snapcompose db stop --data-dir $(MODEL_PGDIR) >/dev/null 2>&1 || true; \
	rm -rf $(MODEL_PGDIR); \
	url=$$($(BIN)/snapcompose db start --data-dir $(MODEL_PGDIR) --ephemeral); \
	trap '$(BIN)/snapcompose db stop --data-dir $(MODEL_PGDIR); rm -rf $(MODEL_PGDIR)' EXIT; \
	DATABASE_URL="$$url" $(BIN)/snapcompose migrate up >/dev/null; \
	DATABASE_URL="$$url" $(BIN)/snapcompose train --simulate $(MODEL_N) --seed $(MODEL_SEED) --promote --out model; \
	sha256sum model/negotiator.onnx model/negotiator.card.json

.PHONY: db/reset
db/reset: build ## Delete the managed development database under .snapcompose/ (stops it first).
	-$(BIN)/snapcompose db stop --data-dir .snapcompose
	rm -rf .snapcompose/postgres

.PHONY: bench
bench: build glpk onnxruntime ## Run the benchmarks and print their figures (a private Postgres is started for the database ones).
	@if [ -n "$$TEST_DATABASE_URL" ]; then \
	  $(GO) test -run='^$$' -bench=. -benchmem -benchtime=$(BENCHTIME) ./...; \
	else \
	  url=$$($(BIN)/snapcompose db start --data-dir $(TEST_PGDIR) --ephemeral) || exit 1; \
	  trap '$(BIN)/snapcompose db stop --data-dir $(TEST_PGDIR)' EXIT; \
	  TEST_DATABASE_URL="$$url" $(GO) test -run='^$$' -bench=. -benchmem -benchtime=$(BENCHTIME) ./...; \
	fi

.PHONY: bench/allocator
bench/allocator: glpk ## Allocator vs glpsol on the same 1,000- and 10,000-service instances, side by side.
	$(GO) test -run='^$$' -bench='Allocate1000$$|Allocate10000$$|GLPSOL1000$$|GLPSOL10000$$' -benchtime=$(BENCHTIME) ./internal/allocator/

.PHONY: bench/agent
bench/agent: onnxruntime ## AI_AGENT: candidates/s batched vs one Run per candidate, p50/p99 plan latency (seed, ~1,300 conflicts).
	$(GO) test -run='^$$' -bench='AIAgent' -benchtime=$(BENCHTIME) ./internal/orchestrator/

# `make load`: rate (compositions a second), duration and server processes.
LOAD_RATE ?= 10
LOAD_DURATION ?= 60s
LOAD_SERVERS ?= 2

.PHONY: load
load: build onnxruntime ## Load and soak: LOAD_RATE compositions/s for LOAD_DURATION against LOAD_SERVERS servers on one database; checks exactly-once, the pool and memory.
	@url=$$($(BIN)/snapcompose db start --data-dir $(TEST_PGDIR) --ephemeral) || exit 1; \
	trap '$(BIN)/snapcompose db stop --data-dir $(TEST_PGDIR)' EXIT; \
	TEST_DATABASE_URL="$$url" SNAPCOMPOSE_LOAD=1 LOAD_RATE=$(LOAD_RATE) LOAD_DURATION=$(LOAD_DURATION) LOAD_SERVERS=$(LOAD_SERVERS) \
	  $(GO) test -count=1 -timeout 60m -run '^TestLoad$$' -v ./cmd/snapcompose/ | grep -E '^(load:|--- |ok|FAIL|\s+load_test)'

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

# make demo: where the demo's snapagent listens (examples/seed/hosts.yaml names it).
DEMO_AGENT := 127.0.0.1:7071

.PHONY: demo
demo: build onnxruntime ## Plan the seed manifest end to end: a snapagent on loopback captures examples/seed/live and a demo service.
	@test -d cmd/snapagent || { echo "make demo needs cmd/snapagent, which is not in this checkout"; exit 1; }
	CGO_ENABLED=0 $(GO) build -o $(BIN)/snapagent ./cmd/snapagent
	$(GO) build -o examples/seed/live/var/app/bin/api ./examples/seed/live/demo-service
	@set -u; tmp=$$(mktemp -d); pids=""; \
	stop() { for p in $$pids; do kill $$p 2>/dev/null; done; for p in $$pids; do wait $$p 2>/dev/null; done; rm -rf "$$tmp"; }; \
	trap stop EXIT; trap 'exit 130' INT TERM; \
	up() { if command -v curl >/dev/null 2>&1; then curl -fs -o /dev/null "$$1"; else wget -q -O /dev/null "$$1"; fi; }; \
	wait_for() { n=0; until up "$$1"; do n=$$((n+1)); if [ $$n -ge 50 ]; then echo "$$2 did not come up; its log:"; cat "$$3"; return 1; fi; sleep 0.2; done; }; \
	SNAPAGENT_DEMO_TOKEN=$$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n'); export SNAPAGENT_DEMO_TOKEN; \
	(umask 077 && printf '%s\n' "$$SNAPAGENT_DEMO_TOKEN" >"$$tmp/agent.token"); \
	echo "== starting the demo's api: examples/seed/live/var/app/bin/api on 127.0.0.1:9090 (LOG_LEVEL=warn, ORDERS_API_TOKEN set)"; \
	(cd examples/seed/live/var/app && exec env -i LOG_LEVEL=warn ORDERS_API_TOKEN=tok_live_demo_2f61c0 ./bin/api) 2>"$$tmp/api.log" & pids="$$pids $$!"; \
	echo "== starting snapagent on $(DEMO_AGENT), serving examples/seed/live with a fresh random token"; \
	$(BIN)/snapagent --listen $(DEMO_AGENT) --root $(CURDIR)/examples/seed/live --token-file "$$tmp/agent.token" \
	  --sample-interval 1s --hostname production_server_1 2>"$$tmp/agent.log" & pids="$$pids $$!"; \
	wait_for http://127.0.0.1:9090/healthz "the demo's api" "$$tmp/api.log" || exit 1; \
	wait_for http://$(DEMO_AGENT)/healthz snapagent "$$tmp/agent.log" || exit 1; \
	echo "== letting snapagent take a few usage samples"; sleep 3; \
	echo "== the manifest's own strategy, AI_AGENT, with model/negotiator.onnx:"; \
	echo "== $(BIN)/snapcompose plan -f examples/seed/manifest.json --catalog examples/seed/catalog --hosts examples/seed/hosts.yaml"; \
	echo; \
	$(BIN)/snapcompose plan -f examples/seed/manifest.json --catalog examples/seed/catalog --hosts examples/seed/hosts.yaml || exit 1; \
	echo; echo "== the same with --strategy PRIORITY:"; echo; \
	$(BIN)/snapcompose plan -f examples/seed/manifest.json --catalog examples/seed/catalog --hosts examples/seed/hosts.yaml --strategy PRIORITY

.PHONY: clean
clean: ## Remove build output.
	rm -rf $(BIN)
