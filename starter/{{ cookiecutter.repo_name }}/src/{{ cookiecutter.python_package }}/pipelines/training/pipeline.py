"""The training pipeline: train_set, test_set -> preprocessor, classifier, metrics, reports."""

from kedro.pipeline import Pipeline, node

from .nodes import bundle_model, evaluate_model, fit_preprocessor, report, train_model


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            node(
                fit_preprocessor,
                inputs=["train_set", "params:target"],
                outputs="preprocessor",
                name="fit_preprocessor",
            ),
            node(
                train_model,
                inputs=["train_set", "preprocessor", "params:target", "params:model_options"],
                outputs="classifier",
                name="train_model",
            ),
            node(
                evaluate_model,
                inputs=["test_set", "preprocessor", "classifier", "params:target"],
                outputs="metrics",
                name="evaluate_model",
            ),
            node(
                report,
                inputs=["test_set", "preprocessor", "classifier", "params:target"],
                outputs=["confusion_matrix", "classification_report"],
                name="report",
            ),
            node(
                bundle_model,
                inputs=["preprocessor", "classifier"],
                outputs="sklearn_model",
                name="bundle_model",
            ),
        ]
    )
