"""What counts as an outage of the tracking store, and a lost insert race."""

from __future__ import annotations

import errno
import socket

import pytest

from kedro_mlflow_starter.tracking.failures import is_transient, lost_insert_race


def _error_named(name: str, message: str = "") -> Exception:
    return type(name, (Exception,), {})(message)


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (ConnectionRefusedError(errno.ECONNREFUSED, "refused"), True),
        (ConnectionError("reset"), True),
        (TimeoutError(), True),
        (socket.timeout(), True),
        (OSError(errno.EHOSTUNREACH, "No route to host"), True),
        (_error_named("MaxRetryError", "x"), True),
        (_error_named("ReadTimeoutError"), True),
        (RuntimeError("HTTPConnectionPool: Max retries exceeded with url"), True),
        (RuntimeError("(sqlite3.OperationalError) database is locked"), True),
        (FileNotFoundError(errno.ENOENT, "No such file", "data/x.csv"), False),
        (PermissionError(errno.EACCES, "denied"), False),
        (IsADirectoryError(errno.EISDIR, "is a dir"), False),
        (OSError(errno.ENOSPC, "No space left on device"), False),
        (ValueError("bad key"), False),
        (KeyError("x"), False),
    ],
)
def test_is_transient_tells_outages_from_local_mistakes(error, transient) -> None:
    assert is_transient(error) is transient


@pytest.mark.parametrize(
    ("message", "lost"),
    [
        ("(sqlite3.IntegrityError) UNIQUE constraint failed: datasets.experiment_id, datasets.name", True),
        ('(psycopg.errors.UniqueViolation) duplicate key value violates unique constraint "dataset_pk"', True),
        ("(pymysql.err.IntegrityError) (1062, \"Duplicate entry '1-iris' for key 'PRIMARY'\")", True),
        ("INVALID_PARAMETER_VALUE: Dataset source too long", False),
        ("Connection refused", False),
    ],
)
def test_lost_insert_race_is_only_a_unique_constraint_error_of_the_store(message, lost) -> None:
    from mlflow.exceptions import MlflowException

    assert lost_insert_race(MlflowException(message)) is lost


@pytest.mark.parametrize(("env", "command"), [
    ("other", "`kedro mlflow run replay --run-id r1 --env other`"),  # its mlflow.yml names the run's store
    ("local", "`kedro mlflow run replay --run-id r1`"),
    (None, "`kedro mlflow run replay --run-id r1`"),
])
def test_the_replay_command_of_an_outage_report_names_the_runs_env(env, command, monkeypatch):
    from kedro_mlflow_starter.tracking.failures import describe_failures

    monkeypatch.delenv("KEDRO_MLFLOW_PENDING_DIR", raising=False)
    kept = [{"what": "metric 'r2'", "error": "ConnectionError: refused", "pending": True}]
    report = describe_failures(kept, "r1", "FAILED", status_recorded=False, env=env)
    assert f"{command} logs them into the run" in report, report
