# kedro-mlflow-starter: `make test` runs the test suite, `make demo` the quickstart,
# `make bench` the performance table. Each builds its own virtualenv from the project files.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export KEDRO_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := 1
export MLFLOW_ENABLE_ASYNC_LOGGING := false

.PHONY: venv airflow-venv test demo bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# --no-compile: byte-compiling every installed module costs as much as the install itself;
# Python compiles (and caches) the modules the tests import, on first import.
venv: $(BIN)/python
	$(BIN)/pip install --quiet --no-compile -e '.[test]'

# The orchestrated-run tests drive Airflow from its own cached virtualenv (.cache/airflow-venv):
# built once (~1 min), rebuilt only when tests/airflow/requirements.txt or pyproject.toml change.
airflow-venv:
	scripts/airflow_venv.sh >/dev/null

test: venv airflow-venv
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest -q -p no:randomly -n auto --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)

demo: venv
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python scripts/demo.py

bench: venv
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) build *.egg-info plugin/*.egg-info .demo
