"""Kedro-facing parts: the hook and the ``kedro mlflow`` commands."""
