# HealthGraph — the two commands: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test install bench bench-install bench-matcher bench-1m bench-engines bench-trace check generate services services-stop clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# pycanon (an independent check of the anonymiser) pins numpy 2.0 and older scipy: it lives in its own venv.
PYCANON := .venv-pycanon/.installed-stamp
$(PYCANON):
	$(PYTHON) -m venv .venv-pycanon
	.venv-pycanon/bin/python -m pip install --quiet "pycanon==1.3.6"
	touch $(PYCANON)

demo: install                  ## generate a province, load it, serve API + console on 127.0.0.1:8000
	$(BIN)/healthgraph demo

test: install $(PYCANON)       ## lint, then the test suite (benchmarks excluded)
	$(BIN)/ruff check graph ontology ingest services rules search models tests benchmarks
	$(BIN)/python -m pytest

check: install                 ## ontology structure + reasoner consistency
	$(BIN)/healthgraph ontology check

generate: install              ## regenerate ontology artefacts after editing ontology/healthgraph.ttl
	$(BIN)/healthgraph ontology generate

bench-install: install
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'

bench-matcher: bench-install   ## person matcher: 1M-record index, dedupe vs Splink, FEBRL4 + PR plot, fake_1000
	$(BIN)/python benchmarks/bench_matcher.py

bench: install                 ## load benchmark at 100k residents
	$(BIN)/python benchmarks/bench_load.py --residents 100000

bench-1m: install              ## load benchmark at 1M residents (several minutes)
	$(BIN)/python benchmarks/bench_load.py --residents 1000000

services: install               ## start Neo4j 5.26 and OpenSearch 2.19 on 127.0.0.1 (jars from Maven Central)
	$(BIN)/healthgraph services start

services-stop: install          ## stop them
	$(BIN)/healthgraph services stop

bench-engines: install         ## both graph engines and both search engines, side by side
	$(BIN)/python benchmarks/bench_engines.py --residents 20000
	$(BIN)/python benchmarks/bench_search.py --docs 100000

bench-trace: install           ## food trace-back on a 57k-station, 300k-delivery supply network
	$(BIN)/python benchmarks/bench_trace.py

.PHONY: bench-knowledge
bench-knowledge: install       ## triage accuracy, red flags, latency, knowledge search; the learned models vs a baseline
	$(BIN)/python benchmarks/bench_knowledge.py --residents 10000
	$(BIN)/python benchmarks/bench_triage_models.py

.PHONY: bench-rules
bench-rules: install           ## supervision core pack backtest, per-rule times: 100k on LadybugDB, 30k on both engines
	$(BIN)/python benchmarks/bench_rules.py --residents 100000
	$(BIN)/python benchmarks/bench_rules.py --residents 30000 --neo4j

clean:
	rm -rf var .pytest_cache
