"""MlflowMetricsHistoryDataset against a real SQLite store."""

from __future__ import annotations

from kedro_mlflow_starter.io import MlflowMetricsHistoryDataset
from tests.io_fixtures import PKG, Run, catalog_of


def test_metrics_history_accepts_all_three_forms_under_the_entry_prefix(run: Run) -> None:
    catalog = catalog_of({"scores": {"type": PKG + "MlflowMetricsHistoryDataset"}})
    catalog.save(
        "scores",
        {"r2": 0.9, "mae": {"value": 0.3, "step": 2}, "loss": [{"value": 2.0, "step": 0}, {"value": 1.0, "step": 1}]},
    )

    assert run.client.get_run(run.run_id).data.metrics == {"scores.r2": 0.9, "scores.mae": 0.3, "scores.loss": 1.0}
    # kedro-mlflow's shape: MLflow keys (prefixed), each metric as the node gave it
    assert catalog.load("scores") == {
        "scores.loss": [{"value": 2.0, "step": 0}, {"value": 1.0, "step": 1}],
        "scores.mae": {"value": 0.3, "step": 2},
        "scores.r2": {"value": 0.9, "step": 0},
    }
    last = MlflowMetricsHistoryDataset(prefix="scores", run_id=run.run_id, load_args={"mode": "value"}).load()
    assert last == {"scores.loss": 1.0, "scores.mae": 0.3, "scores.r2": 0.9}


def test_metrics_history_prefix_null_logs_unprefixed_names(run: Run) -> None:
    """Issue 12 item 6: ``prefix: null`` means no prefix (absent means the entry name)."""
    catalog = catalog_of(
        {"plain": {"type": PKG + "MlflowMetricsHistoryDataset", "prefix": None},
         "named": {"type": PKG + "MlflowMetricsHistoryDataset"}}
    )
    catalog.save("plain", {"rmse": 0.5})
    catalog.save("named", {"rmse": 0.25})

    assert run.client.get_run(run.run_id).data.metrics == {"rmse": 0.5, "named.rmse": 0.25}
    assert catalog["plain"].prefix is None and catalog["named"].prefix == "named"
