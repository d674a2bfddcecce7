# Two commands on a fresh clone: `make demo` and `make test`. Only python3 (3.11+) is needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
OFFERRANK := $(BIN)/offerrank
# Scale the demo up with e.g. `make demo CUSTOMERS=20000 OFFERS=200`.
CUSTOMERS ?= 2000
PRODUCTS ?= 300
OFFERS ?= 80
DAYS ?= 120
SEED ?= 42

# Python that ruff checks; warehouse/bouncer_checks are the project's own dbt-bouncer checks.
PY_SOURCES := ml orchestration tests bench warehouse/bouncer_checks

.PHONY: install demo test lint format dagster bench lock clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# uv installs the pinned set in seconds; pip is the fallback where uv cannot be had.
$(VENV)/.installed: pyproject.toml requirements.lock | $(BIN)/python
	$(BIN)/python -m pip install --quiet uv && \
	  $(BIN)/uv pip install --quiet --python $(BIN)/python --compile-bytecode -c requirements.lock -e '.[dev]' || \
	  $(BIN)/python -m pip install --quiet -c requirements.lock -e '.[dev]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(OFFERRANK) db start
	$(OFFERRANK) generate --customers $(CUSTOMERS) --products $(PRODUCTS) --offers $(OFFERS) --days $(DAYS) --seed $(SEED)
	$(OFFERRANK) run --full-refresh
	@echo
	@echo "The tables are in $$($(OFFERRANK) db url): schemas raw, staging, marts and ml."
	@echo "Explore the graph and its runs:  make dagster   (then open http://127.0.0.1:3000)"
	@echo "Refresh the features by hand:    cd warehouse && ../$(BIN)/dbt build --profiles-dir ../profiles"
	@echo "Stop the database:               $(OFFERRANK) db stop"

# The suite lints the SQL (tests/warehouse/test_lint.py: sqlfluff's dbt templater needs a server)
# and checks the dbt project's conventions (tests/warehouse/test_project_conventions.py).
test: install
	$(BIN)/ruff check $(PY_SOURCES)
	$(BIN)/ruff format --check $(PY_SOURCES)
	$(BIN)/python -m pytest --numprocesses auto --dist loadfile --no-loadscope-reorder

lint: install
	$(BIN)/ruff check $(PY_SOURCES)
	$(BIN)/ruff format --check $(PY_SOURCES)
	$(OFFERRANK) db start
	cd warehouse && ../$(BIN)/sqlfluff lint models tests
	cd warehouse && ../$(BIN)/dbt docs generate --select 'fqn:* source:*' --profiles-dir ../profiles --quiet && \
	  COLUMNS=200 ../$(BIN)/dbt-bouncer run --config-file dbt-bouncer.yml --show-all-failures

format: install
	$(BIN)/ruff format $(PY_SOURCES)
	$(BIN)/ruff check --fix $(PY_SOURCES)

# dagster dev from the repository root, with the run history of `offerrank run` (DAGSTER_HOME).
dagster: install
	$(OFFERRANK) dev

# The benchmark harness (docs/performance.md) at its own default scale, about 50 candidates per
# customer; `make bench CUSTOMERS=100000` for the scale of issue 9's targets. It replaces the
# warehouse's data. OMP_WAIT_POLICY=passive: LightGBM's threads sleep instead of spinning on a
# busy machine, which steadies its timings.
bench: CUSTOMERS = 5000
bench: PRODUCTS = 1000
bench: OFFERS = 400
bench: install
	$(OFFERRANK) db start
	OMP_WAIT_POLICY=passive $(OFFERRANK) bench --customers $(CUSTOMERS) --products $(PRODUCTS) --offers $(OFFERS) --days $(DAYS) --seed $(SEED)

# Re-pin the dependency set after changing pyproject.toml.
lock: $(BIN)/python
	$(BIN)/python -m pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 --quiet -o requirements.lock

clean:
	-$(OFFERRANK) db stop
	rm -rf $(VENV) .offerrank warehouse/target warehouse/logs
