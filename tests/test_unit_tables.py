"""Fast table-driven tests of the pure functions: no project, no store, no subprocess."""

from __future__ import annotations

import errno
import socket
from pathlib import Path

import pytest

from kedro_mlflow_starter.config.mlflow_config import ParamsConfig
from kedro_mlflow_starter.config.redaction import REDACTED, is_secret, redact_nested, redact_uri
from kedro_mlflow_starter.config.uris import resolve_registry_uri, resolve_tracking_uri
from kedro_mlflow_starter.errors import LongParameterError, UnsupportedTrackingUriError
from kedro_mlflow_starter.kedro_names import is_parameter as is_param, strip_transcoding
from kedro_mlflow_starter.tracking.failures import is_transient, lost_insert_race
from kedro_mlflow_starter.tracking.params import flatten, prepare_params, to_text
from kedro_mlflow_starter.tracking.run_tags import kedro_command, runner_name

ROOT = Path("/work/project")


@pytest.mark.parametrize(
    ("configured", "env", "expected"),
    [
        (None, None, "sqlite:////work/project/mlflow.db"),
        ("sqlite:///mlflow.db", None, "sqlite:////work/project/mlflow.db"),
        ("sqlite:///sub/../runs.db", None, "sqlite:////work/project/runs.db"),
        ("sqlite:////abs/runs.db", None, "sqlite:////abs/runs.db"),
        ("sqlite:///:memory:", None, "sqlite:///:memory:"),
        ("mlruns", None, "file:///work/project/mlruns"),
        ("file:///abs/mlruns", None, "file:///abs/mlruns"),
        ("http://127.0.0.1:5000", None, "http://127.0.0.1:5000"),
        ("https://u:p@host/mlflow", None, "https://u:p@host/mlflow"),
        ("postgresql+psycopg2://u@db/mlflow", None, "postgresql+psycopg2://u@db/mlflow"),
        ("databricks", None, "databricks"),
        (None, "http://from-env:5000", "http://from-env:5000"),
        ("sqlite:///yml.db", "http://from-env:5000", "sqlite:////work/project/yml.db"),
        ("  http://padded:5000 ", None, "http://padded:5000"),
    ],
)
def test_tracking_uri_resolution(monkeypatch, configured, env, expected) -> None:
    if env is None:
        monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    else:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", env)
    assert resolve_tracking_uri(configured, ROOT) == expected


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("sqlite://relative.db", "is not a valid sqlite URI; use sqlite:///<path>.db"),
        ("ftp://host/x", "scheme 'ftp' in 'ftp://host/x' is not supported"),
    ],
)
def test_unsupported_tracking_uris_name_the_allowed_forms(uri, message) -> None:
    with pytest.raises(UnsupportedTrackingUriError, match=message):
        resolve_tracking_uri(uri, ROOT)


def test_registry_uri_is_none_unless_configured_and_resolves_like_tracking() -> None:
    assert resolve_registry_uri(None, ROOT) is None
    assert resolve_registry_uri("sqlite:///registry.db", ROOT) == "sqlite:////work/project/registry.db"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("https://user:s3cret@host:5000/x", "https://***@host:5000/x"),
        ("see postgresql://admin:pw@db/mlflow and http://t0k@h", "see postgresql://***@db/mlflow and http://***@h"),
        ("http://host:5000", "http://host:5000"),
        ("mail me@example.com", "mail me@example.com"),
        ("", ""),
    ],
)
def test_redact_uri(text, expected) -> None:
    assert redact_uri(text) == expected


@pytest.mark.parametrize(
    ("key", "secret"),
    [("password", True), ("db_PASSWORD", True), ("api-key", True), ("AWS_ACCESS_KEY_ID", True),
     ("github_token", True), ("credentials_path", True), ("learning_rate", False), ("tokenizer", True),
     ("n_estimators", False), ("", False)],
)
def test_secret_names(key, secret) -> None:
    assert is_secret(key) is secret


def test_redact_nested_walks_mappings_and_sequences() -> None:
    value = {"db": {"user": "a", "password": "b"}, "hosts": [{"token": "t", "name": "h"}], "n": 1}
    assert redact_nested(value) == {"db": {"user": "a", "password": REDACTED},
                                    "hosts": [{"token": REDACTED, "name": "h"}], "n": 1}


@pytest.mark.parametrize(
    ("value", "text"),
    [("x", "x"), (1, "1"), (0.5, "0.5"), (True, "True"), (None, "None"), ([1, 2], "[1, 2]"),
     ({"b": 1, "a": 2}, '{"a": 2, "b": 1}'), (Path("p"), "p"), ((1, "a"), '[1, "a"]')],
)
def test_to_text_is_readable(value, text) -> None:
    assert to_text(value) == text


@pytest.mark.parametrize(
    ("values", "sep", "recursive", "expected"),
    [
        ({"a": {"b": 1, "c": {"d": 2}}}, ".", True, {"a.b": 1, "a.c.d": 2}),
        ({"a": {"b": 1, "c": {"d": 2}}}, ".", False, {"a.b": 1, "a.c": {"d": 2}}),
        ({"a": {"b": 1}}, "/", True, {"a/b": 1}),
        ({"a": {}}, ".", True, {"a": {}}),
    ],
)
def test_flatten(values, sep, recursive, expected) -> None:
    assert flatten(values, sep, recursive) == expected


def _params(**config) -> ParamsConfig:
    return ParamsConfig.model_validate(config)


@pytest.mark.parametrize(
    ("values", "config", "params", "tags"),
    [
        ({"model_options": {"C": 1.0}}, {}, {"model_options": '{"C": 1.0}'}, {}),
        ({"model_options": {"C": 1.0}}, {"dict_params": {"flatten": True}}, {"model_options.C": "1.0"}, {}),
        ({"db_password": "x", "opts": {"api_key": "k", "n": 1}}, {},
         {"db_password": REDACTED, "opts": '{"api_key": "***", "n": 1}'}, {}),
        ({"long": "x" * 7000}, {"long_params_strategy": "truncate"}, {"long": "x" * 6000}, {}),
        ({"long": "x" * 7000}, {"long_params_strategy": "tag"}, {}, {"long": "x" * 7000}),
        # the password of a URL inside any value, whatever the key is called (issue 17)
        ({"service": {"endpoint": "https://user:pw@api.example/v1"}}, {"dict_params": {"flatten": True}},
         {"service.endpoint": "https://***@api.example/v1"}, {}),
        ({"service": {"endpoint": "https://user:pw@api.example/v1"}}, {},
         {"service": '{"endpoint": "https://***@api.example/v1"}'}, {}),
        ({"mirrors": ["http://a:b@m1/x", "http://m2/y"]}, {}, {"mirrors": '["http://***@m1/x", "http://m2/y"]'}, {}),
        ({"db": "postgresql://admin:pw@db:5432/x"}, {}, {"db": "postgresql://***@db:5432/x"}, {}),
        ({"long": "https://u:p@h/" + "x" * 7000}, {"long_params_strategy": "tag"}, {},
         {"long": "https://***@h/" + "x" * 7000}),
        ({"url": "https://api.example/v1?user=me@example.com"}, {}, {"url": "https://api.example/v1?user=me@example.com"}, {}),
    ],
)
def test_prepare_params(values, config, params, tags) -> None:
    prepared = prepare_params(values, _params(**config))
    assert prepared.params == params
    assert prepared.tags == tags


def test_bad_keys_are_renamed_and_truncation_is_told() -> None:
    prepared = prepare_params({"a{b}": 1, "long": "x" * 7000}, _params(long_params_strategy="truncate"))
    assert prepared.params["a_b_"] == "1"
    notices = prepared.notices()
    assert "MLflow parameter 'a{b}' is logged as 'a_b_'" in notices[0]
    assert "'long' is truncated to its first 6000 characters" in notices[1]
    assert "long_params_strategy" in notices[1]


def test_long_param_fails_by_default_naming_the_setting() -> None:
    with pytest.raises(LongParameterError, match="'long' is 7000 characters long.*long_params_strategy"):
        prepare_params({"long": "x" * 7000}, _params())


@pytest.mark.parametrize(
    ("run_params", "command"),
    [
        ({}, "kedro run"),
        ({"pipeline_names": ["b", "a"]}, "kedro run --pipelines=a,b"),
        ({"env": "prod", "runner": "ParallelRunner"}, "kedro run --env=prod --runner=ParallelRunner"),
        ({"runner": "<kedro.runner.thread_runner.ThreadRunner object at 0x7f00ab>"}, "kedro run --runner=ThreadRunner"),
        ({"runner": "SequentialRunner", "node_names": ["n1", "n2"]}, "kedro run --nodes=n1,n2"),
        ({"tags": ["t"], "from_nodes": ["x"], "to_outputs": ["y"]}, "kedro run --tags=t --from-nodes=x --to-outputs=y"),
        ({"runtime_params": {"model": {"C": 0.5}, "api_token": "s"}}, "kedro run '--params=model.C=0.5,api_token=***'"),
        ({"runtime_params": {"service": {"endpoint": "https://u:pw@api.example/v1"}}},
         "kedro run '--params=service.endpoint=https://***@api.example/v1'"),
    ],
)
def test_reproducing_command(run_params, command) -> None:
    assert kedro_command(run_params, ["token"]) == command


@pytest.mark.parametrize(
    ("runner", "name"),
    [("ThreadRunner", "ThreadRunner"), ("<kedro.runner.ParallelRunner object at 0x1a>", "ParallelRunner"),
     (None, ""), ("", "")],
)
def test_runner_name(runner, name) -> None:
    assert runner_name(runner) == name


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


@pytest.mark.parametrize(
    ("name", "param", "stripped"),
    [("parameters", True, "parameters"), ("params:a.b", True, "params:a.b"), ("model", False, "model"),
     ("model@pickle", False, "model"), ("params_like", False, "params_like")],
)
def test_dataset_name_rules(name, param, stripped) -> None:
    assert is_param(name) is param
    assert strip_transcoding(name) == stripped


# -- what `kedro mlflow ui` copies of its server's output (issue 21) ---------------------------------

_CTRL_C = (
    "2026/12/06 11:25:52 ERROR:    Traceback (most recent call last):\n"
    '  File "uvicorn/server.py", line 89, in serve\n'
    "KeyboardInterrupt\n"
    "\n"
    "During handling of the above exception, another exception occurred:\n"
    "\n"
    "Traceback (most recent call last):\n"
    '  File "starlette/routing.py", line 701, in lifespan\n'
    "asyncio.exceptions.CancelledError\n"
)
_SERVER_ERROR = (
    "Traceback (most recent call last):\n"
    '  File "mlflow/store/db/utils.py", line 12, in create\n'
    "sqlite3.OperationalError: unable to open database file\n"
)
_NOISE = (
    "Registry store URI not provided. Using backend store URI.\n"
    "[MLflow] Security middleware enabled with default settings (localhost-only). To allow ...\n"
    "2026/12/06 11:24:28 INFO:     Started server process [13543]\n"
    '2026/12/06 11:24:29 INFO:     127.0.0.1:47200 - "GET / HTTP/1.1" 200 OK\n'
)


@pytest.mark.parametrize(
    ("server_says", "verbose", "shown"),
    [
        (_NOISE, False, ""),
        (_NOISE, True, _NOISE),
        (_CTRL_C, False, ""),  # Ctrl-C reaching the server: not an error
        (_SERVER_ERROR, False, _SERVER_ERROR),  # a real error keeps its whole traceback
        (_NOISE + _SERVER_ERROR + "WARNING: something to see\n", False, _SERVER_ERROR + "WARNING: something to see\n"),
    ],
    ids=["noise", "noise-verbose", "ctrl-c", "server-error", "mixed"],
)
def test_kedro_mlflow_ui_copies_what_its_server_says_that_a_user_needs(server_says, verbose, shown) -> None:
    import io

    from kedro_mlflow_starter.framework.ui_server import ServerOutput

    out = io.StringIO()
    copier = ServerOutput(io.StringIO(server_says), verbose, out=out)
    copier.run()
    assert out.getvalue() == shown


@pytest.mark.parametrize(
    ("mlflow_prints", "logged"),
    [
        ("Successfully registered model 'iris'.\nCreated version '1' of model 'iris'.\n",
         ["MLflow: registered version 1 of model 'iris' (a new registered model)."]),
        ("Registered model 'iris' already exists. Creating a new version of this model...\n"
         "Created version '7' of model 'iris'.\n", ["MLflow: registered version 7 of model 'iris'."]),
    ],
    ids=["new-model", "new-version"],
)
def test_mlflow_registration_prints_become_one_log_line(mlflow_prints, logged, capsys, caplog) -> None:
    import sys

    from kedro_mlflow_starter.framework.console import mlflow_prints_logged

    with caplog.at_level("INFO", logger="kedro_mlflow_starter"), mlflow_prints_logged():
        sys.stderr.write(mlflow_prints)
        sys.stderr.write("UserWarning: anything else goes through\n")
    assert [r.getMessage() for r in caplog.records] == logged
    assert capsys.readouterr().err == "UserWarning: anything else goes through\n"
