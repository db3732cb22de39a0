"""KedroPipelineModel in-process: predictions, params, artifacts, copies, threads, errors."""

from __future__ import annotations

import logging
import pickle
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.pipeline import node, pipeline
from kedro.runner import SequentialRunner
from kedro_datasets.json import JSONDataset
from kedro_datasets.pandas import CSVDataset
from kedro_datasets.pickle import PickleDataset

from kedro_mlflow_starter import KedroPipelineModel
from kedro_mlflow_starter.pipeline import KedroMlflowPipelineMLError, pipeline_ml_factory


class Scaler:
    """A stand-in fitted object: subtracts learned means."""

    def __init__(self, means: dict[str, float]):
        self.means = means
        self.calls = 0

    def transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        return frame - pd.Series(self.means)


def scale(instances: pd.DataFrame, scaler: Scaler) -> pd.DataFrame:
    return scaler.transform(instances[["a", "b"]])


def score(scaled: pd.DataFrame, weights: dict, offset: float) -> pd.Series:
    return (scaled["a"] * weights["a"] + scaled["b"] * weights["b"] + offset).rename("score")


def score_kwargs(scaled: pd.DataFrame, weights: dict, offset: float) -> pd.Series:
    return score(scaled, weights, offset)


def mutating_scale(instances: pd.DataFrame, scaler: Scaler) -> pd.DataFrame:
    scaler.calls += 1  # a node that (wrongly) mutates a loaded artifact
    return scaler.transform(instances[["a", "b"]]).assign(calls=scaler.calls)


def identity_output(scaled):
    return scaled


INFERENCE = pipeline([
    node(scale, ["instances", "scaler"], "scaled", name="scale"),
    node(score, ["scaled", "weights", "params:offset"], "predictions", name="score"),
])
MEANS = {"a": 1.0, "b": 10.0}
WEIGHTS = {"a": 2.0, "b": -1.0}


def expected(frame: pd.DataFrame, offset: float = 0.5) -> pd.Series:
    return score(scale(frame, Scaler(MEANS)), WEIGHTS, offset)


@pytest.fixture
def catalog(tmp_path: Path) -> DataCatalog:
    scaler = PickleDataset(filepath=str(tmp_path / "data/scaler.pkl"))
    scaler.save(Scaler(MEANS))
    weights = JSONDataset(filepath=str(tmp_path / "data/weights.json"))
    weights.save(WEIGHTS)
    instances = CSVDataset(filepath=str(tmp_path / "data/instances.csv"))
    instances.save(pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [10.0, 8.0, 13.0]}))
    return DataCatalog(
        {
            "scaler": scaler,
            "weights": weights,
            "instances": instances,
            "params:offset": MemoryDataset(0.5),
        }
    )


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame({"a": [4.0, 0.0], "b": [1.0, 2.0]})


def test_predict_equals_the_inference_functions_called_directly(catalog, frame) -> None:
    model = KedroPipelineModel(INFERENCE, catalog, "instances")
    pd.testing.assert_series_equal(model.predict(None, frame), expected(frame))
    assert model.artifact_names == ["scaler", "weights"]
    assert model.param_values == {"params:offset": 0.5}
    assert model.output_name == "predictions"


def test_dict_inputs_and_pipeline_ml_are_accepted(catalog, frame) -> None:
    inference = pipeline([
        node(scale, ["instances", "scaler"], "scaled", name="scale"),
        node(score_kwargs, {"scaled": "scaled", "weights": "weights", "offset": "params:offset"}, "predictions"),
    ])
    training = pipeline([node(lambda x: (x, x), "instances", ["scaler", "weights"], name="fit")])
    ml = pipeline_ml_factory(training, inference, input_name="instances")
    model = KedroPipelineModel(ml, catalog, "instances")
    pd.testing.assert_series_equal(model.predict(None, frame), expected(frame))


def test_params_override_per_call_without_changing_the_default(catalog, frame) -> None:
    model = KedroPipelineModel(INFERENCE, catalog, "instances")
    assert model.exposed_params == {"offset": 0.5}
    pd.testing.assert_series_equal(model.predict(None, frame, params={"offset": 3.0}), expected(frame, 3.0))
    pd.testing.assert_series_equal(model.predict(None, frame), expected(frame))
    with pytest.raises(KedroMlflowPipelineMLError, match="Unknown inference param 'ofset'.*accepts: offset"):
        model.predict(None, frame, params={"ofset": 1.0})


def test_non_scalar_params_are_embedded_but_not_exposed(catalog, frame) -> None:
    catalog["params:offset"] = MemoryDataset({"nested": 1})
    model = KedroPipelineModel(INFERENCE, catalog, "instances")
    assert model.exposed_params == {}
    assert model.param_values == {"params:offset": {"nested": 1}}


def test_bad_input_name_lists_valid_inputs(catalog) -> None:
    with pytest.raises(KedroMlflowPipelineMLError, match="input_name='rows' is not an input") as error:
        KedroPipelineModel(INFERENCE, catalog, "rows")
    assert "'instances', 'scaler', 'weights'" in str(error.value)


def test_two_outputs_are_refused(catalog) -> None:
    two = pipeline([node(scale, ["instances", "scaler"], "scaled", name="scale"),
                    node(identity_output, "instances", "copy", name="copy")])
    with pytest.raises(KedroMlflowPipelineMLError, match="exactly one output.*'copy', 'scaled'"):
        KedroPipelineModel(two, catalog, "instances")


def test_undeclared_artifact_and_empty_memory_dataset_are_explained(catalog) -> None:
    del_catalog = DataCatalog({"scaler": catalog["scaler"], "params:offset": MemoryDataset(0.5)})
    with pytest.raises(KedroMlflowPipelineMLError, match="needs 'weights' but the catalog has no such entry"):
        KedroPipelineModel(INFERENCE, del_catalog, "instances")
    del_catalog["weights"] = MemoryDataset()
    with pytest.raises(KedroMlflowPipelineMLError, match="'weights', which is a MemoryDataset with no data") as error:
        KedroPipelineModel(INFERENCE, del_catalog, "instances")
    assert "pickle.PickleDataset" in str(error.value)


def test_missing_parameter_is_explained(catalog) -> None:
    no_params = DataCatalog({"scaler": catalog["scaler"], "weights": catalog["weights"]})
    with pytest.raises(KedroMlflowPipelineMLError, match="'params:offset'.*parameters.yml"):
        KedroPipelineModel(INFERENCE, no_params, "instances")


def test_artifacts_are_loaded_once_and_never_copied_by_default(catalog, frame, monkeypatch) -> None:
    loads = []
    original = PickleDataset.load

    def counting_load(self):
        loads.append(self)
        return original(self)

    monkeypatch.setattr(PickleDataset, "load", counting_load)
    inference = pipeline([node(mutating_scale, ["instances", "scaler"], "scaled", name="scale")])
    model = KedroPipelineModel(inference, catalog, "instances")
    first = model.predict(None, frame)
    second = model.predict(None, frame)
    assert len(loads) == 1
    # the same object is handed to the node on every call: no per-call copy
    assert list(first["calls"]) == [1, 1] and list(second["calls"]) == [2, 2]


def test_deepcopy_mode_protects_artifacts_from_mutating_nodes(catalog, frame) -> None:
    inference = pipeline([node(mutating_scale, ["instances", "scaler"], "scaled", name="scale")])
    model = KedroPipelineModel(inference, catalog, "instances", copy_mode={"scaler": "deepcopy"})
    model.predict(None, frame)
    assert list(model.predict(None, frame)["calls"]) == [1, 1]


@pytest.mark.parametrize(
    ("copy_mode", "message"),
    [("clone", "copy_mode 'clone' for 'scaler' is not valid. Allowed: assign, copy, deepcopy"),
     ({"scaler2": "copy"}, r"copy_mode names \['scaler2'\]")],
)
def test_bad_copy_mode_is_refused(catalog, copy_mode, message) -> None:
    with pytest.raises(KedroMlflowPipelineMLError, match=message):
        KedroPipelineModel(INFERENCE, catalog, "instances", copy_mode=copy_mode)


def test_predict_logs_nothing(catalog, frame, caplog) -> None:
    model = KedroPipelineModel(INFERENCE, catalog, "instances")
    model.predict(None, frame)  # first call loads the artifacts (allowed to log)
    caplog.clear()
    with caplog.at_level(logging.DEBUG):
        for _ in range(3):
            model.predict(None, frame)
    assert caplog.records == []


def test_runner_gives_the_same_predictions(catalog, frame) -> None:
    model = KedroPipelineModel(INFERENCE, catalog, "instances", runner=SequentialRunner())
    pd.testing.assert_series_equal(model.predict(None, frame), expected(frame))
    pd.testing.assert_series_equal(model.predict(None, frame, params={"offset": 1.0}), expected(frame, 1.0))


def test_concurrent_predicts_from_threads_are_correct(catalog) -> None:
    model = KedroPipelineModel(INFERENCE, catalog, "instances")
    frames = [pd.DataFrame({"a": [float(i), i + 0.5], "b": [float(-i), 2.0 * i]}) for i in range(64)]
    offsets = [float(i % 5) for i in range(64)]
    barrier = threading.Barrier(8)

    def call(i: int) -> pd.Series:
        if i < 8:
            barrier.wait(timeout=10)  # start the first calls together, before anything is loaded
        return model.predict(None, frames[i], params={"offset": offsets[i]})

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(call, range(64)))
    for i, result in enumerate(results):
        pd.testing.assert_series_equal(result, expected(frames[i], offsets[i]))


def test_saved_artifacts_keep_their_dataset_type_and_reload_after_pickling(catalog, frame, tmp_path) -> None:
    catalog["weights_mem"] = MemoryDataset(WEIGHTS)
    inference = pipeline([
        node(scale, ["instances", "scaler"], "scaled", name="scale"),
        node(score, ["scaled", "weights_mem", "params:offset"], "predictions", name="score"),
    ])
    model = KedroPipelineModel(inference, catalog, "instances")
    mapping = model.save_artifacts(tmp_path / "model_artifacts")
    assert model.artifact_specs["scaler"]["kind"] == "dataset"
    assert model.artifact_specs["scaler"]["config"]["type"].endswith("PickleDataset")
    assert model.artifact_specs["scaler"]["config"]["filepath"] == "scaler.pkl"
    assert model.artifact_specs["weights_mem"] == {"kind": "pickle", "file": "data.pkl"}
    assert (Path(mapping["scaler"]) / "scaler.pkl").is_file()

    payload = pickle.dumps(model)
    assert b"instances.csv" not in payload  # the project's catalog does not travel with the model
    restored = pickle.loads(payload)
    restored.load_context(SimpleNamespace(artifacts=mapping))
    pd.testing.assert_series_equal(restored.predict(None, frame), expected(frame))


def test_json_artifact_is_stored_as_json(catalog, tmp_path) -> None:
    model = KedroPipelineModel(INFERENCE, catalog, "instances")
    mapping = model.save_artifacts(tmp_path / "a")
    assert model.artifact_specs["weights"]["config"]["type"].endswith("JSONDataset")
    assert (Path(mapping["weights"]) / "weights.json").read_text().startswith("{")


def test_unloaded_pickled_model_says_how_to_load_it(catalog, frame) -> None:
    model = pickle.loads(pickle.dumps(KedroPipelineModel(INFERENCE, catalog, "instances")))
    with pytest.raises(KedroMlflowPipelineMLError, match="mlflow.pyfunc.load_model"):
        model.predict(None, frame)
