"""Predict the species of unlabelled rows with the fitted preprocessor and classifier."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
