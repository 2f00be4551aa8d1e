# vmbench: `make bench` runs the default suite and writes its report; `make test` runs the tests.
# Both do all set-up first (host packages and daemons as root, then the Python venv).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
SCENARIO ?= scenarios/default.toml
BENCH_ARGS ?=
# BUDGET=20m: start no trial after 20 minutes (vmbench run --time-budget); STRICT=1: exit 1
# also when something could not run on this host (vmbench run --strict).
BUDGET ?=
STRICT ?=
# What the venv gets besides vmbench: test and lint tools, ansible-core for `vmbench fleet`.
# Hosts of a fleet run set VENV_EXTRAS= (they only run the suite).
VENV_EXTRAS ?= [dev,fleet]

.PHONY: help setup host host-tests venv bytecode bench test test-unit lint format doctor report clean

help:
	@echo "make bench    run $(SCENARIO) and write results/<run_id>/ (BENCH_ARGS=--quick for a short run,"
	@echo "              BUDGET=20m to start no trial after 20 minutes, STRICT=1 to fail on what cannot run here)"
	@echo "make test     unit and integration tests on the real engines"
	@echo "make lint     ruff check and format check, mypy on bench/"
	@echo "make report   re-render the report of the newest run"
	@echo "make doctor   which backends can run here, and why not"
	@echo "make clean    remove containers and VMs left by vmbench runs, and the venv"

setup: host venv

host:
	@bash scripts/setup-host.sh

host-tests:  # what `make bench` needs, plus what only the tests use (LibreOffice, ...)
	@bash scripts/setup-host.sh --tests

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "setup: installing vmbench and its Python packages into $(VENV) (log: $(VENV)/pip.log)"
	@{ $(BIN)/pip install -q --upgrade pip && $(BIN)/pip install -q --no-compile -e '.$(VENV_EXTRAS)'; } \
		>$(VENV)/pip.log 2>&1 || { grep -v '^WARNING: Location' $(VENV)/pip.log | tail -20; \
		echo "setup: pip install failed; see $(VENV)/pip.log"; exit 1; }
	@$(BIN)/python -c "import bench, docker, psutil, pandas, matplotlib, rich" \
		|| { echo "setup: Python packages did not install"; exit 1; }
	@$(MAKE) --no-print-directory bytecode
	@touch $@

# Byte-compile the venv's packages and bench/ once. Machines and images that set
# PYTHONDONTWRITEBYTECODE=1 (with pip's --no-compile above) never write .pyc files, so every
# vmbench command would compile pandas, matplotlib and scipy again (3.4 s of a 9.4 s report);
# .pyc files that exist are read even when writing them is disabled. Only changed files are
# compiled again, so the targets that run vmbench call this too.
bytecode:
	@$(BIN)/python -m compileall -q -j 0 $(VENV)/lib bench >/dev/null \
		|| echo "setup: could not byte-compile everything (vmbench runs, only slower to start)"

bench: setup bytecode
	$(BIN)/vmbench run $(SCENARIO) $(if $(BUDGET),--time-budget $(BUDGET)) \
		$(if $(filter 1 yes true,$(STRICT)),--strict) $(BENCH_ARGS)

test: host-tests venv
	$(BIN)/pytest

test-unit: venv
	$(BIN)/pytest -m "not integration"

lint: venv
	$(BIN)/ruff check bench tests benchmarks
	$(BIN)/ruff format --check bench tests benchmarks
	$(BIN)/mypy  # bench/, as [tool.mypy] in pyproject.toml says

format: venv
	$(BIN)/ruff check --fix bench tests benchmarks
	$(BIN)/ruff format bench tests benchmarks

doctor: venv
	$(BIN)/vmbench doctor

report: venv bytecode
	$(BIN)/vmbench report

clean:
	@test -x $(BIN)/vmbench && $(BIN)/vmbench clean || true
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache
