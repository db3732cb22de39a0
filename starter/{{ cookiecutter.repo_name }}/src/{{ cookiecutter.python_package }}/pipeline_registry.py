"""The project's pipelines, by name: `kedro registry list`, `kedro run --pipelines <name>`."""

from __future__ import annotations

from kedro.pipeline import Pipeline
from kedro_mlflow_starter import pipeline_ml_factory

from {{ cookiecutter.python_package }}.pipelines import data_processing, inference, training


def register_pipelines() -> dict[str, Pipeline]:
    """Register the project's pipelines.

    ``training`` is declared together with ``inference``: after each tracked training run,
    the inference pipeline is logged to the run as one MLflow model, with the preprocessor
    and classifier that run fitted. That model predicts from raw ``instances`` rows wherever
    MLflow runs (``mlflow.pyfunc.load_model``, ``mlflow models serve``).

    The model is logged as ``iris_pipeline_model`` (the one to serve: raw rows in, species and
    probability out) and registered as ``{{ cookiecutter.python_package }}``, one version per
    training run, so ``models:/{{ cookiecutter.python_package }}/latest`` is always the last
    one. Not using the model registry? Delete the ``registered_model_name`` line.

    The pipelines are listed here rather than found with ``find_pipelines``: the training
    pipeline needs the inference pipeline even when only ``--pipelines training`` is run.
    """
    data_processing_pipeline = data_processing.create_pipeline()
    inference_pipeline = inference.create_pipeline()
    training_pipeline = pipeline_ml_factory(
        training=training.create_pipeline(),
        inference=inference_pipeline,
        input_name="instances",
        log_model_kwargs={
            "name": "iris_pipeline_model",
            "registered_model_name": "{{ cookiecutter.python_package }}",
        },
    )
    return {
        "__default__": data_processing_pipeline + training_pipeline,
        "data_processing": data_processing_pipeline,
        "training": training_pipeline,
        "inference": inference_pipeline,
    }
