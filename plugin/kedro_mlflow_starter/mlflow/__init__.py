"""MLflow side of pipeline models: ``KedroPipelineModel``, the pyfunc ``PythonModel``.

Importing this package imports ``mlflow`` (the class subclasses ``mlflow.pyfunc.PythonModel``);
nothing on Kedro's start-up path imports it.
"""

from kedro_mlflow_starter.mlflow.kedro_pipeline_model import KedroPipelineModel

__all__ = ["KedroPipelineModel"]
