import pytest
from matplotlib.figure import Figure

from {{ cookiecutter.python_package }}.pipelines.data_processing.nodes import split_data
from {{ cookiecutter.python_package }}.pipelines.inference.nodes import predict, preprocess
from {{ cookiecutter.python_package }}.pipelines.training.nodes import (
    bundle_model,
    evaluate_model,
    fit_preprocessor,
    report,
    train_model,
)


@pytest.fixture(scope="module")
def fitted(iris, parameters):
    target = parameters["target"]
    train_set, test_set = split_data(iris, target, parameters["split_options"])
    preprocessor = fit_preprocessor(train_set, target)
    classifier = train_model(train_set, preprocessor, target, parameters["model_options"])
    return train_set, test_set, preprocessor, classifier


def test_preprocessor_scales_the_feature_columns_only(fitted, parameters):
    train_set, _, preprocessor, _ = fitted
    features = preprocess(train_set, preprocessor)

    assert parameters["target"] not in features.columns
    assert features.mean().abs().max() < 1e-9
    assert (features.std(ddof=0) - 1).abs().max() < 1e-9


def test_classifier_predicts_the_test_set_well(fitted, parameters):
    _, test_set, preprocessor, classifier = fitted
    metrics = evaluate_model(test_set, preprocessor, classifier, parameters["target"])

    assert set(metrics) == {"accuracy", "f1_macro"}
    assert metrics["accuracy"] >= 0.9
    assert all(isinstance(value, float) for value in metrics.values())


def test_report_gives_a_figure_and_a_text_report(fitted, parameters):
    _, test_set, preprocessor, classifier = fitted
    figure, text = report(test_set, preprocessor, classifier, parameters["target"])

    assert isinstance(figure, Figure)
    for species in classifier.classes_:
        assert species in text


def test_bundled_model_predicts_raw_rows_like_the_inference_nodes(fitted, instances):
    _, _, preprocessor, classifier = fitted
    bundled = bundle_model(preprocessor, classifier)

    expected = predict(classifier, preprocess(instances, preprocessor))["species"]
    assert list(bundled.predict(instances)) == list(expected)
