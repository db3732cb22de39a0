"""``MlflowModelLocalFileSystemDataset``: an MLflow model folder on the local disk."""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

from kedro.io.core import AbstractVersionedDataset, DatasetError, Version, get_protocol_and_path

from kedro_mlflow_starter.io._flavors import check_flavor, import_flavor, model_kwargs, save_flavor_model, save_model_args


class MlflowModelLocalFileSystemDataset(AbstractVersionedDataset[Any, Any]):
    """Save and load an MLflow model folder at ``filepath``, logging nothing (a failed save leaves the previous one).

    Example catalog entries (``conf/base/catalog.yml``):

    .. code-block:: yaml

        regressor_folder:
          type: kedro_mlflow_starter.io.MlflowModelLocalFileSystemDataset
          flavor: mlflow.sklearn
          filepath: data/06_models/regressor
          versioned: true

        custom_model_folder:
          type: kedro_mlflow_starter.io.MlflowModelLocalFileSystemDataset
          flavor: mlflow.pyfunc
          pyfunc_workflow: python_model
          filepath: data/06_models/custom_model
          save_args:
            pip_requirements: [scikit-learn, pandas]

    Python API (``tmp_path`` is a scratch folder):

    >>> from sklearn.linear_model import LinearRegression
    >>> from kedro_mlflow_starter.io import MlflowModelLocalFileSystemDataset
    >>> dataset = MlflowModelLocalFileSystemDataset(filepath=str(tmp_path / "regressor"), flavor="mlflow.sklearn")
    >>> dataset.save(LinearRegression().fit([[1], [2], [3]], [2, 4, 6]))
    >>> sorted(path.name for path in (tmp_path / "regressor").iterdir())[:2]
    ['MLmodel', 'conda.yaml']
    >>> dataset.load().predict([[4]]).round(3).tolist()
    [8.0]
    """

    def __init__(  # noqa: PLR0913
        self,
        *,
        filepath: str,
        flavor: str,
        pyfunc_workflow: str | None = None,
        save_args: dict[str, Any] | None = None,
        load_args: dict[str, Any] | None = None,
        version: Version | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        protocol, path = get_protocol_and_path(filepath)
        if protocol != "file":
            raise DatasetError(
                f"MlflowModelLocalFileSystemDataset writes to the local disk; got {filepath!r}. Use a "
                "local `filepath:`, or MlflowModelTrackingDataset to store the model with MLflow."
            )
        self._save_args = dict(save_args or {})
        self._load_args = dict(load_args or {})
        check_flavor("MlflowModelLocalFileSystemDataset", flavor, pyfunc_workflow, self._save_args)
        self._flavor = flavor
        self._pyfunc_workflow = pyfunc_workflow
        self.metadata = metadata
        super().__init__(
            filepath=PurePosixPath(Path(path).absolute().as_posix()),
            version=version,
            exists_function=os.path.exists,
            glob_function=glob.glob,
        )

    def save(self, model: Any) -> None:
        target = Path(str(self._get_save_path()))
        target.parent.mkdir(parents=True, exist_ok=True)
        flavor = import_flavor(self._flavor)
        kwargs = {**model_kwargs(flavor, self._pyfunc_workflow, model), **save_model_args(flavor, self._save_args)}
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.saving-", dir=target.parent))
        try:
            save_flavor_model(flavor, path=str(staging / "model"), **kwargs)
            _swap_in(staging / "model", target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def load(self) -> Any:
        path = str(self._get_load_path())
        if not os.path.isdir(path):
            raise DatasetError(f"No MLflow model folder at '{path}': save the model first.")
        return import_flavor(self._flavor).load_model(path, **self._load_args)

    def _exists(self) -> bool:
        try:
            path = self._get_load_path()
        except DatasetError:
            return False
        return os.path.isfile(os.path.join(str(path), "MLmodel"))

    def _describe(self) -> dict[str, Any]:
        return {
            "filepath": str(self._filepath),
            "flavor": self._flavor,
            "pyfunc_workflow": self._pyfunc_workflow,
            "version": self._version,
            "save_args": {k: v for k, v in self._save_args.items() if k != "input_example"},
            "load_args": self._load_args,
        }


def _swap_in(new: Path, target: Path) -> None:
    """Replace ``target`` by ``new`` with renames, restoring ``target`` if the swap fails."""
    if not target.exists():
        os.replace(new, target)
        return
    backup = new.parent / "previous"
    os.replace(target, backup)
    try:
        os.replace(new, target)
    except BaseException:
        os.replace(backup, target)
        raise
