# streamjoin: `make demo` runs the join on generated data; `make test` runs the suite.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin

# What mypyc compiles (dataflows/hotpath/status.py lists the modules) and what
# their types come from. Python imports a compiled module's extension before
# its source, so a change here rebuilds the extensions in place.
HOT_SOURCES := $(wildcard joins/*.py state/*.py dataflows/inputs/*.py dataflows/outputs/*.py \
                          dataflows/hotpath/*.py) setup.py pyproject.toml

.PHONY: install check test test-fast demo bench clean

$(BIN)/streamjoin: pyproject.toml setup.py
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (Python 3.11)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip "setuptools>=77" wheel
	# (pip would compile the hot path too; the rule below does it once, with
	# this environment's mypy and third-party stubs)
	STREAMJOIN_PURE_PYTHON=1 $(BIN)/pip install --quiet -e ".[dev]"

# The hot path compiled in place (setup.py), again whenever a source changed;
# pure Python where mypyc or the C compiler is missing.
$(VENV)/.hotpath: $(HOT_SOURCES) $(BIN)/streamjoin
	$(BIN)/python setup.py --quiet build_ext --inplace
	@touch $@

install: $(VENV)/.hotpath

check: install
	$(BIN)/ruff check joins state recovery dataflows tests bench grafana scripts setup.py
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/python -m dataflows.hotpath

test: check
	$(BIN)/pytest -q

test-fast: install
	$(BIN)/pytest -q -m "not slow"

demo: install
	$(BIN)/streamjoin demo --out demo-out

bench: install
	$(BIN)/python bench/state_bench.py

clean:
	rm -rf $(VENV) demo-out build .pytest_cache .mypy_cache .ruff_cache
	find joins state dataflows -name '*.so' -delete
	rm -f streamjoin_hotpath__mypyc.* streamjoin_hotpath.sources.json
