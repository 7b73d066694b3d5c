# The two commands: `make run` and `make test`. Each does all of its own set-up.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
PROTO_FILES := $(shell find proto -name '*.proto' 2>/dev/null)
PROTO_STAMP := $(VENV)/.proto

# Regenerate docs/config-reference.md from the config dataclasses.
config-doc: install
	$(PY) scripts/gen-config-doc.py

.PHONY: config-doc
.PHONY: run test install proto proto-doc test-deps bench lint typecheck clean checksums

run: install proto
	$(VENV)/bin/elemta serve $(if $(CONFIG),-c $(CONFIG),)

test: install proto test-deps
	bash scripts/run-tests.sh $(PYTEST_ARGS)

install: $(STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml $(PY) $(wildcard external-plugins/sdk/python/pyproject.toml)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[test]'
	@if [ -f external-plugins/sdk/python/pyproject.toml ]; then \
		$(PIP) install -q -e external-plugins/sdk/python; fi
	touch $(STAMP)

# gRPC stubs are generated, never committed (see scripts/gen-proto.sh).
proto: $(PROTO_STAMP)

$(PROTO_STAMP): $(STAMP) $(PROTO_FILES) scripts/gen-proto.sh
	bash scripts/gen-proto.sh $(PY)
	touch $(PROTO_STAMP)

# The plugin protocol reference, rendered from proto/ (tests/unit/docs fails while it is stale).
proto-doc: install
	$(PY) scripts/gen-proto-doc.py --out docs/plugin-proto-reference.md

# External plugins' catalog.toml pin the sha256 of every file they run; refresh them after
# editing a plugin (tests/unit/external/test_catalogs.py fails while they are stale).
checksums: install
	$(VENV)/bin/elemta plugin pin $(wildcard external-plugins/*/catalog.toml)

# Real servers the tests drive (apt packages listed in tests/services/apt-packages.txt).
test-deps:
	bash scripts/install-system-deps.sh $$(grep -v '^#' tests/services/apt-packages.txt)

bench: install proto test-deps
	$(PY) -m tests.bench.run $(BENCH_ARGS)

lint: install
	$(VENV)/bin/ruff check elemta_core builtin_plugins tests

typecheck: install
	$(VENV)/bin/mypy elemta_core

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache build *.egg-info
