"""Fit the preprocessing and the classifier, evaluate them on the test set, report."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
