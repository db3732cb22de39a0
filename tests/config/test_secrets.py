"""No secret reaches MLflow or the console, and tags stay readable and private.

Three secrets are planted the ways a team sets them up: a password in
``conf/local/credentials.yml`` (exported through ``server.credentials``, and used by a
dataset of the inference pipeline, whose specs travel inside the pipeline model), the
tracking URI's ``user:password@`` part in an environment variable read by
``${oc.env:...}`` in mlflow.yml, ``--params api_token=...`` read by a node, and the password
of a service URL (``service.endpoint: https://svc:<password>@api.example/v1``, a key no
secret pattern matches) in parameters.yml and again in ``--params``. After a
real `kedro run` against a real server, every param, tag and metric key of the run and of
its logged models, every file the server stored for the experiment, and the server's
database itself are searched for each secret.
"""

from __future__ import annotations

import re
from tests.server_fixtures import CATALOG, make_team_project
from tests.tracking_helpers import output

URI_SECRET = "uRiPaSs-7f3a9c"
CREDENTIALS_SECRET = "cReDsEcReT-41d8e2"
DATASET_SECRET = "dAtAsEtKeY-b9e0aa"
PARAM_SECRET = "pArAmToKeN-c12f77"
URL_SECRET = "uRlInPaRaMs-5e6b01"  # in parameters.yml (so in the run's kedro/config/parameters.yml)
RUNTIME_URL_SECRET = "rUnTiMeUrL-0d4c93"  # in --params (so in the kedro.command tag)
SECRETS = (URI_SECRET, CREDENTIALS_SECRET, DATASET_SECRET, PARAM_SECRET, URL_SECRET, RUNTIME_URL_SECRET)

REGISTRY = '''
from urllib.parse import urlparse

from kedro.pipeline import Pipeline, node

from kedro_mlflow_starter import pipeline_ml_factory


def service_host(service: dict) -> str:
    return urlparse(service["endpoint"]).hostname


def register_pipelines():
    from {package}.nodes import call_service, evaluate, fit, predict

    training = Pipeline([
        node(fit, ["raw", "params:factor"], ["regressor", "regressor_model"], name="fit"),
        node(evaluate, ["regressor", "raw"], ["predictions", "r2"], name="evaluate"),
        node(call_service, ["params:api_token", "predictions"], "publication", name="publish"),
        node(service_host, "params:service", "service_host", name="service_host"),
    ])
    inference = Pipeline([node(predict, ["instances", "regressor"], "served_predictions", name="predict")])
    return {{"__default__": pipeline_ml_factory(training, inference, input_name="instances")}}
'''


def _strings_of(entity) -> list[str]:
    data = getattr(entity, "data", entity)
    params = dict(getattr(data, "params", {}) or {})
    tags = dict(getattr(data, "tags", {}) or {})
    metrics = dict(getattr(data, "metrics", {}) or {})
    return [*params, *params.values(), *tags, *tags.values(), *metrics]


def test_planted_secrets_are_found_nowhere_in_mlflow_or_the_console(tmp_path, mlflow_server):
    home = tmp_path / "home" / "alice"  # the project lives in the user's home, as it usually does
    catalog = {**CATALOG,
               "regressor": {**CATALOG["regressor"], "credentials": "model_store"},
               "publication": {"type": "json.JSONDataset", "filepath": "data/08_reporting/publication.json"}}
    project = make_team_project(
        home / "projects", "${oc.env:TEAM_TRACKING_URI}", package="secret_project",
        mlflow_yml={"server": {"credentials": "mlflow_server"},
                    "tracking": {"params": {"dict_params": {"flatten": True}}}},
        catalog=catalog, registry=REGISTRY,
        parameters={"factor": 2.0, "api_token": "set-me-with---params",
                    "service": {"endpoint": f"https://svc:{URL_SECRET}@api.example/v1", "retries": 3}},
    )
    project.write_yaml("conf/local/credentials.yml", {
        "mlflow_server": {"MLFLOW_TRACKING_USERNAME": "alice", "MLFLOW_TRACKING_PASSWORD": CREDENTIALS_SECRET},
        "model_store": {"client_kwargs": {"api_key": DATASET_SECRET}},
    })
    authority = mlflow_server.uri.replace("http://", f"http://alice:{URI_SECRET}@")

    result = project.run_in_process("run", "--params",
                                    f"api_token={PARAM_SECRET},service.endpoint=https://svc:{RUNTIME_URL_SECRET}@api.example/v2",
                                    env={"TEAM_TRACKING_URI": authority, "HOME": str(home)})

    text = output(result)
    assert result.returncode == 0, text
    for secret in SECRETS:
        assert secret not in text, f"{secret} printed on the console"
    assert f"at {mlflow_server.uri.replace('http://', 'http://***@')}" in text  # the URI is shown, redacted

    client = mlflow_server.client
    experiment = client.get_experiment_by_name("secret_project")
    [run] = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.params["api_token"] == "***"
    assert run.data.params["service.endpoint"] == "https://***@api.example/v2"  # the URL stays, its password not
    assert run.data.params["service.retries"] == "3"
    assert run.data.tags["kedro.command"] == (  # shell-quoted: pasteable
        "kedro run '--params=api_token=***,service.endpoint=https://***@api.example/v2'")
    models = client.search_logged_models([experiment.experiment_id])
    assert sorted(m.name for m in models) == ["model", "regressor_model"]
    searched = _strings_of(run) + [s for m in models for s in (*m.params, *m.params.values(), *m.tags, *m.tags.values())]
    for secret in SECRETS:
        assert not [s for s in searched if secret in s], f"{secret} logged in a param/tag/metric key"

    stored = [p for p in (mlflow_server.artifacts / experiment.experiment_id).rglob("*") if p.is_file()]
    assert any(p.name == "predictions.csv" for p in stored) and any(p.name == "MLmodel" for p in stored)
    assert len(stored) >= 10, "the pipeline model's files should be among the searched artifacts"
    for path in stored:
        content = path.read_bytes()
        for secret in SECRETS:
            assert secret.encode() not in content, f"{secret} found in artifact {path}"
    for database in mlflow_server.root.glob("server.db*"):  # every value the server stored, WAL included
        content = database.read_bytes()
        for secret in SECRETS:
            assert secret.encode() not in content, f"{secret} found in the server's database {database.name}"

    # Tags are strings a person reads: no object reprs, and nothing from the user's home folder.
    every_tag = {**run.data.tags, **{k: v for m in models for k, v in m.tags.items()}}
    for key, value in every_tag.items():
        assert not re.search(r"object at 0x[0-9a-f]+|<[\w.]+ object", value), f"object repr in tag {key}: {value}"
        assert str(home) not in value, f"tag {key} exposes the home folder: {value}"
    assert (project.path / "data/08_reporting/publication.json").is_file()


def test_a_secret_in_a_failure_message_is_redacted(tmp_path, monkeypatch):
    from kedro_mlflow_starter.tracking.failures import describe_error, read_failures, record_failure

    ledger = tmp_path / "failures.jsonl"
    monkeypatch.setenv("KEDRO_MLFLOW_FAILURE_LOG", str(ledger))
    error = ConnectionError(f"API request to http://alice:{URI_SECRET}@10.0.0.5:5000/api/2.0/mlflow/runs/get failed")
    record_failure("metric 'r2'", None, error)
    [entry] = read_failures(ledger)
    assert URI_SECRET not in entry["error"] and "http://***@10.0.0.5:5000" in entry["error"]
    assert URI_SECRET not in describe_error(error)


def test_unreachable_error_does_not_print_the_uri_password(tmp_path):
    from tests.project_factory import free_port

    uri = f"http://alice:{URI_SECRET}@127.0.0.1:{free_port()}"
    project = make_team_project(tmp_path, "${oc.env:TEAM_TRACKING_URI}", package="secret_down")
    result = project.run_in_process("run", env={"TEAM_TRACKING_URI": uri})
    assert result.returncode != 0
    assert URI_SECRET not in output(result)
    assert "http://***@127.0.0.1" in output(result) and "unreachable" in output(result)
