"""``save_args.signature`` (YAML columns, or ``infer``) and ``save_args.input_example`` (``{dataset:
{type: ..., filepath: ...}, rows: 5}``) of ``MlflowModelTrackingDataset``: checked when the catalog
is created (no ``mlflow`` import), made real at save."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kedro.io.core import DatasetError

COLUMN_TYPES = ("boolean", "integer", "long", "float", "double", "string", "binary", "datetime")
DEFAULT_EXAMPLE_ROWS = 5


def check_signature_args(save_args: Mapping[str, Any], where: str) -> None:
    """Refuse a catalog signature or input example that cannot work, naming the key and the fix."""
    signature = save_args.get("signature")
    example = save_args.get("input_example")
    if isinstance(signature, str):
        if signature != "infer":
            raise DatasetError(f"{where}: `save_args.signature: {signature}` is not valid. Give `infer` (with "
                               "`save_args.input_example`) or the columns: `{inputs: {name: type}, outputs: ...}`.")
        if example is None:
            raise DatasetError(f"{where}: `save_args.signature: infer` needs `save_args.input_example` (e.g. "
                               "`input_example: {dataset: {type: pandas.ParquetDataset, filepath: ...}, rows: 5}`) "
                               "to infer the signature from.")
    elif isinstance(signature, Mapping):
        unknown = sorted(set(signature) - {"inputs", "outputs"})
        if unknown or "inputs" not in signature:
            raise DatasetError(f"{where}: `save_args.signature` takes `inputs` (required) and `outputs`, got "
                               f"{sorted(signature)}.")
        for part in ("inputs", "outputs"):
            if part in signature:
                _columns(signature[part], f"{where}: save_args.signature.{part}")
    if isinstance(example, Mapping) and "dataset" in example:
        unknown = sorted(set(example) - {"dataset", "rows"})
        dataset = example["dataset"]
        rows = example.get("rows", DEFAULT_EXAMPLE_ROWS)
        if unknown or not isinstance(dataset, Mapping) or "type" not in dataset:
            raise DatasetError(f"{where}: `save_args.input_example` takes `dataset` (a dataset config with `type`, "
                               f"as in catalog.yml) and `rows`, got {sorted(example)}.")
        if not isinstance(rows, int) or isinstance(rows, bool) or rows < 1:
            raise DatasetError(f"{where}: `save_args.input_example.rows` must be a whole number >= 1, got {rows!r}.")


def _columns(spec: Any, where: str) -> list[tuple[str | None, str, bool]]:
    """(name, type, required) of each column of ``{name: type}``, ``[{name, type, required}]`` or ``type``."""
    if isinstance(spec, str):
        spec = [{"type": spec}]
    elif isinstance(spec, Mapping):
        spec = [{"name": name, "type": kind} for name, kind in spec.items()]
    if not isinstance(spec, list) or not spec:
        raise DatasetError(f"{where}: give the columns as `{{name: type}}`, a list of `{{name, type, required}}`, "
                           f"or one type; got {spec!r}.")
    columns = []
    for column in spec:
        if not isinstance(column, Mapping) or "type" not in column:
            raise DatasetError(f"{where}: each column needs a `type`, got {column!r}.")
        name, kind = column.get("name"), column["type"]
        if kind not in COLUMN_TYPES:
            key = f"{where}.{name}" if name else where
            raise DatasetError(f"{key}: type {kind!r} is not one of MLflow's column types: "
                               f"{', '.join(COLUMN_TYPES)}.")
        columns.append((None if name is None else str(name), kind, bool(column.get("required", True))))
    return columns


def resolve_signature_args(kwargs: dict[str, Any], model: Any, where: str) -> dict[str, Any]:
    """``kwargs`` of ``save_model`` with the catalog's signature and input example made real."""
    signature = kwargs.get("signature")
    example = kwargs.get("input_example")
    if isinstance(example, Mapping) and "dataset" in example:
        example = _read_example(example)
        kwargs = {**kwargs, "input_example": example}
    if signature == "infer":
        from mlflow.models import infer_signature

        predict = getattr(model, "predict", None)
        output = predict(example) if callable(predict) else None
        kwargs = {**kwargs, "signature": infer_signature(example, output)}
    elif isinstance(signature, Mapping):
        kwargs = {**kwargs, "signature": _model_signature(signature, where)}
    return kwargs


def _read_example(example: Mapping[str, Any]) -> Any:
    from kedro.io import AbstractDataset

    data = AbstractDataset.from_config("input_example", dict(example["dataset"])).load()
    rows = example.get("rows", DEFAULT_EXAMPLE_ROWS)
    return data.head(rows) if hasattr(data, "head") else data[:rows]


def _model_signature(signature: Mapping[str, Any], where: str) -> Any:
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    def schema(part: str) -> Any:
        if part not in signature:
            return None
        return Schema([ColSpec(kind, name, required=required)
                       for name, kind, required in _columns(signature[part], f"{where}: save_args.signature.{part}")])

    return ModelSignature(inputs=schema("inputs"), outputs=schema("outputs"))
