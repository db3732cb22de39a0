"""PipelineML and pipeline_ml_factory: validation, and staying a PipelineML through Kedro's algebra."""

from __future__ import annotations

import logging
import pickle

import pytest
from kedro.pipeline import Pipeline, node, pipeline

from kedro_mlflow_starter import PipelineML, pipeline_ml_factory
from kedro_mlflow_starter.pipeline import KedroMlflowPipelineMLError
from kedro_mlflow_starter.pipeline.pipeline_ml import model_not_logged_notice, warn_if_model_not_logged
from tests.project_factory import script_result


def identity(x):
    return x


def combine(*args):
    return args[0]


def two_outputs(x):
    return x, x


TRAINING = pipeline([
    node(identity, "raw", "features", name="featurize"),
    node(identity, "features", "encoder", name="fit_encoder", tags=["prep"]),
    node(combine, ["features", "encoder", "params:alpha"], "model", name="fit_model", tags=["train"]),
    node(identity, "model", "report", name="report"),
])
INFERENCE = pipeline([
    node(combine, ["instances", "encoder"], "encoded", name="encode"),
    node(combine, ["encoded", "model", "params:threshold"], "predictions", name="predict"),
])
WARNING_TEXT = "pipeline model will not be logged"


@pytest.fixture
def ml() -> PipelineML:
    return pipeline_ml_factory(TRAINING, INFERENCE, input_name="instances")


@pytest.fixture
def caplog_warnings(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.WARNING, logger="kedro_mlflow_starter.pipeline.pipeline_ml")
    return caplog


def _model_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if WARNING_TEXT in r.getMessage()]


def test_factory_builds_a_training_pipeline_that_knows_its_model(ml: PipelineML) -> None:
    assert isinstance(ml, Pipeline)
    assert set(ml.nodes) == set(TRAINING.nodes)
    assert ml.inputs() == TRAINING.inputs()
    assert ml.outputs() == TRAINING.outputs()
    assert ml.artifact_names == ["encoder", "model"]
    assert ml.param_names == ["params:threshold"]
    assert ml.output_name == "predictions"
    assert ml.log_model_kwargs == {"name": "model"}
    assert "PipelineML" in repr(ml)


def test_public_names_are_exported_from_the_package_root() -> None:
    import kedro_mlflow_starter

    assert kedro_mlflow_starter.PipelineML is PipelineML
    assert kedro_mlflow_starter.pipeline_ml_factory is pipeline_ml_factory


def test_importing_the_pipeline_package_does_not_import_mlflow() -> None:
    imported = script_result("modules_imported_by", {"imports": [
        "kedro_mlflow_starter.pipeline", "kedro_mlflow_starter",
        "kedro_mlflow_starter:pipeline_ml_factory", "kedro_mlflow_starter:PipelineML"]}, timeout=60)
    assert "mlflow" not in imported["modules"], [m for m in imported["modules"] if "mlflow" in m]


# -- validation ---------------------------------------------------------------------------------


def test_inference_with_two_outputs_is_refused_naming_them() -> None:
    inference = pipeline([node(two_outputs, "instances", ["predictions", "probabilities"], name="p")])
    with pytest.raises(KedroMlflowPipelineMLError, match="exactly one output") as error:
        pipeline_ml_factory(TRAINING, inference, input_name="instances")
    assert "'predictions'" in str(error.value) and "'probabilities'" in str(error.value)


def test_input_name_not_in_inference_is_refused_listing_valid_inputs() -> None:
    with pytest.raises(KedroMlflowPipelineMLError, match="input_name='rows' is not an input") as error:
        pipeline_ml_factory(TRAINING, INFERENCE, input_name="rows")
    message = str(error.value)
    assert "'instances'" in message and "'encoder'" in message and "'model'" in message
    assert "params:threshold" not in message


def test_free_inference_input_is_refused_naming_it_and_the_fix() -> None:
    inference = pipeline([node(combine, ["instances", "model", "lookup_table"], "predictions", name="p")])
    with pytest.raises(KedroMlflowPipelineMLError, match="'lookup_table'") as error:
        pipeline_ml_factory(TRAINING, inference, input_name="instances")
    assert "neither produces nor reads" in str(error.value)
    assert "'model'" not in str(error.value).split("training datasets")[0]


def test_inputs_read_but_not_produced_by_training_are_allowed() -> None:
    inference = pipeline([node(combine, ["instances", "raw", "params:threshold"], "predictions", name="p")])
    ml = pipeline_ml_factory(TRAINING, inference, input_name="instances")
    assert ml.artifact_names == ["raw"]


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"log_model_kwargs": {"nme": "m"}}, "unknown log_model_kwargs key"),
        ({"kpm_kwargs": {"copy": "deepcopy"}}, "Allowed: runner, copy_mode"),
        ({"log_model_kwargs": ["name"]}, "must be a dict"),
    ],
)
def test_bad_kwargs_are_refused_listing_allowed_keys(kwargs: dict, expected: str) -> None:
    with pytest.raises(KedroMlflowPipelineMLError, match=expected):
        pipeline_ml_factory(TRAINING, INFERENCE, input_name="instances", **kwargs)


def test_non_pipelines_are_refused() -> None:
    with pytest.raises(KedroMlflowPipelineMLError, match="'training' must be a kedro Pipeline"):
        pipeline_ml_factory([TRAINING], INFERENCE, input_name="instances")  # type: ignore[arg-type]
    with pytest.raises(KedroMlflowPipelineMLError, match="'inference' must be a kedro Pipeline"):
        pipeline_ml_factory(TRAINING, "inference", input_name="instances")  # type: ignore[arg-type]


def test_transcoded_input_name_can_be_given_without_its_suffix() -> None:
    inference = pipeline([node(combine, ["instances@pandas", "model"], "predictions", name="p")])
    ml = pipeline_ml_factory(TRAINING, inference, input_name="instances")
    assert ml.input_name == "instances@pandas"


# -- staying a PipelineML -------------------------------------------------------------------------


def test_sum_with_empty_pipeline_stays_pipeline_ml_as_kedro_session_builds_it(ml: PipelineML) -> None:
    combined = Pipeline([])
    combined += ml  # exactly what KedroSession.run does
    assert isinstance(combined, PipelineML)
    assert isinstance(Pipeline([]) + ml, PipelineML)
    assert isinstance(ml + Pipeline([]), PipelineML)
    assert isinstance(sum([ml]), PipelineML)


def test_sum_with_other_pipelines_keeps_the_model_and_all_nodes(ml: PipelineML) -> None:
    other = pipeline([node(identity, "elsewhere", "other_output", name="other")])
    for combined in (other + ml, ml + other, other | ml, ml | other):
        assert isinstance(combined, PipelineML)
        assert {n.name for n in combined.nodes} == {n.name for n in ml.nodes} | {"other"}
        assert combined.inference is ml.inference
        assert combined.input_name == "instances"


def test_kedro_session_default_filter_keeps_pipeline_ml(ml: PipelineML, caplog_warnings) -> None:
    filtered = (Pipeline([]) + ml).filter(
        tags=None, from_nodes=None, to_nodes=None, node_names=None, from_inputs=None, to_outputs=None,
        node_namespaces=None,
    )
    assert isinstance(filtered, PipelineML)
    assert set(filtered.nodes) == set(ml.nodes)
    assert _model_warnings(caplog_warnings) == []


@pytest.mark.parametrize(
    "filter_kwargs",
    [
        {"from_nodes": ["fit_model"]},  # reads the encoder, produces the model
        {"to_nodes": ["fit_model"]},
        {"tags": ["train"]},
        {"node_names": ["fit_model"]},
        {"to_outputs": ["model"]},
        {"from_inputs": ["encoder"]},
    ],
)
def test_coherent_filters_keep_pipeline_ml_without_warning(ml: PipelineML, caplog_warnings, filter_kwargs) -> None:
    filtered = ml.filter(**filter_kwargs)
    assert isinstance(filtered, PipelineML), filter_kwargs
    assert filtered.artifact_names == ["encoder", "model"]
    assert _model_warnings(caplog_warnings) == []


@pytest.mark.parametrize(
    ("filter_kwargs", "missing"),
    [
        ({"to_nodes": ["fit_encoder"]}, "'model'"),
        ({"tags": ["prep"]}, "'model'"),
        ({"from_nodes": ["report"]}, "'encoder',"),
    ],
)
def test_incoherent_filters_give_plain_pipeline_and_one_warning(ml, caplog_warnings, filter_kwargs, missing) -> None:
    filtered = ml.filter(**filter_kwargs)
    assert type(filtered) is Pipeline
    assert _model_warnings(caplog_warnings) == []  # told once by the hook when this pipeline runs
    warn_if_model_not_logged(filtered)
    warnings = _model_warnings(caplog_warnings)
    assert len(warnings) == 1
    assert missing in warnings[0]
    assert "filter(" in warnings[0]


def test_filtering_methods_return_pipeline_ml_when_coherent(ml: PipelineML, caplog_warnings) -> None:
    assert isinstance(ml.from_nodes("fit_model"), PipelineML)
    assert isinstance(ml.to_nodes("report"), PipelineML)
    assert isinstance(ml.only_nodes("fit_model"), PipelineML)
    assert isinstance(ml.only_nodes_with_tags("train"), PipelineML)
    assert isinstance(ml.only_nodes_with_inputs("encoder"), PipelineML)
    assert isinstance(ml.only_nodes_with_outputs("model"), PipelineML)
    assert isinstance(ml.from_inputs("raw"), PipelineML)
    assert isinstance(ml.to_outputs("report"), PipelineML)
    assert _model_warnings(caplog_warnings) == []
    dropped = ml.only_nodes("featurize")
    assert type(dropped) is Pipeline
    assert "only_nodes('featurize')" in model_not_logged_notice(dropped)
    assert model_not_logged_notice(ml.only_nodes("fit_model")) is None


def test_subtracting_the_model_nodes_gives_plain_pipeline(ml: PipelineML, caplog_warnings) -> None:
    remaining = ml - pipeline([n for n in ml.nodes if n.name in ("fit_encoder", "fit_model")])
    assert type(remaining) is Pipeline
    assert "subtracting a pipeline" in model_not_logged_notice(remaining)
    kept = ml - pipeline([n for n in ml.nodes if n.name == "report"])
    assert isinstance(kept, PipelineML)


def test_tag_keeps_pipeline_ml_and_tags_training_nodes(ml: PipelineML) -> None:
    tagged = ml.tag("nightly")
    assert isinstance(tagged, PipelineML)
    assert all("nightly" in n.tags for n in tagged.nodes)
    assert isinstance(tagged.filter(tags=["nightly"]), PipelineML)


def test_adding_two_different_pipeline_ml_gives_a_plain_pipeline_with_a_warning(ml: PipelineML, caplog) -> None:
    """As kedro-mlflow documents (issue 12 item 7): a plain Pipeline and a warning, not an error."""
    other_inference = pipeline([node(combine, ["instances", "model"], "scores", name="score")])
    other = pipeline_ml_factory(TRAINING, other_inference, input_name="instances")
    with caplog.at_level("WARNING"):
        summed = ml + other
    assert type(summed) is Pipeline and set(summed.nodes) == set(ml.nodes) | set(other.nodes)
    assert "different inference pipelines" in caplog.text and "no pipeline model will be logged" in caplog.text
    assert isinstance(ml + ml, PipelineML)


def test_pipeline_ml_pickles_for_parallel_runner(ml: PipelineML) -> None:
    copy = pickle.loads(pickle.dumps(ml))
    assert isinstance(copy, PipelineML)
    assert copy.artifact_names == ml.artifact_names
    assert {n.name for n in copy.nodes} == {n.name for n in ml.nodes}
