"""``MlflowModelRegistryDataset``: load a registered model version by alias or version."""

from __future__ import annotations

from typing import Any

from kedro.io.core import AbstractDataset, DatasetError

from kedro_mlflow_starter.io._downloads import load_model
from kedro_mlflow_starter.io._flavors import PYFUNC, PYFUNC_WORKFLOWS, check_flavor, import_flavor
from kedro_mlflow_starter.tracking.current import current_client


class MlflowModelRegistryDataset(AbstractDataset[None, Any]):
    """Load a model from the MLflow Model Registry (load-only): by ``alias`` (preferred) or
    ``model_version`` (Kedro keeps ``version:`` for its own versioning), else the latest version.

    Example catalog entries (``conf/base/catalog.yml``):

    .. code-block:: yaml

        champion_model:
          type: kedro_mlflow_starter.io.MlflowModelRegistryDataset
          model_name: iris-regressor
          alias: champion

        pinned_model:
          type: kedro_mlflow_starter.io.MlflowModelRegistryDataset
          model_name: iris-regressor
          model_version: 3
          flavor: mlflow.sklearn      # the native model instead of a pyfunc wrapper

    Python API (``run_id`` is an existing MLflow run, ``client`` an ``MlflowClient`` of the
    same store; the model is registered by logging it, then given an alias):

    >>> from sklearn.linear_model import LinearRegression
    >>> from kedro_mlflow_starter.io import MlflowModelRegistryDataset, MlflowModelTrackingDataset
    >>> MlflowModelTrackingDataset(flavor="mlflow.sklearn", run_id=run_id,
    ...                            save_args={"registered_model_name": "iris-regressor"}).save(
    ...     LinearRegression().fit([[1], [2], [3]], [2, 4, 6]))
    >>> client.set_registered_model_alias("iris-regressor", "champion", "1")
    >>> champion = MlflowModelRegistryDataset(model_name="iris-regressor", alias="champion").load()
    >>> champion.predict([[4]]).round(3).tolist()
    [8.0]
    >>> pinned = MlflowModelRegistryDataset(model_name="iris-regressor", model_version=1, flavor="mlflow.sklearn")
    >>> type(pinned.load()).__name__
    'LinearRegression'
    """

    def __init__(  # noqa: PLR0913
        self,
        *,
        model_name: str,
        alias: str | None = None,
        model_version: int | str | None = None,
        flavor: str = PYFUNC,
        load_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        stage_or_version: int | str | None = None,
        pyfunc_workflow: str | None = None,
    ) -> None:
        """``stage_or_version`` (a number, ``latest`` or a stage) and ``pyfunc_workflow`` (unused): kedro-mlflow's."""
        if not model_name or not isinstance(model_name, str):
            raise DatasetError("MlflowModelRegistryDataset needs `model_name:`, the registered model's name.")
        if pyfunc_workflow is not None and pyfunc_workflow not in PYFUNC_WORKFLOWS:
            raise DatasetError(
                f"MlflowModelRegistryDataset '{model_name}': `pyfunc_workflow` must be `python_model` or "
                f"`loader_module`, got {pyfunc_workflow!r}."
            )
        self._stage: str | None = None
        if stage_or_version is not None:
            if model_version is not None:
                raise DatasetError(
                    f"MlflowModelRegistryDataset '{model_name}': give either `stage_or_version:` or "
                    f"`model_version:`, not both (got {stage_or_version!r} and {model_version!r})."
                )
            text = str(stage_or_version)
            if text.isdigit():
                model_version = text
            elif text.lower() != "latest":
                self._stage = text
        if alias is not None and self._stage is not None:
            raise DatasetError(
                f"MlflowModelRegistryDataset '{model_name}': give either `alias:` or `stage_or_version:`, "
                f"not both (got alias {alias!r} and stage {self._stage!r}). Prefer `alias:`."
            )
        if alias is not None and model_version is not None:
            raise DatasetError(
                f"MlflowModelRegistryDataset '{model_name}': give either `alias:` or `model_version:`, "
                f"not both (got alias {alias!r} and version {model_version!r}). Prefer `alias:`."
            )
        if model_version is not None and not str(model_version).isdigit():
            raise DatasetError(
                f"MlflowModelRegistryDataset '{model_name}': `model_version:` must be a version "
                f"number such as 3, got {model_version!r}. For a named version use `alias:`."
            )
        check_flavor("MlflowModelRegistryDataset", flavor, "python_model" if flavor == PYFUNC else None, {})
        self._model_name = model_name
        self._alias = alias
        self._version = str(model_version) if model_version is not None else None
        self._flavor = flavor
        self._load_args = dict(load_args or {})
        self.metadata = metadata

    @property
    def model_uri(self) -> str:
        """The ``models:/`` URI this dataset loads."""
        if self._alias is not None:
            return f"models:/{self._model_name}@{self._alias}"
        return f"models:/{self._model_name}/{self._version or self._stage or 'latest'}"

    def load(self) -> Any:
        self._check_exists()
        return load_model(import_flavor(self._flavor).load_model, self.model_uri, self._load_args, self._model_name)

    def save(self, data: Any) -> None:
        raise DatasetError(
            f"MlflowModelRegistryDataset '{self._model_name}' is read-only. To register a model, "
            "save it with MlflowModelTrackingDataset and `save_args: {registered_model_name: "
            f"{self._model_name}}}`."
        )

    def _exists(self) -> bool:
        try:
            self._check_exists()
        except DatasetError:
            return False
        return True

    def _describe(self) -> dict[str, Any]:
        return {"model_uri": self.model_uri, "flavor": self._flavor}

    def _check_exists(self) -> None:
        """Turn the registry's terse 'not found' into a message that says what to do."""
        from mlflow.exceptions import MlflowException

        client = current_client()
        try:
            client.get_registered_model(self._model_name)
        except MlflowException as error:
            if error.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            import mlflow

            from kedro_mlflow_starter.config.redaction import redact_uri

            raise DatasetError(
                f"MlflowModelRegistryDataset: no registered model named '{self._model_name}' in "
                f"the registry at {redact_uri(mlflow.get_registry_uri())}. Register one by saving a model with "
                f"`save_args: {{registered_model_name: {self._model_name}}}`, or fix `model_name:`."
            ) from None
        try:
            if self._alias is not None:
                client.get_model_version_by_alias(self._model_name, self._alias)
            elif self._version is not None:
                client.get_model_version(self._model_name, self._version)
            elif self._stage is not None:
                if not client.get_latest_versions(self._model_name, stages=[self._stage]):
                    raise DatasetError(
                        f"MlflowModelRegistryDataset: registered model '{self._model_name}' has no version in "
                        f"stage '{self._stage}'. MLflow 3 deprecates stages: set an alias and use `alias:`."
                    )
            elif not client.search_model_versions(f"name = '{self._model_name}'", max_results=1):
                raise DatasetError(f"Registered model '{self._model_name}' has no versions yet.")
        except MlflowException as error:
            if error.error_code not in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                raise
            which = f"alias '{self._alias}'" if self._alias is not None else f"version {self._version}"
            raise DatasetError(
                f"MlflowModelRegistryDataset: registered model '{self._model_name}' has no {which}. "
                f"Set it with `MlflowClient().set_registered_model_alias('{self._model_name}', "
                f"'{self._alias or 'champion'}', <version>)` or fix `alias:`/`model_version:`."
            ) from None
