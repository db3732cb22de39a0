"""The on-disk layout of a pipeline model's artifacts: each is written with a local copy of its own Kedro dataset
(same type and arguments) or, without a ``filepath``, with cloudpickle; a spec (``{"kind": "dataset", "config":
...}`` or ``{"kind": "pickle", "file": "data.pkl"}``) says how to read it back."""

from __future__ import annotations

import logging
import re
from pathlib import Path, PurePosixPath
from typing import Any

from kedro.io import AbstractDataset, MemoryDataset

from kedro_mlflow_starter import compat
from kedro_mlflow_starter.models.contract import is_memory_dataset

logger = logging.getLogger(__name__)

PICKLE_FILE = "data.pkl"
# Arguments that only make sense where the project reads its data, not inside a model.
DROPPED_KEYS = ("credentials", "versioned", "version", "metadata")
KEPT_FS_ARGS = ("open_args_load", "open_args_save")


def safe_dirname(name: str) -> str:
    """A folder name for dataset ``name`` (namespaces and transcoding kept readable)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def _file_name(filepath: str) -> str:
    return PurePosixPath(filepath.rstrip("/")).name or "data"


def artifact_config(dataset: AbstractDataset) -> dict[str, Any] | None:
    """``dataset``'s type and arguments, less what only makes sense in the project; None unless a file dataset."""
    config = compat.dataset_init_config(dataset)
    if config is None or is_memory_dataset(dataset) or not isinstance(config.get("filepath"), str):
        return None
    for key in DROPPED_KEYS:
        config.pop(key, None)
    fs_args = {k: v for k, v in (config.pop("fs_args", None) or {}).items() if k in KEPT_FS_ARGS}
    if fs_args:
        config["fs_args"] = fs_args
    return config


def save_with_config(name: str, config: dict[str, Any] | None, data: Any, target: Path) -> dict[str, Any]:
    """Write ``data`` under ``target`` with a local copy of the dataset ``config`` describes, or with
    cloudpickle when there is none; return its spec."""
    target.mkdir(parents=True, exist_ok=True)
    if config is not None:
        config = dict(config)
        file_name = _file_name(str(config["filepath"]))
        config["filepath"] = (target / file_name).as_posix()
        try:
            AbstractDataset.from_config(name, config).save(data)
        except Exception as error:  # noqa: BLE001 - a read-only dataset type: keep the object instead
            logger.debug("Storing %s with cloudpickle: its dataset cannot save locally (%s)", name, error)
        else:
            config["filepath"] = file_name
            return {"kind": "dataset", "config": config}
    import cloudpickle  # not on Kedro's start-up path (the hook imports this module)

    with open(target / PICKLE_FILE, "wb") as stream:
        cloudpickle.dump(data, stream)
    return {"kind": "pickle", "file": PICKLE_FILE}


def artifact_dataset(name: str, spec: dict[str, Any], folder: str | Path) -> AbstractDataset:
    """A dataset reading what ``save_with_config`` wrote into ``folder``."""
    if spec["kind"] == "dataset":
        config = spec["config"]
        return AbstractDataset.from_config(name, dict(config, filepath=(Path(folder) / config["filepath"]).as_posix()))
    import cloudpickle

    with open(Path(folder) / spec["file"], "rb") as stream:
        return MemoryDataset(cloudpickle.load(stream), copy_mode="assign")


def load_artifact(name: str, spec: dict[str, Any], folder: str | Path) -> Any:
    return artifact_dataset(name, spec, folder).load()


def dataset_type(spec: dict[str, Any]) -> str | None:
    """The dataset class path of a stored artifact (None for pickled objects)."""
    return spec.get("config", {}).get("type") if spec["kind"] == "dataset" else None


def hand_mapped_spec(dataset: AbstractDataset) -> dict[str, Any] | None:
    """How to read the dataset's own file when kedro-mlflow's users log the model by hand with
    ``artifacts={"model": "data/06_models/model.pkl"}`` (None: the file is unpickled)."""
    config = artifact_config(dataset)
    if config is None:
        return None
    return {"kind": "dataset", "config": dict(config, filepath=_file_name(config["filepath"]))}


def load_hand_mapped(name: str, spec: dict[str, Any] | None, path: str | Path) -> Any:
    """Read an artifact from the path MLflow gives for a hand-built mapping: the file itself,
    or a folder holding it (or the layout ``save_with_config`` writes)."""
    path = Path(path)
    if path.is_dir():
        if spec is not None and (path / spec["config"]["filepath"]).exists():
            return load_artifact(name, spec, path)
        if (path / PICKLE_FILE).is_file():
            return load_artifact(name, {"kind": "pickle", "file": PICKLE_FILE}, path)
    if spec is not None:
        return load_artifact(name, {"kind": "dataset", "config": dict(spec["config"], filepath=path.name)}, path.parent)
    return load_artifact(name, {"kind": "pickle", "file": path.name}, path.parent)
