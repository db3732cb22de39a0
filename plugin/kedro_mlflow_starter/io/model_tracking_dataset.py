"""``MlflowModelTrackingDataset``: a model logged as an MLflow LoggedModel of the current run."""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from typing import Any

from kedro.io.core import AbstractDataset, DatasetError

from kedro_mlflow_starter.io._common import (
    CatalogEntryDataset,
    describe_entry,
    log_or_record,
    run_to_log_into,
    run_to_read,
)
from kedro_mlflow_starter.io._downloads import load_model
from kedro_mlflow_starter.io._flavors import check_flavor, import_flavor, model_kwargs, save_flavor_model, save_model_args
from kedro_mlflow_starter.io._signature import check_signature_args, resolve_signature_args
from kedro_mlflow_starter.tracking.failures import call_with_retry, is_transient, record_failure
from kedro_mlflow_starter.tracking.current import current_client
from kedro_mlflow_starter.tracking.replay import is_kept
from kedro_mlflow_starter.tracking.retries import drop_earlier_models

DEFAULT_MODEL_NAME = "model"


class MlflowModelTrackingDataset(CatalogEntryDataset, AbstractDataset[Any, Any]):
    """Log a model into the run of the current ``kedro run``; load it back by id or URI.

    Save writes the model with its flavor's ``save_model`` and logs it as a LoggedModel
    linked to the run (``models:/m-<id>``, listed under the run's logged models), with
    explicit pinned ``pip_requirements`` so that logging does not spend seconds inferring
    them. ``save_args`` are ``log_model``'s arguments: ``name`` (the catalog entry name by
    default), ``registered_model_name``, ``params``, ``tags``, ``model_type``, ``step``, and
    anything the flavor's ``save_model`` takes (``signature``, ``input_example``,
    ``pip_requirements``, ``serialization_format``...). In YAML, ``signature`` is the columns
    (``{inputs: {engines: double}, outputs: {price: double}}``) or ``infer``, and
    ``input_example`` may read a dataset: ``{dataset: {type: ..., filepath: ...}, rows: 5}``
    (``io/_signature.py``).

    Load returns, in order: the model named by ``load_args.model_uri``; the model this
    dataset saved last in this session; the latest model with this name logged in
    ``run_id`` (or in the current run). Other ``load_args`` go to the flavor's ``load_model``.

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

    Outside a ``kedro run``, a run opened with ``mlflow.start_run()`` is used. With no run
    at all (the hook disabled, a notebook without a run) or when ``mlflow.yml`` disables
    tracking for the pipeline, the model is kept in memory for the rest of the run (the
    nodes downstream load it) and logged nowhere. When the
    tracking server is down, the model is written to a local folder that the end-of-run
    failure report names.

    Python API (``run_id`` is an existing MLflow run; inside ``kedro run`` leave it out and
    the dataset logs into the run the hook opened; ``tmp_path`` is a scratch folder):

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

    def __init__(
        self,
        flavor: str,
        run_id: str | None = None,
        pyfunc_workflow: str | None = None,
        save_args: dict[str, Any] | None = None,
        load_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        artifact_path: str | None = None,
    ) -> None:
        """Check the flavor (without importing it) and keep the arguments.

        Args:
            flavor: The MLflow flavor module, e.g. ``mlflow.sklearn`` or ``mlflow.pyfunc``.
            run_id: Log into and load from this run instead of the current ``kedro run``'s.
            pyfunc_workflow: For ``mlflow.pyfunc`` only: ``python_model`` or ``loader_module``.
            save_args: Arguments of ``log_model`` / the flavor's ``save_model``.
            load_args: ``model_uri`` to load a given model; the rest go to ``load_model``.
            metadata: Free-form information kept on the dataset, not used by it.
            artifact_path: kedro-mlflow's spelling of the model's name (MLflow 3 calls it
                ``name``): accepted with a ``FutureWarning``, used as ``save_args.name``.
        """
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
        self._run_id = run_id
        self._model_id: str | None = None
        self._kept_model: Any = None
        self.metadata = metadata
        self._bind_entry_now()
        check_signature_args(self._save_args, self._what())  # a YAML signature fails here, before the run

    def _bind_catalog_name(self, name: str) -> None:
        """Called at catalog creation: the model is named after its catalog entry by default."""
        super()._bind_catalog_name(name)
        self._save_args.setdefault("name", name)

    @property
    def model_uri(self) -> str | None:
        """``load_args.model_uri`` if set, else the model this dataset saved last, else None."""
        return self._load_args.get("model_uri") or (f"models:/{self._model_id}" if self._model_id else None)

    @model_uri.setter
    def model_uri(self, model_uri: str | None) -> None:
        if model_uri is None:
            self._load_args.pop("model_uri", None)
        else:
            self._load_args["model_uri"] = model_uri

    @property
    def model_id(self) -> str | None:
        """The id of the LoggedModel this dataset saved last in this session."""
        return self._model_id

    def save(self, model: Any) -> None:
        name = self._model_name()
        run_id = run_to_log_into(describe_entry("MlflowModelTrackingDataset", self._entry, name), self._run_id)
        if run_id is None:
            self._kept_model = model
            self._model_id = None
            return
        flavor = import_flavor(self._flavor)
        from mlflow.entities import LoggedModelOutput, LoggedModelStatus
        from mlflow.models import Model

        client = current_client()
        save_args = save_model_args(flavor, self._save_args)
        kwargs = {**model_kwargs(flavor, self._pyfunc_workflow, model), **save_args}
        kwargs = resolve_signature_args(kwargs, model, self._what())  # catalog signature / input example
        try:
            run = call_with_retry(lambda: client.get_run(run_id))
            logged = call_with_retry(
                lambda: client.create_logged_model(
                    experiment_id=run.info.experiment_id,
                    name=name,
                    source_run_id=run_id,
                    params={k: str(v) for k, v in {**run.data.params, **self._save_args.get("params", {})}.items()},
                    tags={k: str(v) for k, v in self._save_args.get("tags", {}).items()} or None,
                    model_type=self._save_args.get("model_type"),
                )
            )
        except Exception as error:
            if not is_transient(error):
                raise
            self._keep_locally(flavor, kwargs, name, error, self._replay(name))
            self._kept_model = model
            return

        folder = tempfile.mkdtemp(prefix=f"kedro-mlflow-model-{name}-")
        local_path = os.path.join(folder, "model")
        # BaseException: Ctrl-C or SIGTERM in the middle of a save must not leave a PENDING
        # model without files in the run, nor a half-written folder in the temp folder.
        try:
            mlflow_model = Model(
                artifact_path=logged.artifact_location,
                model_uuid=logged.model_id,
                run_id=run_id,
                model_id=logged.model_id,
            )
            save_flavor_model(flavor, path=local_path, mlflow_model=mlflow_model, **kwargs)
            step = int(self._save_args.get("step", 0))
            stored = log_or_record(
                f"model '{name}' (LoggedModel {logged.model_id})",
                local_path,
                lambda: (
                    client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=step)]),
                    client.log_model_artifacts(logged.model_id, local_path),
                ),
                {**self._replay(name), "model_id": logged.model_id},
            )
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            _finalize(client, logged.model_id, LoggedModelStatus.FAILED)
            raise
        self._kept_model = model
        if not stored:
            if is_kept(local_path):  # copied into the run's pending folder for `kedro mlflow run replay`
                shutil.rmtree(folder, ignore_errors=True)
            return  # else the local copy stays for the failure report
        shutil.rmtree(folder, ignore_errors=True)
        _finalize(client, logged.model_id, LoggedModelStatus.READY)
        self._model_id = logged.model_id
        drop_earlier_models(client, run_id, run.info.experiment_id, name, logged.model_id)  # a retried task
        registered_name = self._save_args.get("registered_model_name")
        if registered_name:
            self._register(logged.model_id, registered_name)

    def load(self) -> Any:
        model_uri = self._load_args.get("model_uri")
        load_args = {k: v for k, v in self._load_args.items() if k != "model_uri"}
        if model_uri is None and self._model_id is None and self._kept_model is not None:
            return self._kept_model  # saved in this run without logging (no run, or tracking disabled)
        if model_uri is None:
            model_uri = f"models:/{self._model_id or self._latest_model_id()}"
        return load_model(import_flavor(self._flavor).load_model, model_uri, load_args, self._model_name())

    def _exists(self) -> bool:
        return bool(self._load_args.get("model_uri") or self._model_id or self._kept_model is not None)

    def _describe(self) -> dict[str, Any]:
        return {
            "flavor": self._flavor,
            "name": self._model_name(),
            "run_id": self._run_id or "<current kedro run>",
            "model_uri": self._load_args.get("model_uri")
            or (f"models:/{self._model_id}" if self._model_id else None),
            "pyfunc_workflow": self._pyfunc_workflow,
        }

    def _what(self) -> str:
        return describe_entry("MlflowModelTrackingDataset", self._entry, self._model_name())

    def _model_name(self) -> str:
        return self._save_args.get("name") or DEFAULT_MODEL_NAME

    def _latest_model_id(self) -> str:
        """The newest READY model with this dataset's name logged in the run."""
        name = self._model_name()
        run_id = run_to_read(self._run_id)
        if run_id is None:
            raise DatasetError(
                f"{describe_entry('MlflowModelTrackingDataset', self._entry, name)} has nothing to load: "
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

    def _replay(self, name: str) -> dict[str, Any]:
        """How ``kedro mlflow run replay`` logs this model later (tracking/replay.py)."""
        return {"kind": "model", "name": name, "step": int(self._save_args.get("step", 0)),
                "params": {k: str(v) for k, v in self._save_args.get("params", {}).items()},
                "tags": {k: str(v) for k, v in self._save_args.get("tags", {}).items()},
                "model_type": self._save_args.get("model_type"),
                "registered_model_name": self._save_args.get("registered_model_name"),
                "await_registration_for": self._save_args.get("await_registration_for", 0)}

    def _keep_locally(self, flavor: Any, kwargs: dict[str, Any], name: str, error: BaseException,
                      replay: dict[str, Any]) -> None:
        """The store is unreachable: write the model to a local folder, keep it for replay, report it."""
        folder = tempfile.mkdtemp(prefix=f"kedro-mlflow-model-{name}-")
        local_path = os.path.join(folder, "model")
        try:
            save_flavor_model(flavor, path=local_path, **kwargs)
        except BaseException:  # Ctrl-C or SIGTERM during the save: no half folder in the temp folder
            shutil.rmtree(folder, ignore_errors=True)
            raise
        record_failure(f"model '{name}'", local_path, error, replay=replay)
        if is_kept(local_path):  # the copy in the run's pending folder is the one that stays
            shutil.rmtree(folder, ignore_errors=True)

    def _register(self, model_id: str, registered_name: str) -> None:
        import mlflow

        await_for = self._save_args.get("await_registration_for", 0)
        log_or_record(
            f"registration of model {model_id} as '{registered_name}'",
            None,
            lambda: mlflow.register_model(f"models:/{model_id}", registered_name, await_registration_for=await_for),
            {"kind": "register", "model_id": model_id, "name": registered_name, "await_registration_for": await_for},
        )


def _finalize(client: Any, model_id: str, status: Any) -> None:
    try:
        call_with_retry(lambda: client.finalize_logged_model(model_id, status))
    except Exception as error:
        if not is_transient(error):
            raise
        record_failure(f"status {status} of LoggedModel {model_id}", None, error,
                       replay={"kind": "finalize", "model_id": model_id, "status": str(status).rpartition(".")[2]})
