"""Errors raised when a pipeline model is declared or logged the wrong way."""

from __future__ import annotations


class KedroMlflowPipelineMLError(ValueError):
    """A ``pipeline_ml_factory`` call, a ``PipelineML`` or a pipeline model cannot work.

    The message names the datasets involved and how to fix the declaration.
    """
