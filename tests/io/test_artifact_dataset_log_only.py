"""MlflowArtifactDataset with ``log_only: true``: the copy is in MLflow, no local file stays."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from kedro.io import DataCatalog  # noqa: E402
from kedro.io.core import DatasetError  # noqa: E402

from kedro_mlflow_starter.framework.catalog_checks import build_mlflow_datasets  # noqa: E402
from kedro_mlflow_starter.io import MlflowArtifactDataset  # noqa: E402
from tests.io_fixtures import PKG, Run, Store  # noqa: E402
FRAME = pd.DataFrame({"species": ["setosa", "virginica"]})


def entry(tmp_path: Path, **extra) -> dict:
    return {"type": PKG + "MlflowArtifactDataset", "log_only": True, "artifact_path": "reports",
            "dataset": {"type": "pandas.CSVDataset", "filepath": (tmp_path / "data/08_reporting/table.csv").as_posix()},
            **extra}


def temp_entries() -> list[str]:
    return sorted(name for name in os.listdir(tempfile.gettempdir()) if name.startswith("kedro-mlflow-log-only-"))


def test_log_only_logs_the_file_and_leaves_none(run: Run, tmp_path: Path) -> None:
    catalog = DataCatalog.from_config({"table": entry(tmp_path)})
    build_mlflow_datasets(catalog)

    catalog.save("table", FRAME)

    assert run.artifacts() == ["reports/table.csv"]
    assert not (tmp_path / "data").exists(), "a local file or folder was left"
    assert temp_entries() == []
    assert catalog.load("table").equals(FRAME)  # downstream nodes of the same process
    fresh = MlflowArtifactDataset(**{k: v for k, v in entry(tmp_path).items() if k != "type"})
    assert fresh.load()["species"].tolist() == ["setosa", "virginica"]  # another process: from the run
    assert not (tmp_path / "data").exists()


def test_log_only_figure_lands_as_png(run: Run, tmp_path: Path) -> None:
    figure, axes = plt.subplots()
    axes.plot([1, 2, 3])
    dataset = MlflowArtifactDataset(dataset={"type": "matplotlib.MatplotlibDataset", "filepath": "shap_summary.png"},
                                    log_only=True)
    dataset.save(figure)
    plt.close(figure)

    assert run.artifacts() == ["shap_summary.png"]
    assert not Path("shap_summary.png").exists()


def test_log_only_without_a_run_keeps_the_data_in_memory_only(no_run: Store, tmp_path: Path) -> None:
    dataset = MlflowArtifactDataset(**{k: v for k, v in entry(tmp_path).items() if k != "type"})
    dataset.save(FRAME)
    assert dataset.load().equals(FRAME)
    assert not (tmp_path / "data").exists()

    empty = MlflowArtifactDataset(**{k: v for k, v in entry(tmp_path).items() if k != "type"})
    with pytest.raises(DatasetError, match="log-only and has nothing to load.*run_id"):
        empty.load()


def test_log_only_refuses_a_partitioned_dataset(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="`log_only: true` works with datasets that write one file"):
        MlflowArtifactDataset(dataset={"type": "partitions.PartitionedDataset", "path": str(tmp_path),
                                       "dataset": "pandas.CSVDataset"}, log_only=True)
