"""``KedroPipelineModel``: a Kedro inference pipeline as an MLflow pyfunc model that reads its artifacts once
and calls the node functions in order on a dict of its own per ``predict`` (thread-safe, no catalog, no logs)."""

from __future__ import annotations

import atexit
import copy
import shutil
import tempfile
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from kedro.io import DataCatalog, MemoryDataset
from kedro.pipeline import Pipeline
from mlflow.pyfunc import PythonModel, PythonModelContext

from kedro_mlflow_starter import compat
from kedro_mlflow_starter.errors import (
    KedroMlflowPipelineMLError,
    KedroPipelineModelError,
    PipelineModelInputNotFoundError,
)
from kedro_mlflow_starter.kedro_names import PARAMS_PREFIX, parameter_key
from kedro_mlflow_starter.models.artifacts import (
    artifact_config,
    hand_mapped_spec,
    load_artifact,
    load_hand_mapped,
    safe_dirname,
    save_with_config,
)
from kedro_mlflow_starter.models.contract import check_model_inputs_in_catalog, model_datasets

if TYPE_CHECKING:
    from kedro.pipeline.node import Node
    from kedro.runner import AbstractRunner

COPY_MODES = {"assign": None, "copy": copy.copy, "deepcopy": copy.deepcopy}
_PARAM_TYPES = (str, bool, int, float)


def _compile_node(node: Node) -> Callable[[dict[str, Any]], None]:
    """One node as a step that reads its inputs from and writes its outputs to ``values``."""
    func, inputs, outputs, to_dict = compat.node_call_parts(node)
    if inputs is None:
        def call(values: dict[str, Any]) -> Any:
            return func()
    elif isinstance(inputs, str):
        def call(values: dict[str, Any]) -> Any:
            return func(values[inputs])
    elif isinstance(inputs, dict):
        pairs = tuple(inputs.items())

        def call(values: dict[str, Any]) -> Any:
            return func(**{arg: values[name] for arg, name in pairs})
    else:
        names = tuple(inputs)

        def call(values: dict[str, Any]) -> Any:
            return func(*[values[name] for name in names])

    if isinstance(outputs, str):
        def step(values: dict[str, Any]) -> None:
            values[outputs] = call(values)
    else:
        def step(values: dict[str, Any]) -> None:
            values.update(to_dict(call(values)))
    return step


class KedroPipelineModel(PythonModel):
    """An MLflow ``PythonModel`` that runs a Kedro inference pipeline in memory.

    Args:
        pipeline: The inference pipeline (one output), or a ``PipelineML`` (its inference).
        catalog: A catalog holding every input of the pipeline except ``input_name``:
            artifacts are read from it once, ``params:`` values are embedded in the model.
        input_name: The pipeline input that receives ``model_input``.
        runner: Optional Kedro runner instance to run the pipeline with on each call
            (slower: a catalog per call). None runs the node functions directly.
        copy_mode: How artifacts are handed to nodes on each call: ``"assign"`` (default,
            no copy), ``"copy"`` or ``"deepcopy"``; one mode for all, or a dict per artifact.
            Only needed when a node mutates an artifact in place.
    """

    def __init__(self, pipeline: Pipeline, catalog: DataCatalog, input_name: str,
                 runner: AbstractRunner | None = None, copy_mode: str | Mapping[str, str] | None = None):
        inference = getattr(pipeline, "inference", pipeline)
        self.pipeline = Pipeline(inference.nodes)
        datasets = model_datasets(self.pipeline, input_name)
        self._input_name = datasets.input_name
        self.output_name = datasets.output_name
        self.runner = runner
        self.param_names = datasets.param_names
        self.artifact_names = datasets.artifact_names
        self.copy_mode = self._check_copy_mode(copy_mode)
        try:
            check_model_inputs_in_catalog(self.param_names + self.artifact_names, catalog, after_run=False)
        except KedroMlflowPipelineMLError as error:
            if any(name not in catalog for name in self.param_names + self.artifact_names):
                raise PipelineModelInputNotFoundError(str(error)) from None
            # kedro-mlflow's users catch KedroPipelineModelError (an unpersisted input...).
            raise KedroPipelineModelError(str(error)) from None
        self.param_values = {name: catalog.load(name) for name in self.param_names}
        self.artifact_specs: dict[str, dict[str, Any]] = {}
        self.hand_mapped_specs = {name: hand_mapped_spec(catalog.get(name)) for name in self.artifact_names}
        self._catalog = catalog
        self._state: _State | None = None
        self._lock = threading.Lock()

    @property
    def input_name(self) -> str:
        """The pipeline input that receives ``model_input``; assigning another input re-checks it."""
        return self._input_name

    @input_name.setter
    def input_name(self, name: str) -> None:
        free_inputs = sorted(self.pipeline.inputs())
        if name not in free_inputs:
            raise KedroPipelineModelError(
                f"KedroPipelineModel: input_name {name!r} is not an input of the inference pipeline "
                f"(its inputs: {', '.join(free_inputs)}). Choose one of them.")
        self._input_name = name

    def _check_copy_mode(self, copy_mode: str | Mapping[str, str] | None) -> dict[str, str]:
        if copy_mode is not None and not isinstance(copy_mode, (str, Mapping)):
            raise TypeError(
                f"KedroPipelineModel: copy_mode must be a string ({', '.join(COPY_MODES)}) or a dict "
                f"{{artifact name: mode}}, got {type(copy_mode).__name__}.")
        modes = copy_mode if isinstance(copy_mode, Mapping) else dict.fromkeys(self.artifact_names, copy_mode)
        unknown = sorted(set(modes) - set(self.artifact_names))
        if unknown:
            raise KedroMlflowPipelineMLError(
                f"copy_mode names {unknown}, which are not artifacts of the pipeline model "
                f"(artifacts: {', '.join(self.artifact_names) or 'none'}).")
        checked = {}
        for name, mode in modes.items():
            mode = mode or "assign"
            if mode not in COPY_MODES:
                raise KedroMlflowPipelineMLError(
                    f"copy_mode {mode!r} for {name!r} is not valid. Allowed: {', '.join(COPY_MODES)}.")
            checked[name] = mode
        return checked

    def save_artifacts(self, directory: str | Path) -> dict[str, str]:
        """Read each artifact through the catalog, copy it under ``directory`` and keep it (the model predicts
        right away); return the ``artifacts`` mapping for ``mlflow.pyfunc.log_model``."""
        if self._catalog is None:
            raise KedroMlflowPipelineMLError("save_artifacts needs the catalog the model was built with.")
        directory = Path(directory)
        # `params:` values are frozen now, as kedro-mlflow does: the catalog may have changed since __init__
        self.param_values = {name: self._catalog.load(name) for name in self.param_names}
        loaded, mapping = {}, {}
        for name in self.artifact_names:
            data = self._catalog.load(name)
            target = directory / safe_dirname(name)
            self.artifact_specs[name] = save_with_config(name, artifact_config(self._catalog.get(name)), data, target)
            loaded[name] = data
            mapping[name] = str(target)
        self._state = _State(self, loaded)
        return mapping

    def extract_pipeline_artifacts(self, parameters_saving_folder: Any = None) -> dict[str, str]:
        """kedro-mlflow's name for ``save_artifacts``. The folder is a path, a ``TemporaryDirectory``, or None:
        a temporary folder removed when the process exits (MLflow copies the files into the model)."""
        if parameters_saving_folder is not None and not isinstance(parameters_saving_folder, (str, Path)):
            parameters_saving_folder = getattr(parameters_saving_folder, "name", parameters_saving_folder)
        if parameters_saving_folder is None:
            parameters_saving_folder = tempfile.mkdtemp(prefix="kedro-mlflow-artifacts-")
            atexit.register(shutil.rmtree, parameters_saving_folder, True)
        return self.save_artifacts(parameters_saving_folder)

    def load_context(self, context: PythonModelContext) -> None:
        """Read every artifact once, from the model's own files."""
        paths = dict(getattr(context, "artifacts", None) or {})
        missing = sorted(set(self.artifact_names) - set(paths))
        if missing:
            raise KedroPipelineModelError(
                f"KedroPipelineModel: the model's artifacts mapping lacks {missing} (given: "
                f"{sorted(paths) or 'none'}; the inference pipeline needs {sorted(self.artifact_names)}). "
                "Log the model with artifacts=model.extract_pipeline_artifacts().")
        hand_mapped = getattr(self, "hand_mapped_specs", {})
        loaded = {
            name: load_artifact(name, self.artifact_specs[name], paths[name]) if name in self.artifact_specs
            else load_hand_mapped(name, hand_mapped.get(name), paths[name])  # a hand-built `artifacts=`
            for name in self.artifact_names
        }
        self._state = _State(self, loaded)

    def _ensure_state(self) -> _State:
        with self._lock:
            if self._state is None:
                if self._catalog is None:
                    raise KedroMlflowPipelineMLError(
                        "The model has no artifacts loaded: load it with mlflow.pyfunc.load_model().")
                self._state = _State(self, {name: self._catalog.load(name) for name in self.artifact_names})
            return self._state

    @property
    def exposed_params(self) -> dict[str, Any]:
        """Parameters callers may override per request, by name without ``params:``: those MLflow takes as
        inference params (a scalar, or a flat list of one scalar type)."""
        return {parameter_key(name): value for name, value in self.param_values.items()
                if name.startswith(PARAMS_PREFIX) and (isinstance(value, _PARAM_TYPES) or (
                    isinstance(value, list) and value and isinstance(value[0], _PARAM_TYPES)
                    and len({type(v) for v in value}) == 1))}

    # ``pd.DataFrame`` is a hint MLflow derives no schema from: the signature stays the one
    # inferred from the data (no hint at all, or ``Any``, makes MLflow warn).
    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> Any:
        """Run the inference pipeline on ``model_input``; ``params`` override ``params:`` values."""
        state = self._state or self._ensure_state()
        values = dict(state.base)
        if params:
            for key, value in params.items():
                name = state.param_keys.get(key)
                if name is None:
                    raise KedroMlflowPipelineMLError(
                        f"Unknown inference param {key!r}. This model accepts: "
                        f"{', '.join(sorted(state.param_keys)) or 'no params'}.")
                values[name] = value
        for name, copier in state.copiers:
            values[name] = copier(values[name])
        values[self.input_name] = model_input
        if self.runner is not None:  # a catalog per call, no hook manager
            catalog = DataCatalog({name: MemoryDataset(value, copy_mode="assign") for name, value in values.items()})
            catalog[self.output_name] = MemoryDataset(copy_mode="assign")
            self.runner.run(self.pipeline, catalog)
            return catalog.load(self.output_name)
        for step in state.steps:
            step(values)
        return values[self.output_name]

    def __getstate__(self) -> dict[str, Any]:
        # neither the project's catalog (credentials) nor loaded objects travel with the pickle: artifacts are files
        state = dict(self.__dict__)
        state.update(_catalog=None, _state=None, _lock=None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        if "input_name" in state:  # pickled before input_name became a checked property
            state["_input_name"] = state.pop("input_name")
        self.__dict__.update(state)
        self._lock = threading.Lock()


class _State:
    """What ``predict`` needs, computed once when the artifacts are loaded."""

    def __init__(self, model: KedroPipelineModel, artifacts: dict[str, Any]):
        self.base = {**model.param_values, **artifacts}
        self.param_keys = {parameter_key(name): name for name in model.param_values if name.startswith(PARAMS_PREFIX)}
        self.copiers = [
            (name, COPY_MODES[mode]) for name, mode in model.copy_mode.items() if COPY_MODES[mode] is not None
        ]
        self.steps = [_compile_node(node) for node in model.pipeline.nodes]

