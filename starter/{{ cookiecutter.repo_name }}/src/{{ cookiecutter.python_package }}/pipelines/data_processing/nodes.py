"""Nodes of the data_processing pipeline."""

from __future__ import annotations

from typing import Any

import pandas as pd
from sklearn.model_selection import train_test_split


def split_data(data: pd.DataFrame, target: str, split_options: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split the rows into a training set and a test set with the same class proportions.

    Args:
        data: The labelled rows.
        target: The column to predict, used to stratify the split.
        split_options: ``test_size`` (share of rows kept to test) and ``random_state``.

    Returns:
        The training set and the test set, all columns kept.
    """
    train_set, test_set = train_test_split(
        data,
        test_size=split_options["test_size"],
        random_state=split_options["random_state"],
        stratify=data[target],
    )
    return train_set, test_set
