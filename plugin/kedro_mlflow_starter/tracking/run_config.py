"""The resolved configuration and the pipeline's structure, as one folder of run artifacts.

``kedro/config/parameters.yml``  the parameters after ``--params`` and env overrides
``kedro/config/catalog.yml``     the catalog entries the pipeline used (as Kedro's ``to_config``
                                 gives them: credentials by reference only)
``kedro/config/run.yml``         how the run was launched (env, pipelines, filters, versions)
``kedro/pipeline.json``          Kedro's JSON of the pipeline (``Pipeline.to_json``)
``kedro/pipeline.svg``           a picture of the pipeline the MLflow UI shows

Every value under a secret-looking key (``tracking.params.secret_patterns``, plus
``credentials``) becomes ``***``, and every URI loses its ``user:password@`` part. Pure
Python except ``log_kedro_folder``, which takes an ``MlflowClient``.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from kedro_mlflow_starter.config.redaction import DEFAULT_SECRET_PATTERNS, REDACTED, is_secret, redact_uri

ARTIFACT_FOLDER = "kedro"
_RUN_KEYS = ("env", "pipeline_names", "tags", "node_names", "from_nodes", "to_nodes", "from_inputs",
             "to_outputs", "namespaces", "load_versions", "runner", "only_missing_outputs")


def redact(value: Any, patterns: Iterable[str]) -> Any:
    """``value`` with secret-looking keys' values replaced by ``***`` and URIs' credentials removed."""
    patterns = list(patterns)
    if isinstance(value, Mapping):
        return {str(k): REDACTED if _secret_key(str(k), value[k], patterns) else redact(v, patterns)
                for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [redact(v, patterns) for v in value]
    if isinstance(value, str):
        return redact_uri(value)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return _class_name(value)  # a name, never an object repr


def _class_name(value: Any) -> str:
    """``SequentialRunner`` for a runner or its repr ``<kedro.runner...SequentialRunner object at 0x...>``."""
    text = value if isinstance(value, str) else str(value)
    found = re.fullmatch(r"<(?:[\w.]+\.)?(\w+) object at 0x[0-9a-fA-F]+>", text)
    if found:
        return found.group(1)
    return text if isinstance(value, str) else type(value).__name__ if " object at 0x" in text else text


def _secret_key(key: str, value: Any, patterns: list[str]) -> bool:
    # `credentials: name_in_credentials_yml` is a harmless reference; a mapping is the secret itself.
    if key == "credentials":
        return isinstance(value, Mapping)
    return is_secret(key, patterns)


def catalog_entries(catalog: Any, names: Iterable[str]) -> dict[str, Any]:
    """The catalog configuration of ``names`` (parameters and in-memory datasets excluded)."""
    wanted = {n for n in names if n != "parameters" and not n.startswith("params:")}
    try:
        config, _credentials, _load_versions, _save_version = catalog.to_config()
    except Exception:  # a dataset built from objects, not config: describe it by its type
        config = {}
    entries = {name: config[name] for name in sorted(wanted) if name in config}
    for name in sorted(wanted - set(entries)):
        if name in catalog:
            dataset = catalog.get(name)
            entries[name] = {"type": f"{type(dataset).__module__}.{type(dataset).__qualname__}"}
    return entries


def catalog_types(catalog: Any, names: Iterable[str]) -> dict[str, str]:
    """Dataset name -> the class name of its dataset (``MlflowMetricsHistoryDataset``, ``CSVDataset``)."""
    types = {}
    for name in names:
        if name != "parameters" and not name.startswith("params:") and name in catalog:
            dataset = catalog.get(name)
            types[name] = f"{type(dataset).__module__}.{type(dataset).__qualname__}"
    return types


def kedro_folder_files(
    *,
    parameters: Mapping[str, Any] | None,
    catalog: Mapping[str, Any] | None,
    run_params: Mapping[str, Any] | None,
    pipeline: Any = None,
    svg: str | None = None,
    secret_patterns: Iterable[str] = DEFAULT_SECRET_PATTERNS,
) -> dict[str, str]:
    """Relative path under ``kedro/`` -> file text; a section left None is not written."""
    patterns = list(secret_patterns)
    files: dict[str, str] = {}

    def dump(data: Any) -> str:
        return yaml.safe_dump(redact(data, patterns), sort_keys=False, allow_unicode=True, default_flow_style=False)

    if parameters is not None:
        files["config/parameters.yml"] = dump(dict(parameters))
    if catalog is not None:
        files["config/catalog.yml"] = dump(dict(catalog))
    if run_params is not None:
        launched = {k: run_params.get(k) for k in _RUN_KEYS if run_params.get(k)}
        if "runner" in launched:  # Kedro records the runner object's repr: keep its class name
            launched["runner"] = _class_name(launched["runner"])
        overrides = run_params.get("runtime_params") or run_params.get("extra_params")  # --params
        if overrides:
            launched["runtime_params"] = overrides
        files["config/run.yml"] = dump(launched)
    if pipeline is not None:
        files["pipeline.json"] = json.dumps(json.loads(pipeline.to_json()), indent=2) + "\n"
    if svg is not None:
        files["pipeline.svg"] = svg
    return files


def log_kedro_folder(client: Any, run_id: str, files: Mapping[str, str]) -> None:
    """Write ``files`` to a temporary folder and upload it as ``kedro/`` in one call."""
    if not files:
        return
    with tempfile.TemporaryDirectory(prefix="kedro-mlflow-lineage-") as folder:
        for relative, text in files.items():
            path = Path(folder, relative)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        client.log_artifacts(run_id, folder, ARTIFACT_FOLDER)
