"""What makes an inference pipeline a pipeline model: the one place it is checked (no mlflow import)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kedro_mlflow_starter.errors import KedroMlflowPipelineMLError
from kedro_mlflow_starter.kedro_names import is_parameter, strip_transcoding

if TYPE_CHECKING:
    from kedro.io import AbstractDataset, DataCatalog
    from kedro.pipeline import Pipeline

_MEMORY_DATASETS = ("MemoryDataset", "SharedMemoryDataset")


def is_memory_dataset(dataset: AbstractDataset | None) -> bool:
    """True for Kedro's in-memory datasets, whose data is released after a run."""
    return type(dataset).__name__ in _MEMORY_DATASETS


def quoted(names: Iterable[str]) -> str:
    return ", ".join(f"'{name}'" for name in sorted(names)) or "none"


@dataclass(frozen=True)
class ModelDatasets:
    """The datasets of an inference pipeline seen as a model."""

    input_name: str  # receives the data to predict on (as the pipeline spells it)
    output_name: str  # the prediction
    artifact_names: list[str]  # everything else it reads: fitted objects that travel in the model
    param_names: list[str]  # ``params:`` values embedded in the model


def model_datasets(inference: Pipeline, input_name: Any) -> ModelDatasets:
    """The datasets of ``inference`` fed through ``input_name``; raises unless it has exactly one output and
    ``input_name`` is one of its inputs (with or without a transcoding suffix)."""
    outputs = inference.outputs()
    if len(outputs) != 1:
        raise KedroMlflowPipelineMLError(
            f"A pipeline model needs exactly one output (the prediction), but the inference pipeline has "
            f"{len(outputs)}: {quoted(outputs)}. Make the other outputs intermediate (consumed by a later "
            "inference node) or move them to the training pipeline.")
    inputs = inference.inputs()
    if not isinstance(input_name, str) or strip_transcoding(input_name) not in {strip_transcoding(i) for i in inputs}:
        raise KedroMlflowPipelineMLError(
            f"input_name={input_name!r} is not an input of the inference pipeline. Its inputs are: "
            f"{quoted(i for i in inputs if not is_parameter(i))}. Set input_name to the dataset that holds the "
            "data to predict on.")
    if input_name not in inputs:  # given without the transcoding suffix
        input_name = next(i for i in inputs if strip_transcoding(i) == input_name)
    return ModelDatasets(
        input_name=input_name,
        output_name=next(iter(outputs)),
        artifact_names=sorted(i for i in inputs if i != input_name and not is_parameter(i)),
        param_names=sorted(i for i in inputs if is_parameter(i)),
    )


def check_model_inputs_in_catalog(names: Iterable[str], catalog: DataCatalog, *, after_run: bool) -> None:
    """Every artifact and param the model reads must be in ``catalog`` with data that lasts: before a run whose
    end logs the model (``after_run``) any ``MemoryDataset`` is refused, otherwise only an empty one."""
    for name in names:
        dataset = catalog.get(name) if hasattr(catalog, "get") else None
        if dataset is None:
            fix = (
                "Define the parameter in conf/<env>/parameters.yml."
                if is_parameter(name)
                else f"Declare '{name}' in conf/base/catalog.yml with a persisted dataset (e.g. type: "
                f"pickle.PickleDataset, filepath: data/06_models/{name}.pkl) so the model can read what "
                "training produced.")
            during_run = (
                " (during the run it would be a MemoryDataset, released before the model is logged)"
                if after_run and not is_parameter(name)
                else "")
            raise KedroMlflowPipelineMLError(
                f"The pipeline model needs '{name}' but the catalog has no such entry{during_run}. {fix}")
        if is_parameter(name) or not is_memory_dataset(dataset) or (not after_run and dataset.exists()):
            continue
        state = "a MemoryDataset" if after_run else "a MemoryDataset with no data"
        raise KedroMlflowPipelineMLError(
            f"The pipeline model needs '{name}', which is {state} (it is released after the run, so it would "
            f"be gone when the model is logged). Declare '{name}' in conf/base/catalog.yml with a persisted "
            f"dataset (e.g. type: pickle.PickleDataset, filepath: data/06_models/{name}.pkl).")
