# upflow — two commands matter: `make dev` (run everything locally) and `make test`.
SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
WEB_DEPS := web/node_modules/.installed
WEB_DIST := web/dist/index.html
WEB_SOURCES := $(shell find web/src web/public -type f 2>/dev/null) web/index.html web/package.json web/vite.config.ts web/tsconfig.json
PACKAGE_DIR := build/chalice
# x86_64 or arm64 (`make package LAMBDA_ARCH=arm64` needs Debian's gcc-aarch64-linux-gnu on x86_64).
LAMBDA_ARCH ?= x86_64
# The compiled row kernel (upflow/core/scan.c, loaded through ctypes; see docs/processing.md).
KERNEL := upflow/core/_scan.so

.PHONY: dev test lint typecheck pytest web-test web package chromium kernel bench-upload bench-processor bench-browser bench-pipeline clean

$(INSTALLED): requirements.txt requirements-dev.txt pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade 'pip<26.3'  # chalice 1.34 (chalice package drives pip) requires pip<26.3
	$(BIN)/pip install -q -r requirements-dev.txt
	$(BIN)/pip install -q --no-deps -e .
	@touch $@

$(WEB_DEPS): web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund
	@touch $@

$(WEB_DIST): $(WEB_DEPS) $(WEB_SOURCES)
	cd web && npm run build

web: $(WEB_DIST)

$(KERNEL): upflow/core/scan.c upflow/core/kernel_build.py | $(INSTALLED)
	$(BIN)/python -m upflow.core.kernel_build $@

kernel: $(KERNEL)

# Debian's Chromium drives the browser tests (never `playwright install`).
chromium:
	@test -x /usr/bin/chromium || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }

dev: $(INSTALLED) $(KERNEL) $(WEB_DIST)
	$(BIN)/upflow dev

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Strict for the product; tests may leave fixtures and helpers unannotated.
typecheck: $(INSTALLED)
	$(BIN)/mypy
	$(BIN)/mypy tests --allow-untyped-defs --allow-incomplete-defs --allow-untyped-calls

web-test: $(WEB_DEPS)
	cd web && npm run typecheck && npm test

pytest: $(INSTALLED) $(KERNEL) $(WEB_DIST) chromium
	$(BIN)/pytest --durations=15 $(PYTEST_ARGS)

test: lint typecheck web-test pytest

# Lambda architecture of the zip (functions and row kernel): the stack's upflow:lambdaArchitecture.
package: $(INSTALLED)
	$(BIN)/python -m upflow.build $(PACKAGE_DIR) --architecture $(LAMBDA_ARCH)

bench-upload: $(INSTALLED)
	$(BIN)/python bench/upload.py

bench-processor: $(INSTALLED) $(KERNEL)
	$(BIN)/python bench/processor.py

bench-browser: $(INSTALLED) $(WEB_DIST) chromium
	$(BIN)/python bench/browser_upload.py

# e.g. make bench-pipeline PIPELINE_ARGS="--size 64MiB --documents 10000"
bench-pipeline: $(INSTALLED) $(KERNEL)
	$(BIN)/python bench/pipeline.py $(PIPELINE_ARGS)

clean:
	rm -rf build api/vendor web/dist .pytest_cache .mypy_cache .ruff_cache $(KERNEL)
