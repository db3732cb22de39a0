"""``MlflowModelTrackingDataset``: a model logged as an MLflow LoggedModel of the current run."""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from types import ModuleType
from typing import Any

from kedro.io.core import AbstractDataset, DatasetError

from kedro_mlflow_starter.compat import catalog_entry_being_built
from kedro_mlflow_starter.io._common import describe_entry, run_to_log_into, run_to_read
from kedro_mlflow_starter.io._downloads import load_model
from kedro_mlflow_starter.io._flavors import check_flavor, import_flavor, model_kwargs, save_flavor_model, save_model_args
from kedro_mlflow_starter.io._signature import check_signature_args, resolve_signature_args
from kedro_mlflow_starter.models.logging import log_model
from kedro_mlflow_starter.tracking.current import current_client
from kedro_mlflow_starter.tracking.failures import log_or_record, outage_policy, record_failure
from kedro_mlflow_starter.tracking.replay import is_kept, register_model
from kedro_mlflow_starter.tracking.retries import drop_earlier_models

DEFAULT_MODEL_NAME = "model"


class MlflowModelTrackingDataset(AbstractDataset[Any, Any]):
    """Log a model into the run of the current ``kedro run`` as a LoggedModel; load it back.

    ``save_args`` are ``log_model``'s (``name``: the catalog entry name by default) and the flavor's
    ``save_model`` arguments; docs/datasets.md says what load returns and what YAML may give.

    Example catalog entries (``conf/base/catalog.yml``):

    .. code-block:: yaml

        regressor:
          type: kedro_mlflow_starter.io.MlflowModelTrackingDataset
          flavor: mlflow.sklearn
          save_args:
            registered_model_name: iris-regressor   # optional: also register a version

        champion:                                   # load a given model
          type: kedro_mlflow_starter.io.MlflowModelTrackingDataset
          flavor: mlflow.sklearn
          load_args:
            model_uri: models:/iris-regressor@champion

        custom_model:
          type: kedro_mlflow_starter.io.MlflowModelTrackingDataset
          flavor: mlflow.pyfunc
          pyfunc_workflow: python_model             # save an mlflow.pyfunc.PythonModel

    Python API (``run_id`` is an existing MLflow run; inside ``kedro run`` leave it out and
    the dataset logs into the run the hook opened):

    >>> from sklearn.linear_model import LinearRegression
    >>> from kedro_mlflow_starter.io import MlflowModelTrackingDataset
    >>> dataset = MlflowModelTrackingDataset(flavor="mlflow.sklearn", run_id=run_id,
    ...                                      save_args={"name": "regressor"})
    >>> dataset.save(LinearRegression().fit([[1], [2], [3]], [2, 4, 6]))
    >>> [model.name for model in client.search_logged_models([client.get_run(run_id).info.experiment_id])]
    ['regressor']
    >>> dataset.load().predict([[4]]).round(3).tolist()
    [8.0]
    """

    def __init__(  # noqa: PLR0913
        self,
        *,
        flavor: str,
        run_id: str | None = None,
        pyfunc_workflow: str | None = None,
        save_args: dict[str, Any] | None = None,
        load_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        artifact_path: str | None = None,
    ) -> None:
        """``artifact_path`` is kedro-mlflow's (MLflow 2's) spelling of ``save_args.name``."""
        self._save_args = dict(save_args or {})
        self._load_args = dict(load_args or {})
        legacy_name = artifact_path or self._save_args.pop("artifact_path", None)
        if legacy_name:
            warnings.warn(
                f"MlflowModelTrackingDataset: `artifact_path: {legacy_name}` is MLflow 2's name for the "
                f"model; MLflow 3 calls it `name`. Write `save_args: {{name: {legacy_name}}}` instead.",
                FutureWarning,
                stacklevel=2,
            )
            self._save_args.setdefault("name", legacy_name)
        check_flavor("MlflowModelTrackingDataset", flavor, pyfunc_workflow, self._save_args)
        self._flavor = flavor
        self._pyfunc_workflow = pyfunc_workflow
        self.run_id = run_id
        self._model_id: str | None = None
        self._kept_model: Any = None
        self.metadata = metadata
        self._entry = catalog_entry_being_built()
        if self._entry:
            self._save_args.setdefault("name", self._entry)
        check_signature_args(self._save_args, self._what())  # a YAML signature fails here, before the run

    @property
    def model_uri(self) -> str | None:
        """``load_args.model_uri`` if set, else the model this dataset saved last, else None."""
        return self._load_args.get("model_uri") or (f"models:/{self._model_id}" if self._model_id else None)

    @property
    def model_id(self) -> str | None:
        """The id of the LoggedModel this dataset saved last in this session."""
        return self._model_id

    def save(self, model: Any) -> None:
        name = self._model_name()
        run_id = run_to_log_into(self._what(), self.run_id)
        self._kept_model = model
        self._model_id = None
        if run_id is None:
            return
        flavor = import_flavor(self._flavor)
        kwargs = {**model_kwargs(flavor, self._pyfunc_workflow, model), **save_model_args(flavor, self._save_args)}
        kwargs = resolve_signature_args(kwargs, model, self._what())  # catalog signature / input example
        args = self._save_args
        with outage_policy(None) as outage:
            logged = log_model(run_id, flavor, name=name, params=args.get("params"), tags=args.get("tags"),
                               model_type=args.get("model_type"), step=int(args.get("step", 0)), **kwargs)
        if outage.error is not None:
            self._keep_locally(flavor, kwargs, name, outage.error)
            return
        self._model_id = logged.model_id
        drop_earlier_models(current_client(), run_id, logged.experiment_id, name, logged.model_id)  # a retried task
        registered_name = self._save_args.get("registered_model_name")
        if registered_name:
            await_for = self._save_args.get("await_registration_for", 0)
            log_or_record(
                f"registration of model {logged.model_id} as '{registered_name}'",
                None,
                lambda: register_model(logged.model_id, registered_name, await_for),
                {"kind": "register", "model_id": logged.model_id, "name": registered_name,
                 "await_registration_for": await_for},
            )

    def load(self) -> Any:
        model_uri = self._load_args.get("model_uri")
        load_args = {k: v for k, v in self._load_args.items() if k != "model_uri"}
        if model_uri is None and self._model_id is None and self._kept_model is not None:
            return self._kept_model  # saved in this run without logging (no run, or tracking disabled)
        model_uri = model_uri or f"models:/{self._model_id or self._latest_model_id()}"
        return load_model(import_flavor(self._flavor).load_model, model_uri, load_args, self._model_name())

    def _exists(self) -> bool:
        return bool(self._load_args.get("model_uri") or self._model_id or self._kept_model is not None)

    def _describe(self) -> dict[str, Any]:
        return {"flavor": self._flavor, "name": self._model_name(), "run_id": self.run_id or "<current kedro run>",
                "model_uri": self.model_uri, "pyfunc_workflow": self._pyfunc_workflow}

    def _what(self) -> str:
        return describe_entry("MlflowModelTrackingDataset", self._entry, self._model_name())

    def _model_name(self) -> str:
        return self._save_args.get("name") or DEFAULT_MODEL_NAME

    def _latest_model_id(self) -> str:
        """The newest READY model with this dataset's name logged in the run."""
        name = self._model_name()
        run_id = run_to_read(self.run_id)
        if run_id is None:
            raise DatasetError(
                f"{self._what()} has nothing to load: "
                "it saved no model in this session and has no run to look in. Set `load_args: "
                "{model_uri: models:/<id or name@alias>}` or `run_id:`, or load it inside `kedro run`."
            )
        client = current_client()
        experiment_id = client.get_run(run_id).info.experiment_id
        found = [
            model
            for model in client.search_logged_models(
                experiment_ids=[experiment_id],
                filter_string=f"source_run_id = '{run_id}' AND name = '{name}'",
                order_by=[{"field_name": "creation_time", "ascending": False}],
            )
            if str(model.status).rpartition(".")[2] == "READY"
        ]
        if not found:
            raise DatasetError(
                f"MlflowModelTrackingDataset: run {run_id} has no logged model named '{name}'. "
                "Save the model first in this run, or set `load_args: {model_uri: ...}`."
            )
        return found[0].model_id

    def _keep_locally(self, flavor: ModuleType, kwargs: dict[str, Any], name: str, error: BaseException) -> None:
        """The store is unreachable: write the model to a local folder kept for ``kedro mlflow run replay``."""
        folder = tempfile.mkdtemp(prefix=f"kedro-mlflow-model-{name}-")
        local_path = os.path.join(folder, "model")
        try:
            save_flavor_model(flavor, path=local_path, **kwargs)
        except BaseException:  # Ctrl-C or SIGTERM during the save: no half folder in the temp folder
            shutil.rmtree(folder, ignore_errors=True)
            raise
        args = self._save_args
        record_failure(f"model '{name}'", local_path, error, replay={
            "kind": "model", "name": name, "step": int(args.get("step", 0)),
            "params": {k: str(v) for k, v in args.get("params", {}).items()},
            "tags": {k: str(v) for k, v in args.get("tags", {}).items()},
            "model_type": args.get("model_type"), "registered_model_name": args.get("registered_model_name"),
            "await_registration_for": args.get("await_registration_for", 0)})
        if is_kept(local_path):  # the copy in the run's pending folder is the one that stays
            shutil.rmtree(folder, ignore_errors=True)
