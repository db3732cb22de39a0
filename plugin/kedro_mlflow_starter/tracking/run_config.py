"""The run's ``kedro/`` artifact folder: resolved parameters, catalog entries and launch options
under ``config/``, ``pipeline.json`` and ``pipeline.svg``; secrets redacted."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from kedro_mlflow_starter.config.redaction import DEFAULT_SECRET_PATTERNS, redact_nested
from kedro_mlflow_starter.kedro_names import is_parameter
from kedro_mlflow_starter.tracking.run_tags import runner_name

if TYPE_CHECKING:  # pragma: no cover
    from kedro.io import DataCatalog
    from kedro.pipeline import Pipeline
    from mlflow import MlflowClient

ARTIFACT_FOLDER = "kedro"
_RUN_KEYS = ("env", "pipeline_names", "tags", "node_names", "from_nodes", "to_nodes", "from_inputs",
             "to_outputs", "namespaces", "load_versions", "runner", "only_missing_outputs")


def catalog_entries(catalog: DataCatalog, names: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The catalog configuration of ``names`` as Kedro's ``to_config`` gives it (credentials by
    reference), parameters excluded; a dataset built from objects is described by its ``type``."""
    wanted = sorted({n for n in names if not is_parameter(n)})
    try:
        config = catalog.to_config()[0]
    except Exception:  # a dataset built from objects, not config
        config = {}
    entries = {}
    for name in wanted:
        if name in config:
            entries[name] = config[name]
        elif name in catalog:
            dataset = catalog.get(name)
            entries[name] = {"type": f"{type(dataset).__module__}.{type(dataset).__qualname__}"}
    return entries


def kedro_folder_files(
    *,
    parameters: Mapping[str, Any] | None,
    catalog: Mapping[str, Any] | None,
    run_params: Mapping[str, Any] | None,
    pipeline: Pipeline | None = None,
    svg: str | None = None,
    secret_patterns: Iterable[str] = DEFAULT_SECRET_PATTERNS,
) -> dict[str, str]:
    """Relative path under ``kedro/`` -> file text; a section left None is not written."""
    patterns = list(secret_patterns)

    def dump(data: Mapping[str, Any]) -> str:
        plain = json.loads(json.dumps(redact_nested(dict(data), patterns, credentials_by_name=True)))
        return yaml.safe_dump(plain, sort_keys=False, allow_unicode=True, default_flow_style=False)

    files: dict[str, str] = {}
    if parameters is not None:
        files["config/parameters.yml"] = dump(parameters)
    if catalog is not None:
        files["config/catalog.yml"] = dump(catalog)
    if run_params is not None:
        launched = {k: run_params.get(k) for k in _RUN_KEYS if run_params.get(k)}
        if "runner" in launched:  # Kedro records the runner object's repr
            launched["runner"] = runner_name(launched["runner"]) or "SequentialRunner"
        overrides = run_params.get("runtime_params") or run_params.get("extra_params")  # --params
        if overrides:
            launched["runtime_params"] = overrides
        files["config/run.yml"] = dump(launched)
    if pipeline is not None:
        files["pipeline.json"] = json.dumps(json.loads(pipeline.to_json()), indent=2) + "\n"
    if svg is not None:
        files["pipeline.svg"] = svg
    return files


def log_kedro_folder(client: MlflowClient, run_id: str, files: Mapping[str, str]) -> None:
    """Upload ``files`` as the run's ``kedro/`` folder in one call."""
    if not files:
        return
    with tempfile.TemporaryDirectory(prefix="kedro-mlflow-lineage-") as folder:
        for relative, text in files.items():
            path = Path(folder, relative)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        client.log_artifacts(run_id, folder, ARTIFACT_FOLDER)
