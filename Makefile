# HealthGraph — the two commands: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test install bench bench-1m check generate clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: install                  ## generate a province, load it, serve API + console on 127.0.0.1:8000
	$(BIN)/healthgraph demo

test: install                  ## lint, then the test suite (benchmarks excluded)
	$(BIN)/ruff check graph ontology ingest services rules search models tests benchmarks
	$(BIN)/python -m pytest

check: install                 ## ontology structure + reasoner consistency
	$(BIN)/healthgraph ontology check

generate: install              ## regenerate ontology artefacts after editing ontology/healthgraph.ttl
	$(BIN)/healthgraph ontology generate

bench: install                 ## load benchmark at 100k residents
	$(BIN)/python benchmarks/bench_load.py --residents 100000

bench-1m: install              ## load benchmark at 1M residents (several minutes)
	$(BIN)/python benchmarks/bench_load.py --residents 1000000

clean:
	rm -rf var .pytest_cache
