"""Predict latency of a loaded pipeline model next to the two baselines it is judged against.

Setup (in a temp dir): a scikit-learn scaler + logistic regression fitted on iris, stored
with Kedro datasets (joblib pickle, pickle, JSON label map), and the inference pipeline
``scale -> predict`` with one ``params:`` entry. Three things predict the same rows:

- **bare**: the inference functions called directly (no MLflow at all);
- **floor**: a minimal ``mlflow.pyfunc.PythonModel`` with the same signature (inputs and
  params) that calls those functions: what MLflow's own input validation costs;
- **pipeline model**: ``KedroPipelineModel`` saved and loaded with ``mlflow.pyfunc``.

Each repeat times a batch of calls of each (interleaved, so drift hits all three alike);
the median per-call time over the repeats is reported. Target: the pipeline model within
1.2x the floor for one row. Run standalone with ``python benchmarks/bench_predict.py``.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
TARGET_RATIO = 1.2
CALLS_PER_REPEAT = {1: 50, 1000: 10}


def scale(instances: pd.DataFrame, scaler: Any) -> np.ndarray:
    return scaler.transform(instances[FEATURES].to_numpy())


def predict(scaled: np.ndarray, classifier: Any, label_map: dict, label_prefix: str) -> pd.DataFrame:
    proba = classifier.predict_proba(scaled)
    labels = [label_prefix + label_map[str(code)] for code in proba.argmax(axis=1)]
    return pd.DataFrame({"label": labels, "score": proba.max(axis=1)})


def _fit(folder: Path) -> tuple[Any, pd.DataFrame]:
    """Fit on iris, store the artifacts with Kedro datasets; return (catalog, features)."""
    from kedro.io import DataCatalog, MemoryDataset
    from kedro_datasets.json import JSONDataset
    from kedro_datasets.pandas import CSVDataset
    from kedro_datasets.pickle import PickleDataset
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    iris = load_iris(as_frame=True)
    features = iris.data.set_axis(FEATURES, axis=1)
    scaler = StandardScaler().fit(features.to_numpy())
    classifier = LogisticRegression(max_iter=300).fit(scaler.transform(features.to_numpy()), iris.target)
    catalog = DataCatalog(
        {
            "instances": CSVDataset(filepath=str(folder / "instances.csv")),
            "scaler": PickleDataset(filepath=str(folder / "scaler.pkl"), backend="joblib"),
            "classifier": PickleDataset(filepath=str(folder / "classifier.pkl")),
            "label_map": JSONDataset(filepath=str(folder / "label_map.json")),
            "params:label_prefix": MemoryDataset("iris-"),
        }
    )
    catalog.save("instances", features.head(20))
    catalog.save("scaler", scaler)
    catalog.save("classifier", classifier)
    catalog.save("label_map", {str(i): name for i, name in enumerate(iris.target_names)})
    return catalog, features


def _floor_model_class() -> type:
    import mlflow

    class FloorModel(mlflow.pyfunc.PythonModel):
        """The least a pyfunc can do: load the objects, call the two functions."""

        def load_context(self, context: Any) -> None:
            import json

            import joblib

            self.scaler = joblib.load(context.artifacts["scaler"])
            self.classifier = pd.read_pickle(context.artifacts["classifier"])
            with open(context.artifacts["label_map"]) as stream:
                self.label_map = json.load(stream)

        def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> Any:
            prefix = (params or {}).get("label_prefix", "iris-")
            return predict(scale(model_input, self.scaler), self.classifier, self.label_map, prefix)

    return FloorModel


def _build(folder: Path) -> dict[str, Any]:
    """The three predictors, sharing one signature (inputs + the label_prefix param)."""
    import mlflow
    from kedro.pipeline import node, pipeline
    from mlflow.models import infer_signature

    from kedro_mlflow_starter import KedroPipelineModel
    from kedro_mlflow_starter.models.logging import _quiet_mlflow

    catalog, features = _fit(folder / "data")
    inference = pipeline([
        node(scale, ["instances", "scaler"], "scaled", name="scale"),
        node(predict, ["scaled", "classifier", "label_map", "params:label_prefix"], "predictions", name="predict"),
    ])
    kpm = KedroPipelineModel(inference, catalog, "instances")
    artifacts = kpm.save_artifacts(folder / "kpm_artifacts")
    sample = features.head(5)
    signature = infer_signature(sample, kpm.predict(None, sample), params=kpm.exposed_params)

    scaler, classifier, label_map = (catalog.load(n) for n in ("scaler", "classifier", "label_map"))
    floor_files = {
        "scaler": str(folder / "data/scaler.pkl"),
        "classifier": str(folder / "data/classifier.pkl"),
        "label_map": str(folder / "data/label_map.json"),
    }
    with _quiet_mlflow(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlflow.pyfunc.save_model(str(folder / "kpm"), python_model=kpm, artifacts=artifacts, signature=signature,
                                 pip_requirements=["mlflow"])
        mlflow.pyfunc.save_model(str(folder / "floor"), python_model=_floor_model_class()(), artifacts=floor_files,
                                 signature=signature, pip_requirements=["mlflow"])
        loaded_kpm = mlflow.pyfunc.load_model(str(folder / "kpm"))
        loaded_floor = mlflow.pyfunc.load_model(str(folder / "floor"))

    def bare(frame: pd.DataFrame) -> pd.DataFrame:
        return predict(scale(frame, scaler), classifier, label_map, "iris-")

    return {"features": features, "bare": bare, "floor": loaded_floor.predict, "model": loaded_kpm.predict}


def _per_call(fn: Any, frame: pd.DataFrame, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn(frame)
    return (time.perf_counter() - start) / calls


def measure(repeats: int = 30) -> list[dict[str, Any]]:
    """Rows {name, baseline, baseline_s, measured_s, ratio, target, target_ratio}."""
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-predict-") as tmp:
        built = _build(Path(tmp))
        features = built["features"]
        for n_rows in (1, 1000):
            frame = features.sample(n=n_rows, replace=n_rows > len(features), random_state=0).reset_index(drop=True)
            expected = built["bare"](frame)
            for key in ("floor", "model"):  # same answers before timing anything
                pd.testing.assert_frame_equal(built[key](frame).reset_index(drop=True), expected)
            calls = CALLS_PER_REPEAT[n_rows]
            timings: dict[str, list[float]] = {"bare": [], "floor": [], "model": []}
            for _ in range(3):  # warm-up
                for key in timings:
                    _per_call(built[key], frame, calls)
            for _ in range(repeats):
                for key in timings:
                    timings[key].append(_per_call(built[key], frame, calls))
            median = {key: statistics.median(values) for key, values in timings.items()}
            name = f"pipeline model predict, {n_rows} row{'s' if n_rows > 1 else ''}"
            rows.append(_row(name, "inference functions called directly", median["bare"], median["model"]))
            target = f"<= {TARGET_RATIO}x floor" if n_rows == 1 else None
            rows.append(_row(name, "minimal pyfunc, same signature (floor)", median["floor"], median["model"],
                             target, TARGET_RATIO if n_rows == 1 else None))
    return rows


def _row(name: str, baseline: str, baseline_s: float, measured_s: float,
         target: str | None = None, target_ratio: float | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "baseline": baseline,
        "baseline_s": baseline_s,
        "measured_s": measured_s,
        "ratio": measured_s / baseline_s,
        "target": target,
        "target_ratio": target_ratio,
    }


def main(argv: list[str]) -> int:
    repeats = int(argv[1]) if len(argv) > 1 else 30
    for row in measure(repeats):
        verdict = ""
        if row["target_ratio"] is not None:
            verdict = "  OK" if row["ratio"] <= row["target_ratio"] else "  OVER TARGET"
        print(
            f"{row['name']:<36} vs {row['baseline']:<40} {row['baseline_s'] * 1e3:8.3f} ms -> "
            f"{row['measured_s'] * 1e3:8.3f} ms  x{row['ratio']:.2f}"
            + (f"  target {row['target']}{verdict}" if row["target"] else "")
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
