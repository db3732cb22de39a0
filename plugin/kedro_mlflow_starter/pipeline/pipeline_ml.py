"""``PipelineML``: the training ``Pipeline`` Kedro runs, carrying the inference pipeline the hook logs as a model
(built by ``pipeline_ml_factory``); a filter that drops what inference needs gives a plain ``Pipeline``. No mlflow."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from kedro.pipeline import Pipeline

from kedro_mlflow_starter.errors import KedroMlflowPipelineMLError
from kedro_mlflow_starter.kedro_names import strip_transcoding
from kedro_mlflow_starter.models.contract import model_datasets, quoted

if TYPE_CHECKING:
    from kedro.pipeline.node import Node

logger = logging.getLogger(__name__)

KPM_KWARGS = ("runner", "copy_mode")
LOG_MODEL_KWARGS = ("name", "registered_model_name", "await_registration_for", "signature", "input_example",
                    "pip_requirements", "extra_pip_requirements", "conda_env", "code_paths", "metadata", "tags",
                    "model_type")
DEFAULT_MODEL_NAME = "model"
_NOTICE_ATTRIBUTE = "_kedro_mlflow_model_not_logged"


def model_not_logged_notice(pipeline: Pipeline) -> str | None:
    """Why the pipeline model will not be logged when ``pipeline`` (filtered out of a ``PipelineML``) runs."""
    return getattr(pipeline, _NOTICE_ATTRIBUTE, None)


def warn_if_model_not_logged(pipeline: Pipeline) -> None:
    """Log the notice of ``model_not_logged_notice`` (the hook calls it once per tracked run)."""
    notice = model_not_logged_notice(pipeline)
    if notice:
        logger.warning(notice)


class PipelineML(Pipeline):
    """The training ``Pipeline`` (build it with ``pipeline_ml_factory``); ``.inference``, ``.input_name``,
    ``.kpm_kwargs`` and ``.log_model_kwargs`` describe the model."""

    def __init__(self, nodes: Iterable[Node] | Pipeline, *, inference: Pipeline, input_name: str,
                 kpm_kwargs: Mapping[str, Any] | None = None, log_model_kwargs: Mapping[str, Any] | None = None):
        super().__init__(nodes)
        if not isinstance(inference, Pipeline):
            raise KedroMlflowPipelineMLError(
                f"pipeline_ml_factory: 'inference' must be a kedro Pipeline, got {type(inference).__name__}. "
                "Build it with kedro.pipeline.pipeline([...]).")
        self.inference = inference if type(inference) is Pipeline else Pipeline(inference.nodes)
        self.kpm_kwargs = _checked_kwargs("kpm_kwargs", kpm_kwargs, KPM_KWARGS)
        self.log_model_kwargs = {
            "name": DEFAULT_MODEL_NAME,
            **_checked_kwargs("log_model_kwargs", _renamed_artifact_path(log_model_kwargs), LOG_MODEL_KWARGS),
        }
        try:
            self._model = model_datasets(self.inference, input_name)
        except KedroMlflowPipelineMLError as error:
            raise KedroMlflowPipelineMLError(f"pipeline_ml_factory: {error}") from None
        self.input_name = self._model.input_name
        missing = self._missing_artifacts(self)
        if missing:
            raise KedroMlflowPipelineMLError(
                f"pipeline_ml_factory: the inference pipeline reads {quoted(missing)}, which the training "
                f"pipeline neither produces nor reads (training datasets: {quoted(self._stripped(self))}). "
                "Every inference input other than input_name must come from training (e.g. a fitted "
                "model or encoder) or be a 'params:' entry. Add the node that produces it to the "
                "training pipeline, or make it the input_name.")

    @property
    def training(self) -> Pipeline:
        return Pipeline(self.nodes)

    @property
    def output_name(self) -> str:
        return self._model.output_name

    @property
    def artifact_names(self) -> list[str]:
        """Inference inputs that training produces or reads: they travel inside the model."""
        return self._model.artifact_names

    @property
    def param_names(self) -> list[str]:
        return self._model.param_names

    @staticmethod
    def _stripped(pipeline: Pipeline) -> set[str]:
        return {strip_transcoding(name) for name in pipeline.datasets()}

    def _missing_artifacts(self, candidate: Pipeline) -> list[str]:
        present = self._stripped(candidate)
        return [name for name in self.artifact_names if strip_transcoding(name) not in present]

    def _with_nodes(self, nodes: Iterable[Node]) -> PipelineML:
        return PipelineML(nodes, inference=self.inference, input_name=self.input_name, kpm_kwargs=self.kpm_kwargs,
                          log_model_kwargs=self.log_model_kwargs)

    def _rewrap(self, result: Pipeline, operation: str) -> Pipeline:
        """``result`` as a ``PipelineML`` when it still yields the model, else a plain ``Pipeline`` carrying the
        notice (told by the hook only if it is the pipeline run: Kedro filters pipelines for its own reasons)."""
        missing = self._missing_artifacts(result)
        if not missing:
            return self._with_nodes(result.nodes)
        plain = Pipeline(result.nodes)
        setattr(plain, _NOTICE_ATTRIBUTE, (
            f"The pipeline model will not be logged for this run: after {operation}, no remaining node "
            f"produces or reads {quoted(missing)}, which the inference pipeline needs (the model would "
            "not match this run). Include the nodes that produce them (e.g. drop the filter) to log the model."
        ))
        return plain

    def _merged(self, other: Pipeline) -> Pipeline:
        if isinstance(other, PipelineML) and (
            other.input_name != self.input_name or set(other.inference.nodes) != set(self.inference.nodes)
        ):
            # As kedro-mlflow documents: the sum of two pipeline models is a plain pipeline.
            logger.warning(
                "Adding two PipelineML with different inference pipelines (input_name %r and %r) gives a "
                "plain Pipeline: no pipeline model will be logged when it runs. Register them as separate "
                "pipelines to log each model.", self.input_name, other.input_name)
            return Pipeline(set(self.nodes) | set(other.nodes))
        return self._with_nodes(set(self.nodes) | set(other.nodes))

    def __add__(self, other: Any) -> Pipeline:
        return self._merged(other) if isinstance(other, Pipeline) else NotImplemented

    def __radd__(self, other: Any) -> Pipeline:
        if isinstance(other, int) and other == 0:  # sum([...])
            return self
        return self.__add__(other)

    __or__ = __ror__ = __add__

    def __sub__(self, other: Any) -> Pipeline:
        if not isinstance(other, Pipeline):
            return NotImplemented
        return self._rewrap(Pipeline(set(self.nodes) - set(other.nodes)), "subtracting a pipeline")

    def __and__(self, other: Any) -> Pipeline:
        if not isinstance(other, Pipeline):
            return NotImplemented
        return self._rewrap(Pipeline(set(self.nodes) & set(other.nodes)), "intersecting with a pipeline")

    __rand__ = __and__

    def tag(self, tags: str | Iterable[str]) -> PipelineML:
        return self._with_nodes(n.tag(tags) for n in self.nodes)


def _filtering(method: str) -> Any:
    """A ``Pipeline`` filtering method run on the plain training pipeline (Kedro's filters call each other: no
    notice for intermediate results), re-wrapped when coherent."""
    base = getattr(Pipeline, method)

    def filtered(self: PipelineML, *args: Any, **kwargs: Any) -> Pipeline:
        shown = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items() if v]
        return self._rewrap(base(Pipeline(self.nodes), *args, **kwargs), f"{method}({', '.join(shown)})")

    filtered.__name__ = filtered.__qualname__ = method
    filtered.__doc__ = base.__doc__
    return filtered


for _method in ("filter", "only_nodes", "only_nodes_with_namespaces", "only_nodes_with_inputs",
                "only_nodes_with_outputs", "only_nodes_with_tags", "from_inputs", "to_outputs", "from_nodes", "to_nodes"):
    setattr(PipelineML, _method, _filtering(_method))


def _renamed_artifact_path(kwargs: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """kedro-mlflow's ``artifact_path`` (MLflow 2) is MLflow 3's ``name``: accepted with a warning."""
    if not kwargs or "artifact_path" not in kwargs:
        return kwargs
    renamed = dict(kwargs)
    value = renamed.pop("artifact_path")
    if "name" in renamed and renamed["name"] != value:
        raise KedroMlflowPipelineMLError(
            f"pipeline_ml_factory: log_model_kwargs gives both artifact_path {value!r} and name "
            f"{renamed['name']!r}; keep only `name` (MLflow 3's spelling).")
    warnings.warn(
        f"pipeline_ml_factory: log_model_kwargs 'artifact_path' is MLflow 2's name for the model; MLflow 3 "
        f"calls it 'name'. Write log_model_kwargs={{'name': {value!r}}} instead.",
        FutureWarning, stacklevel=4)
    renamed["name"] = value
    return renamed


def _checked_kwargs(what: str, given: Mapping[str, Any] | None, allowed: tuple[str, ...]) -> dict[str, Any]:
    if given is None:
        return {}
    if not isinstance(given, Mapping):
        raise KedroMlflowPipelineMLError(f"pipeline_ml_factory: {what} must be a dict, got {type(given).__name__}.")
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        hint = " ('artifact_path' is deprecated in MLflow 3: use 'name')" if "artifact_path" in unknown else ""
        raise KedroMlflowPipelineMLError(
            f"pipeline_ml_factory: unknown {what} key(s) {unknown}{hint}. Allowed: {', '.join(allowed)}.")
    return dict(given)


def pipeline_ml_factory(training: Pipeline, inference: Pipeline, input_name: str,
                        kpm_kwargs: Mapping[str, Any] | None = None,
                        log_model_kwargs: Mapping[str, Any] | None = None) -> PipelineML:
    """Bind a training pipeline and its inference pipeline into one ``PipelineML``.

    Args:
        training: The pipeline that fits what inference needs (encoders, the model...).
        inference: The pipeline that predicts: exactly one output, and every input other
            than ``input_name`` is produced or read by ``training`` or is a ``params:`` entry.
        input_name: The inference input that receives the data to predict on.
        kpm_kwargs: Passed to ``KedroPipelineModel``: ``runner``, ``copy_mode``.
        log_model_kwargs: How the model is logged: ``name`` (default ``"model"``),
            ``registered_model_name``, ``signature`` / ``input_example`` (``"auto"`` by
            default, ``None`` to skip, or your own), ``pip_requirements``,
            ``extra_pip_requirements``, ``conda_env``, ``code_paths``, ``metadata``, ``tags``,
            ``model_type``, ``await_registration_for``.
    """
    if not isinstance(training, Pipeline):
        raise KedroMlflowPipelineMLError(
            f"pipeline_ml_factory: 'training' must be a kedro Pipeline, got {type(training).__name__}.")
    if isinstance(training, PipelineML):
        raise KedroMlflowPipelineMLError("pipeline_ml_factory: 'training' is already a PipelineML; "
                                         "pass its plain training pipeline.")
    return PipelineML(training.nodes, inference=inference, input_name=input_name, kpm_kwargs=kpm_kwargs,
                      log_model_kwargs=log_model_kwargs)
