"""A sweep trial's pipeline writes its outputs under the trial's folder (framework/trial_outputs.py).

The sweep itself, two workers at once, is tests/framework/test_cli_sweep.py; here one catalog as Kedro
builds it for a run, in process.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from kedro.io import DataCatalog
from kedro.pipeline import Pipeline, node

from kedro_mlflow_starter.compat import file_target, protocol
from kedro_mlflow_starter.framework.catalog_checks import build_mlflow_datasets
from kedro_mlflow_starter.framework.trial_outputs import ENV_TRIAL_FOLDER, redirect_trial_outputs


def _identity(frame):
    return frame


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "data").mkdir()
    pd.DataFrame({"x": [1, 2]}).to_csv(tmp_path / "data" / "raw.csv", index=False)
    return tmp_path


class ProjectCatalog(DataCatalog):
    """A project's catalog class (Kedro's own `kedro run` uses a subclass too), from another module."""


def _catalog(project: Path) -> DataCatalog:
    data = (project / "data").as_posix()
    catalog = ProjectCatalog.from_config({
        "raw": {"type": "pandas.CSVDataset", "filepath": f"{data}/raw.csv"},
        "split": {"type": "pandas.CSVDataset", "filepath": f"{data}/split.csv"},
        "remote": {"type": "pandas.CSVDataset", "filepath": "memory://bucket/remote.csv"},
        "report": {"type": "kedro_mlflow_starter.io.MlflowArtifactDataset",
                   "dataset": {"type": "text.TextDataset", "filepath": f"{data}/report.txt"}},
        "{name}_features": {"type": "pandas.CSVDataset", "filepath": f"{data}/{{name}}.features.csv"},
        "table@pandas": {"type": "pandas.CSVDataset", "filepath": f"{data}/table.csv"},
        "table@text": {"type": "text.TextDataset", "filepath": f"{data}/table.csv"},
    })
    build_mlflow_datasets(catalog)  # as after_catalog_created does: `report` is built already
    return catalog


PIPELINE = Pipeline([
    node(_identity, "raw", "split", name="a"),
    node(_identity, "split", "iris_features", name="b"),
    node(_identity, "split", "remote", name="c"),
    node(_identity, "split", "report", name="d"),
    node(_identity, "split", "in_memory", name="e"),
    node(_identity, "split", "table@pandas", name="f"),
    node(_identity, "table@text", "in_memory_text", name="g"),
])


def test_every_local_output_moves_under_the_trial_folder_and_inputs_stay(project, tmp_path_factory, monkeypatch,
                                                                      caplog) -> None:
    folder = tmp_path_factory.mktemp("trial")
    monkeypatch.setenv(ENV_TRIAL_FOLDER, str(folder))
    catalog = _catalog(project)
    redirect_trial_outputs({"project_path": project.as_posix()}, PIPELINE, catalog)

    assert str(file_target(catalog.get("raw"))) == f"{project.as_posix()}/data/raw.csv", "an input is read in place"
    assert str(file_target(catalog.get("split"))) == f"{folder.as_posix()}/data/split.csv"
    assert str(file_target(catalog.get("iris_features"))) == f"{folder.as_posix()}/data/iris.features.csv"
    assert str(file_target(catalog.get("table@text"))) == f"{folder.as_posix()}/data/table.csv", \
        "a transcoded form the pipeline reads is the file it wrote"
    remote = catalog.get("remote")  # fsspec's memory:// stands for s3:// and the like
    assert (protocol(remote), str(file_target(remote))) == ("memory", "/remote.csv"), "a remote path is left as it is"
    catalog.save("split", catalog.load("raw"))
    catalog.save("report", "the trial's report")
    assert (folder / "data" / "split.csv").exists() and not (project / "data" / "split.csv").exists()
    assert (folder / "data" / "report.txt").read_text() == "the trial's report"
    assert not (project / "data" / "report.txt").exists()
    assert "Replacing dataset" not in caplog.text


def test_outside_a_trial_nothing_moves(project, monkeypatch) -> None:
    monkeypatch.delenv(ENV_TRIAL_FOLDER, raising=False)
    catalog = _catalog(project)
    redirect_trial_outputs({"project_path": project.as_posix()}, PIPELINE, catalog)
    assert str(file_target(catalog.get("split"))) == f"{project.as_posix()}/data/split.csv"
