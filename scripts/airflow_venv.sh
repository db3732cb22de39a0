#!/usr/bin/env bash
# Build (once) the cached Airflow virtualenv the orchestrated-run tests drive:
# apache-airflow + kedro-airflow pinned in tests/airflow/requirements.txt, plus this project
# installed editable with its test extra. Cached in $AIRFLOW_VENV (default .cache/airflow-venv,
# git-ignored); rebuilt only when the pins, pyproject.toml or the Python version change.
# Prints the venv path on its last line.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-python3}"
venv="${AIRFLOW_VENV:-$root/.cache/airflow-venv}"
export KEDRO_DISABLE_TELEMETRY=true DO_NOT_TRACK=1 PIP_DISABLE_PIP_VERSION_CHECK=1

key="$( { cat "$root/tests/airflow/requirements.txt" "$root/pyproject.toml" "$0"; \
          "$python" -c 'import sys; print(sys.version)'; } | sha256sum | cut -d' ' -f1)"
stamp="$venv/.requirements-sha256"

if [[ -x "$venv/bin/airflow" && -f "$stamp" && "$(cat "$stamp")" == "$key" ]]; then
    echo "$venv"
    exit 0
fi

echo "airflow_venv: building $venv (pins changed or first build)" >&2
start=$SECONDS
rm -rf "$venv"
mkdir -p "$(dirname "$venv")"
# uv (the test extra's, beside the project venv's Python) when there is one: seconds instead of minutes.
uv="${UV:-$root/.venv/bin/uv}"
if [[ -x "$uv" ]]; then
    # uv leaves its build-backend lock files in the temp folder: give it one of its own, removed after.
    uv_tmp="$(mktemp -d "$(dirname "$venv")/.uv-tmp.XXXXXX")"
    trap 'rm -rf "$uv_tmp"' EXIT
    TMPDIR="$uv_tmp" "$uv" venv --quiet --python "$python" "$venv"
    # byte-compiled as pip does (where PYTHONDONTWRITEBYTECODE is set, each task would compile Airflow again)
    TMPDIR="$uv_tmp" "$uv" pip install --quiet --compile-bytecode --python "$venv/bin/python" \
        -r "$root/tests/airflow/requirements.txt" -e "$root[test]"
else
    "$python" -m venv "$venv"
    "$venv/bin/pip" install --quiet --upgrade pip
    "$venv/bin/pip" install --quiet -r "$root/tests/airflow/requirements.txt" -e "$root[test]"
fi
# The stamp is written last: an interrupted build is rebuilt, never half used.
echo "$key" > "$stamp"
echo "airflow_venv: built in $((SECONDS - start)) s" >&2
echo "$venv"
