"""``MlflowArtifactDataset``: any Kedro file dataset whose output is also logged as a run artifact."""

from __future__ import annotations

import copy
import os
import shutil
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

from kedro.io.core import AbstractDataset, DatasetError, parse_dataset_definition

from kedro_mlflow_starter import compat
from kedro_mlflow_starter.compat import catalog_entry_being_built
from kedro_mlflow_starter.io._common import describe_entry, run_to_log_into
from kedro_mlflow_starter.io._downloads import download_folder
from kedro_mlflow_starter.tracking.current import active_run_id, current_client, tracking_disabled
from kedro_mlflow_starter.tracking.failures import log_or_record

_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".svg", ".pdf", ".gif", ".bmp", ".tif", ".tiff", ".webp"}
_LOCAL_PROTOCOLS = {"file", "local", ""}


class MlflowArtifactDataset(AbstractDataset[Any, Any]):
    """Save through a wrapped Kedro dataset, then log the written file(s) as MLflow artifacts.

    Example catalog entries (``conf/base/catalog.yml``):

    .. code-block:: yaml

        predictions:
          type: kedro_mlflow_starter.io.MlflowArtifactDataset
          artifact_path: outputs            # folder inside the run's artifacts (optional)
          dataset:
            type: pandas.CSVDataset
            filepath: data/07_model_output/predictions.csv

        confusion_matrix:                   # a matplotlib figure lands as a PNG in the run
          type: kedro_mlflow_starter.io.MlflowArtifactDataset
          dataset:
            type: matplotlib.MatplotlibDataset
            filepath: data/08_reporting/confusion_matrix.png

        shap_summary:                       # log-only: no permanent local file, the copy is in MLflow
          type: kedro_mlflow_starter.io.MlflowArtifactDataset
          log_only: true                    # written to a temporary file, logged, removed
          dataset:
            type: matplotlib.MatplotlibDataset
            filepath: shap_summary.png      # only its file name is used

        reference_predictions:              # load what an earlier run logged
          type: kedro_mlflow_starter.io.MlflowArtifactDataset
          run_id: 0123456789abcdef0123456789abcdef
          dataset:
            type: pandas.CSVDataset
            filepath: data/07_model_output/predictions.csv

    Python API (``run_id`` is an existing MLflow run, ``tmp_path`` a scratch folder):

    >>> import pandas as pd
    >>> from kedro_mlflow_starter.io import MlflowArtifactDataset
    >>> dataset = MlflowArtifactDataset(
    ...     dataset={"type": "pandas.CSVDataset", "filepath": str(tmp_path / "predictions.csv")},
    ...     artifact_path="outputs",
    ...     run_id=run_id,
    ... )
    >>> dataset.save(pd.DataFrame({"species": ["setosa", "virginica"]}))
    >>> [artifact.path for artifact in client.list_artifacts(run_id, "outputs")]
    ['outputs/predictions.csv']
    >>> dataset.load()["species"].tolist()
    ['setosa', 'virginica']
    """

    def __init__(  # noqa: PLR0913
        self,
        *,
        dataset: str | type[AbstractDataset] | dict[str, Any],
        artifact_path: str | None = None,
        run_id: str | None = None,
        credentials: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        log_only: bool = False,
    ) -> None:
        if isinstance(dataset, (str, type)):
            config: dict[str, Any] = {"type": dataset}
        elif isinstance(dataset, dict) and "type" in dataset:
            config = copy.deepcopy(dataset)
        else:
            raise DatasetError(
                "MlflowArtifactDataset needs `dataset:` to be a dataset definition with a `type:` "
                f"(e.g. `dataset: {{type: pandas.CSVDataset, filepath: data/out.csv}}`), got {dataset!r}."
            )
        if credentials is not None:
            config.setdefault("credentials", credentials)
        try:
            dataset_class, kwargs = parse_dataset_definition(config)
        except DatasetError as error:
            raise DatasetError(
                f"MlflowArtifactDataset cannot use the wrapped dataset type "
                f"'{_type_name(config['type'])}': {error}\nFix `dataset: type:` to name an existing "
                "Kedro dataset, e.g. `pandas.CSVDataset` or `pickle.PickleDataset`."
            ) from error
        try:
            self._dataset = dataset_class(**kwargs)
        except Exception as error:
            raise DatasetError(
                f"MlflowArtifactDataset could not build its wrapped dataset "
                f"'{_type_name(config['type'])}': {error}\nFix the arguments under `dataset:`."
            ) from error
        if not compat.has_file_target(self._dataset):
            raise DatasetError(
                f"MlflowArtifactDataset wraps '{_type_name(config['type'])}', which writes no file "
                "that could be logged as an artifact. Wrap a file-based dataset (one with a "
                "`filepath:` or `path:`), or use the dataset on its own."
            )
        if log_only and compat.is_partitioned(self._dataset):
            raise DatasetError(
                f"MlflowArtifactDataset: `log_only: true` works with datasets that write one file or "
                f"folder, not with '{_type_name(config['type'])}'. Remove `log_only`, or wrap a file dataset."
            )
        self._dataset_config = config
        self._artifact_path = artifact_path.strip("/") if artifact_path else None
        self.run_id = run_id
        self._log_only = bool(log_only)
        self._kept: Any = None  # log_only: the data last saved, for loads in this process
        self.metadata = metadata
        self._entry = catalog_entry_being_built()

    def save(self, data: Any) -> None:
        what = f"artifact of {_type_name(self._dataset_config['type'])}"
        run_id = run_to_log_into(
            describe_entry("MlflowArtifactDataset", self._entry, self._describe_target()), self.run_id
        )
        if self._log_only:
            self._kept = data
            if run_id is not None:
                self._log_through_temporary_file(data, run_id, what)
            return
        self._dataset.save(data)
        if run_id is None:
            return
        for local_path, artifact_dir in self._written_files(data):
            self._log(run_id, local_path, artifact_dir, what)
        if self._needs_png(data):
            folder = tempfile.mkdtemp(prefix="kedro-mlflow-figure-")
            try:
                self._log_png(data, folder, run_id, what)
            finally:
                shutil.rmtree(folder, ignore_errors=True)

    def load(self) -> Any:
        if self._log_only and self.run_id is None:
            if self._kept is not None:
                return self._kept
            run_id = active_run_id()
            if run_id is None:
                raise DatasetError(
                    f"{describe_entry('MlflowArtifactDataset', self._entry, self._describe_target())} is log-only "
                    "and has nothing to load: it saved nothing in this process and there is no run to download "
                    "from. Give it a `run_id:`, or load it inside the `kedro run` that saves it."
                )
            return self._load_from_run(run_id)
        if self.run_id is None:
            return self._dataset.load()
        return self._load_from_run(self.run_id)

    def _exists(self) -> bool:
        if self._log_only:
            return self._kept is not None
        return self._dataset.exists()

    def _log_through_temporary_file(self, data: Any, run_id: str, what: str) -> None:
        """``log_only``: write ``data`` where nothing stays, log it, remove it (kept if not logged)."""
        folder = tempfile.mkdtemp(prefix="kedro-mlflow-log-only-")
        name = PurePosixPath(_strip_slash(str(compat.file_target(self._dataset)))).name
        logged = False
        try:
            self._local_twin("filepath", os.path.join(folder, name)).save(data)
            logged = self._log(run_id, os.path.join(folder, name), self._artifact_path, what)
            if logged and self._needs_png(data):
                logged = self._log_png(data, folder, run_id, what)
        finally:
            if logged:
                shutil.rmtree(folder, ignore_errors=True)

    def _release(self) -> None:
        self._dataset.release()

    def _describe(self) -> dict[str, Any]:
        return {
            "dataset": _type_name(self._dataset_config["type"]),
            "target": self._describe_target(),
            "artifact_path": self._artifact_path or "<run root>",
            "run_id": self.run_id or "<current kedro run>",
            "log_only": self._log_only,
            "tracking": "disabled" if tracking_disabled() else "enabled",
        }

    def _describe_target(self) -> str:
        return str(compat.file_target(self._dataset))

    def _log(self, run_id: str, local_path: str, artifact_dir: str | None, what: str) -> bool:
        client = current_client()
        log = client.log_artifacts if os.path.isdir(local_path) else client.log_artifact
        return log_or_record(what, local_path, lambda: log(run_id, local_path, artifact_dir),
                             {"kind": "artifact", "artifact_path": artifact_dir})

    def _local_twin(self, path_key: str, path: str) -> AbstractDataset:
        """The wrapped dataset's type, unversioned, reading or writing the local ``path``."""
        config = {key: value for key, value in copy.deepcopy(self._dataset_config).items()
                  if key not in ("versioned", "credentials", "fs_args")}
        dataset_class, kwargs = parse_dataset_definition({**config, path_key: path})
        return dataset_class(**kwargs)

    def _written_files(self, data: Any) -> list[tuple[str, str | None]]:
        """(local path, artifact folder) of every file or folder the last save wrote."""
        dataset = self._dataset
        if compat.is_partitioned(dataset) and isinstance(data, dict):
            root = _strip_slash(compat.partitions_root(dataset))
            folder = _join(self._artifact_path, PurePosixPath(root).name)
            written = []
            for partition_id in data:
                path = compat.partition_path(dataset, partition_id)
                relative_dir = str(PurePosixPath(path).relative_to(root).parent)
                target_dir = folder if relative_dir == "." else _join(folder, relative_dir)
                written.append((self._local_copy(path), target_dir))
            return written
        return [(self._local_copy(str(compat.saved_path(dataset))), self._artifact_path)]

    def _local_copy(self, path: str) -> str:
        """``path`` itself on a local disk; a downloaded copy when the dataset writes elsewhere."""
        if compat.protocol(self._dataset) in _LOCAL_PROTOCOLS:
            return path
        filesystem = compat.filesystem(self._dataset)
        target = os.path.join(tempfile.mkdtemp(prefix="kedro-mlflow-artifact-"), PurePosixPath(path).name)
        filesystem.get(path, target, recursive=True)
        return target

    def _needs_png(self, data: Any) -> bool:
        """A matplotlib figure stored as a non-image file also gets a PNG (the UI shows images only)."""
        is_figure = type(data).__module__.startswith("matplotlib") and hasattr(data, "savefig")
        return is_figure and PurePosixPath(self._describe_target()).suffix.lower() not in _IMAGE_SUFFIXES

    def _log_png(self, figure: Any, folder: str, run_id: str, what: str) -> bool:
        png = os.path.join(folder, f"{PurePosixPath(self._describe_target()).stem or 'figure'}.png")
        figure.savefig(png, format="png")
        return self._log(run_id, png, self._artifact_path, what)

    def _load_from_run(self, run_id: str) -> Any:
        dataset = self._dataset
        local_root = _strip_slash(str(compat.file_target(dataset)))
        artifact = _join(self._artifact_path, PurePosixPath(local_root).name)
        destination = download_folder("kedro-mlflow-download-")
        client = current_client()
        downloaded = client.download_artifacts(run_id, artifact, destination)
        path_key = "path" if compat.is_partitioned(dataset) else "filepath"
        result = self._local_twin(path_key, Path(downloaded).as_posix()).load()
        if not compat.is_partitioned(dataset):
            # A partitioned load returns lazy loaders that still read the downloaded files
            # (removed when the process exits).
            shutil.rmtree(destination, ignore_errors=True)
        return result


def _type_name(dataset_type: Any) -> str:
    if isinstance(dataset_type, type):
        return f"{dataset_type.__module__}.{dataset_type.__qualname__}"
    return str(dataset_type)


def _strip_slash(path: str) -> str:
    return path.rstrip("/") or path


def _join(folder: str | None, name: str) -> str:
    return f"{folder}/{name}" if folder else name
