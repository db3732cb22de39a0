"""The Python API examples in the datasets' docstrings run, as written, against a throw-away store.

Each example gets what its text says it has: ``run_id`` (an open run), ``client`` (an
``MlflowClient`` of the same store) and ``tmp_path``, in a fresh SQLite store under pytest's
tmp_path, so no server is needed and nothing outlives the test.
"""

from __future__ import annotations

import doctest
import importlib
import logging

import pytest

PUBLIC = ["MlflowArtifactDataset", "MlflowMetricDataset", "MlflowMetricHistoryDataset", "MlflowMetricsHistoryDataset",
          "MlflowModelLocalFileSystemDataset", "MlflowModelRegistryDataset", "MlflowModelTrackingDataset"]


def _examples() -> list[doctest.DocTest]:
    """The examples of every public dataset class, wherever in ``kedro_mlflow_starter.io`` it lives."""
    io = importlib.import_module("kedro_mlflow_starter.io")
    finder = doctest.DocTestFinder(exclude_empty=True)
    found = []
    for name in PUBLIC:
        dataset = getattr(io, name)
        found += [test for test in finder.find(dataset, name, module=importlib.import_module(dataset.__module__))
                  if test.examples]
    return sorted(found, key=lambda test: test.name)


EXAMPLES = _examples()


def test_every_public_dataset_has_a_yaml_and_a_python_example():
    import kedro_mlflow_starter.io as io

    with_examples = {test.name.rsplit(".", 1)[-1] for test in EXAMPLES}
    assert with_examples == set(PUBLIC)
    for name in PUBLIC:
        doc = getattr(io, name).__doc__
        assert ".. code-block:: yaml" in doc and f"type: kedro_mlflow_starter.io.{name}" in doc, name
        assert "from kedro_mlflow_starter.io import" in doc and ">>> " in doc, name


@pytest.mark.parametrize("example", EXAMPLES, ids=[test.name.rsplit(".", 1)[-1] for test in EXAMPLES])
def test_docstring_example_runs(example: doctest.DocTest, tmp_path, monkeypatch: pytest.MonkeyPatch):
    from mlflow import MlflowClient

    store = f"sqlite:///{(tmp_path / 'mlflow.db').as_posix()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", store)
    client = MlflowClient(tracking_uri=store, registry_uri=store)
    experiment = client.create_experiment("doctest", artifact_location=(tmp_path / "mlartifacts").as_uri())
    run_id = client.create_run(experiment).info.run_id
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    example.globs.update({"run_id": run_id, "client": client, "tmp_path": scratch})
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    failures: list[str] = []

    # INFO lines hidden as in a plain interpreter (an earlier test may have set up Kedro's logging in this worker)
    plugin_logger = logging.getLogger("kedro_mlflow_starter")
    level = plugin_logger.level
    plugin_logger.setLevel(logging.WARNING)
    try:
        runner.run(example, out=failures.append)
    finally:
        plugin_logger.setLevel(level)
    client.set_terminated(run_id)
    assert runner.tries == len(example.examples) and runner.failures == 0, "".join(failures)
