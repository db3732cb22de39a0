"""The tracking side of the hook: parameters, tags, the MLflow run and its status."""
