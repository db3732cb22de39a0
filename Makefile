# kedro-mlflow-starter: `make test` runs the test suite, `make demo` the quickstart,
# `make bench` the performance table. Each builds its own virtualenv from the project files.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export KEDRO_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := 1
export MLFLOW_ENABLE_ASYNC_LOGGING := false

.PHONY: venv airflow-venv test test-fast test-airflow-scheduler demo bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet uv

# The project and its test extra installed by uv: ~25 s where pip took ~1 min on a clean clone, the
# same versions. Byte-compiled as pip does: this machine sets PYTHONDONTWRITEBYTECODE, so without the
# .pyc files each of the suite's Python processes would compile MLflow and Kedro again. uv leaves lock
# files in the temp folder: it gets one of its own, removed after.
venv: $(BIN)/python
	mkdir -p $(VENV)/.uv-tmp
	TMPDIR="$(abspath $(VENV))/.uv-tmp" $(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -e '.[test]'
	rm -rf $(VENV)/.uv-tmp

# The orchestrated-run tests drive Airflow from its own cached virtualenv (.cache/airflow-venv):
# built once with the test extra's uv (seconds; pip took one to several minutes),
# rebuilt only when tests/airflow/requirements.txt or pyproject.toml change.
airflow-venv: venv
	UV="$(abspath $(BIN))/uv" scripts/airflow_venv.sh >/dev/null

# The plugin is installed editable, so the install does not byte-compile it; where PYTHONDONTWRITEBYTECODE
# is set, each of the suite's hundreds of Python processes would compile it again (~0.1 s each).
# `--dist worksteal`: an idle worker takes half of another's remaining tests, so no module order
# needs keeping by hand.
test: venv airflow-venv
	$(BIN)/python -m compileall -q plugin
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest -q -p no:randomly -n auto --dist worksteal $(PYTEST_ARGS)

# The fast tier (under a minute): tests/<package>/ (config, tracking, models, pipeline, io,
# framework) without the tests marked `slow`. tests/conftest.py marks `slow` by rule: every
# module directly in tests/ (the end-to-end tier), and any test that, through its own code,
# a fixture or a helper, starts a process (kedro run/new, a script, a server).
test-fast: venv
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest -q -p no:randomly -n auto --dist worksteal -m "not slow" $(PYTEST_ARGS)

# Airflow's real scheduler (LocalExecutor, PostgreSQL metadata DB, tasks in parallel processes):
# one end-to-end test of ~4 min, kept out of `make test`; .ci/run runs it after `make test`.
test-airflow-scheduler: venv airflow-venv
	$(BIN)/python -m compileall -q plugin
	KMS_AIRFLOW_SCHEDULER=1 PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest -q -p no:randomly -s tests/test_airflow_scheduler.py $(PYTEST_ARGS)

demo: venv
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python scripts/demo.py

bench: venv
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) build *.egg-info plugin/*.egg-info .demo
