# The two commands: `make demo` (install, generate the demo survey, train, embed, index, serve) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
N ?= 5000
SEED ?= 0
WORKDIR ?= work/demo

.PHONY: install demo build lint test browser-deps eval clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip

# torch is pinned here, not in pyproject: 2.13.0 is the CPU wheel these machines carry; a GPU box keeps its CUDA build.
$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install torch==2.13.0
	$(BIN)/pip install -e ".[test]"
	touch $@

install: $(VENV)/.installed

build: install
	$(BIN)/galsearch demo --n $(N) --seed $(SEED) --workdir $(WORKDIR) --out data/demo --no-serve

demo: build
	$(BIN)/galsearch serve --workdir $(WORKDIR)

eval: install
	$(BIN)/galsearch eval --workdir $(WORKDIR) --json

# Debian's Chromium drives the browser tests; Playwright never downloads a browser of its own.
browser-deps:
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium)

# Imports run one way (the contracts in pyproject.toml) and the style checks pass, before any test runs.
lint: install
	$(BIN)/lint-imports
	$(BIN)/ruff check .

test: lint browser-deps
	$(BIN)/python -m pytest -q

clean:
	rm -rf work data/demo
