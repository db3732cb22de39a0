"""Nodes of the inference pipeline (training uses ``preprocess`` too, so that the model is
evaluated through exactly the transformation it is served with)."""

from __future__ import annotations

import pandas as pd
from sklearn.base import ClassifierMixin, TransformerMixin


def preprocess(data: pd.DataFrame, preprocessor: TransformerMixin) -> pd.DataFrame:
    """The features the classifier expects, from rows holding at least the raw feature columns.

    Columns the preprocessor was not fitted on (such as the label) are ignored.
    """
    return preprocessor.transform(data[list(preprocessor.feature_names_in_)])


def predict(classifier: ClassifierMixin, features: pd.DataFrame) -> pd.DataFrame:
    """The predicted species of each row and the classifier's confidence in it."""
    probabilities = classifier.predict_proba(features)
    best = probabilities.argmax(axis=1)
    return pd.DataFrame(
        {
            "species": classifier.classes_[best],
            "probability": probabilities.max(axis=1).round(4),
        },
        index=features.index,
    )
