"""Nodes of the training pipeline."""

from __future__ import annotations

from typing import Any

import pandas as pd
from matplotlib.figure import Figure
from sklearn.base import ClassifierMixin, TransformerMixin
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import ConfusionMatrixDisplay, accuracy_score, classification_report, f1_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from ..inference.nodes import preprocess


def fit_preprocessor(train_set: pd.DataFrame, target: str) -> StandardScaler:
    """Learn how to scale every feature column (all columns but ``target``)."""
    scaler = StandardScaler().set_output(transform="pandas")
    return scaler.fit(train_set.drop(columns=[target]))


def train_model(
    train_set: pd.DataFrame, preprocessor: TransformerMixin, target: str, model_options: dict[str, Any]
) -> LogisticRegression:
    """Fit the classifier on the preprocessed training set (``model_options``: its arguments)."""
    classifier = LogisticRegression(**model_options)
    return classifier.fit(preprocess(train_set, preprocessor), train_set[target])


def evaluate_model(
    test_set: pd.DataFrame, preprocessor: TransformerMixin, classifier: ClassifierMixin, target: str
) -> dict[str, float]:
    """Accuracy and macro-averaged F1 score on the test set."""
    predicted = classifier.predict(preprocess(test_set, preprocessor))
    return {
        "accuracy": float(accuracy_score(test_set[target], predicted)),
        "f1_macro": float(f1_score(test_set[target], predicted, average="macro")),
    }


def report(
    test_set: pd.DataFrame, preprocessor: TransformerMixin, classifier: ClassifierMixin, target: str
) -> tuple[Figure, str]:
    """The confusion matrix as a figure and scikit-learn's classification report as text."""
    predicted = classifier.predict(preprocess(test_set, preprocessor))
    # A Figure made without pyplot: nothing stays open in pyplot's global state.
    figure = Figure(figsize=(5, 4), layout="constrained")
    axes = figure.add_subplot()
    ConfusionMatrixDisplay.from_predictions(
        test_set[target], predicted, labels=classifier.classes_, ax=axes, colorbar=False
    )
    axes.set_title("Confusion matrix (test set)")
    return figure, classification_report(test_set[target], predicted, digits=3)


def bundle_model(preprocessor: TransformerMixin, classifier: ClassifierMixin) -> Pipeline:
    """Preprocessor and classifier as one scikit-learn estimator, which predicts from raw rows."""
    return Pipeline([("preprocess", preprocessor), ("classify", classifier)])
