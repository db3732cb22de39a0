"""Split the labelled iris data into a training set and a test set."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
