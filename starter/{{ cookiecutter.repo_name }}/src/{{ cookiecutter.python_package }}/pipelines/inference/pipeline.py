"""The inference pipeline: instances -> predictions.

Its single input, ``instances``, is what the logged pipeline model receives at predict
time; ``preprocessor`` and ``classifier`` are fitted by the training pipeline.
"""

from kedro.pipeline import Pipeline, node

from .nodes import predict, preprocess


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            node(
                preprocess,
                inputs=["instances", "preprocessor"],
                outputs="instance_features",
                name="preprocess_instances",
            ),
            node(
                predict,
                inputs=["classifier", "instance_features"],
                outputs="predictions",
                name="predict",
            ),
        ]
    )
