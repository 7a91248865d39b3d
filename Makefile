# support-agent: every target sets itself up on a fresh machine (see `make help`).
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PORT   ?= 8000
STUDIO_PORT ?= 8123

.PHONY: help setup demo serve studio test fuzz lint eval bench worker clean browsers servers

help:  ## list targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-8s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -U pip
	# torch first and pinned: a CPU wheel of exactly this version is on these machines; anything
	# else pulls several GB of CUDA packages (STACK.md).
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)  ## create .venv and install everything (idempotent)

demo: setup  ## retail memory across two channels, then a bank disputed fee ending in a warm handoff
	$(BIN)/support-agent demo

serve: setup  ## run the API on http://127.0.0.1:$(PORT) (loads retail data, prints an API key)
	$(BIN)/support-agent load retail
	@echo "API key for tenant retail (use as: Authorization: Bearer <key>):"
	@$(BIN)/support-agent tenant create-key retail
	$(BIN)/support-agent serve --port $(PORT)

worker: setup  ## a dedicated memory pipeline worker (serve also runs one in-process)
	$(BIN)/support-agent worker

studio: setup  ## LangGraph Studio's local server (never port 2024: it is taken here)
	LANGGRAPH_CLI_NO_ANALYTICS=1 LANGGRAPH_NO_VERSION_CHECK=true LANGSMITH_TRACING=false \
		$(BIN)/langgraph dev --port $(STUDIO_PORT) --no-browser

test: setup browsers servers  ## run the test suite against real embedded PostgreSQL and Redis
	$(BIN)/pytest -q

servers:  ## Debian's redis-server (the Redis Cluster test starts three) via apt-get when missing
	@test -x /usr/bin/redis-server || { \
		echo "installing redis-server (apt-get) for the Redis Cluster test"; \
		apt-get install -y -q redis-server >/dev/null 2>&1 || \
		{ apt-get update -q >/dev/null && apt-get install -y -q redis-server >/dev/null; } || \
		echo "could not install redis-server: the Redis Cluster test will fail"; }

browsers:  ## Debian's chromium (browser tests) via apt-get when missing; the JS SDK (npm ci)
	@command -v chromium >/dev/null 2>&1 || { \
		echo "installing chromium (apt-get) for the browser tests"; \
		apt-get install -y -q chromium >/dev/null 2>&1 || \
		{ apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; } || \
		echo "could not install chromium: the browser tests will fail"; }
	@test -d tests/js/node_modules/@langchain/langgraph-sdk || \
		npm ci --prefix tests/js --no-audit --no-fund --loglevel=error

fuzz: setup  ## schemathesis, positive + negative data, >= 5,000 cases, new seed each run (~20 min)
	SUPPORT_AGENT_FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-400} SUPPORT_AGENT_FUZZ_MIN_CASES=5000 \
		SUPPORT_AGENT_FUZZ_PROCESSES=$${FUZZ_PROCESSES:-$$(nproc)} \
		SUPPORT_AGENT_FUZZ_SEED=$${FUZZ_SEED:-random} $(BIN)/pytest -q -s tests/test_fuzz.py

lint: setup  ## ruff, ruff format, mypy (strict) and the import-linter layer contracts
	$(BIN)/ruff check src tests evals bench
	$(BIN)/ruff format --check src tests evals bench
	$(BIN)/mypy
	$(BIN)/lint-imports

EVAL_DIR = $${DATA_DIR:-.data}

eval: setup  ## every evaluation suite (support-agent eval all) → report.json, report.md, plots under DATA_DIR/evals/report (~15 min)
	# the database suites reset the customers they play to their loaded state: DATA_DIR (default
	# .data/) should be an evaluation database, not one serving customers
	$(BIN)/support-agent eval all --out $(EVAL_DIR)/evals/report

bench: setup  ## benchmarks: memory loads, turns (CPU per node), pipeline, episodic search at 10k/100k/1M, concurrent HTTP load vs its floor (~15 min)
	$(BIN)/python bench/run.py

clean:  ## remove the venv and local data
	rm -rf $(VENV) .data
