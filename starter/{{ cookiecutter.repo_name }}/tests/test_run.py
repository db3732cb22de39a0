"""The project's pipelines end to end, in memory: no files written, nothing logged to MLflow."""

from kedro.framework.project import pipelines
from kedro.framework.startup import bootstrap_project
from kedro.io import DataCatalog
from kedro.runner import SequentialRunner
from kedro_mlflow_starter import PipelineML

from {{ cookiecutter.python_package }}.pipelines import data_processing, inference, training


def test_registry_declares_training_with_its_inference_pipeline(project_root):
    bootstrap_project(project_root)

    assert {"__default__", "data_processing", "training", "inference"} <= set(pipelines)
    assert isinstance(pipelines["training"], PipelineML)
    assert set(pipelines["__default__"].nodes) == set(pipelines["data_processing"].nodes) | set(
        pipelines["training"].nodes
    )


def test_pipelines_run_from_raw_data_to_predictions(iris, instances, parameters):
    catalog = DataCatalog()
    catalog["iris"] = iris
    catalog["instances"] = instances
    for name, value in parameters.items():
        catalog[f"params:{name}"] = value
    everything = data_processing.create_pipeline() + training.create_pipeline() + inference.create_pipeline()

    outputs = SequentialRunner().run(everything, catalog)

    predictions = outputs["predictions"].load()
    assert len(predictions) == len(instances)
    assert set(predictions["species"]) <= set(iris[parameters["target"]])
    assert predictions["probability"].between(0, 1).all()
    assert outputs["metrics"].load()["accuracy"] >= 0.9
