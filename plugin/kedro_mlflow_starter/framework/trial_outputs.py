"""A sweep trial writes what its pipeline produces into a folder of its own, so parallel trials never
read each other's files (a trial's ``split_data`` rewriting ``train_set.csv`` while another trains).

The sweep worker names the folder in ``KEDRO_MLFLOW_TRIAL_FOLDER`` for one trial; before the trial's
pipeline runs, every local ``filepath``/``path`` of a dataset the pipeline outputs (in any of its
transcoded forms) moves under it, keeping its place relative to the project
(``data/05_model_input/train_set.csv`` -> ``<folder>/data/05_model_input/train_set.csv``). Inputs the
pipeline does not produce (raw data) are read where the catalog says; remote paths (``s3://``...) are
left as they are.
"""

from __future__ import annotations

import logging
import os
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from kedro.io import DataCatalog
from kedro.io.core import AbstractDataset, get_protocol_and_path

from kedro_mlflow_starter import compat
from kedro_mlflow_starter.kedro_names import strip_transcoding

if TYPE_CHECKING:  # pragma: no cover
    from kedro.pipeline import Pipeline

ENV_TRIAL_FOLDER = "KEDRO_MLFLOW_TRIAL_FOLDER"
_PATH_KEYS = ("filepath", "path")


def redirect_trial_outputs(run_params: dict[str, Any], pipeline: Pipeline, catalog: DataCatalog) -> None:
    """In a sweep trial, point the local files of ``pipeline``'s outputs into the trial's folder."""
    folder = os.environ.get(ENV_TRIAL_FOLDER)
    if not folder:
        return
    project, trial = PurePosixPath(run_params["project_path"]), PurePosixPath(folder)
    versions = None
    produced = {strip_transcoding(name) for name in pipeline.all_outputs()}  # `data@pandas` written, `data@spark` read
    for name in sorted(name for name in pipeline.datasets() if strip_transcoding(name) in produced):
        lazy = compat.lazy_dataset_config(catalog, name)
        if lazy is not None:  # not built yet: change the config it will be built from
            compat.replace_lazy_dataset_config(catalog, name, moved(lazy, project, trial))
            continue
        dataset = catalog.get(name)  # built already (our datasets), or resolved now from a dataset factory
        config = compat.dataset_init_config(dataset) if dataset is not None else None
        target = moved(config, project, trial) if config else config
        if target == config:
            continue
        if versions is None:
            versions = catalog.to_config()[2:]
        load_versions, save_version = versions
        rebuilt = AbstractDataset.from_config(name, target, load_versions.get(name), save_version)
        catalog_logger = logging.getLogger(DataCatalog.__module__)  # a project's catalog class may be a subclass
        level = catalog_logger.level
        catalog_logger.setLevel(logging.ERROR)  # not Kedro's "Replacing dataset" warning for each output
        try:
            catalog[name] = rebuilt
        finally:
            catalog_logger.setLevel(level)


def moved(config: dict[str, Any], project: PurePosixPath, folder: PurePosixPath) -> dict[str, Any]:
    """``config`` with its local file paths (and those of a wrapped ``dataset:``) under ``folder``.

    >>> moved({"type": "pandas.CSVDataset", "filepath": "/p/data/a.csv"}, PurePosixPath("/p"), PurePosixPath("/t"))
    {'type': 'pandas.CSVDataset', 'filepath': '/t/data/a.csv'}
    >>> moved({"type": "pandas.CSVDataset", "filepath": "s3://b/a.csv"}, PurePosixPath("/p"), PurePosixPath("/t"))
    {'type': 'pandas.CSVDataset', 'filepath': 's3://b/a.csv'}
    """
    config = dict(config)
    for key in _PATH_KEYS:
        value = config.get(key)
        if isinstance(value, str) and get_protocol_and_path(value)[0] == "file":
            path = PurePosixPath(get_protocol_and_path(value)[1])
            inside = path.relative_to(project) if path.is_relative_to(project) else path.relative_to(path.anchor)
            config[key] = (folder / inside).as_posix()
    if isinstance(config.get("dataset"), dict):
        config["dataset"] = moved(config["dataset"], project, folder)
    return config
