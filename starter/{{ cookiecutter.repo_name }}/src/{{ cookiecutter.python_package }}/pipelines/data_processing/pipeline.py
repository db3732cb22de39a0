"""The data_processing pipeline: iris -> train_set, test_set."""

from kedro.pipeline import Pipeline, node

from .nodes import split_data


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            node(
                split_data,
                inputs=["iris", "params:target", "params:split_options"],
                outputs=["train_set", "test_set"],
                name="split_data",
            ),
        ]
    )
