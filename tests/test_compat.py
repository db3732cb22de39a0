"""One test per private surface in ``kedro_mlflow_starter.compat``, against the installed releases.

When a Kedro, kedro-datasets or MLflow release changes one of them, the test of that surface
fails here, naming it, instead of a ``kedro run`` failing somewhere deep.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.pipeline import node

from kedro_mlflow_starter import compat

PLUGIN = Path(__file__).resolve().parents[1] / "plugin" / "kedro_mlflow_starter"


def _two(x):
    return {"a": x, "b": x + 1}


def test_catalog_lazy_config_reads_and_replaces_an_unbuilt_entry() -> None:
    catalog = DataCatalog.from_config({"m": {"type": "kedro.io.MemoryDataset", "version": 3}})
    config = compat.lazy_dataset_config(catalog, "m")
    assert config == {"type": "kedro.io.MemoryDataset", "version": 3}, "kedro DataCatalog._lazy_datasets"
    compat.replace_lazy_dataset_config(catalog, "m", {"type": "kedro.io.MemoryDataset", "data": 7})
    assert catalog.load("m") == 7
    assert compat.lazy_dataset_config(catalog, "not-there") is None


def test_dataset_init_config_gives_type_and_arguments(tmp_path) -> None:
    from kedro_datasets.pandas import CSVDataset

    dataset = CSVDataset(filepath=str(tmp_path / "x.csv"), load_args={"sep": ";"})
    config = compat.dataset_init_config(dataset)
    assert config["type"].endswith("CSVDataset"), "kedro AbstractDataset._init_config"
    assert config["filepath"] == str(tmp_path / "x.csv") and config["load_args"] == {"sep": ";"}
    assert compat.dataset_init_config(object()) is None


@pytest.mark.parametrize(
    ("inputs", "outputs"),
    [("x", "y"), (["x", "z"], ["y", "w"]), ({"x": "x"}, {"a": "y", "b": "w"}), (None, "y")],
)
def test_node_call_parts_keep_the_declared_form(inputs, outputs) -> None:
    func = _two if isinstance(outputs, dict) else (lambda *a, **k: 1)
    declared = node(func, inputs, outputs, name="n")
    called, got_inputs, got_outputs, to_dict = compat.node_call_parts(declared)
    assert called is func
    assert got_inputs == inputs and got_outputs == outputs, "kedro Node._inputs / _outputs"
    if isinstance(outputs, dict):
        assert to_dict({"a": 1, "b": 2}) == {"y": 1, "w": 2}, "kedro Node._outputs_to_dictionary"


def test_file_dataset_targets(tmp_path) -> None:
    from kedro_datasets.pandas import CSVDataset
    from kedro_datasets.partitions import PartitionedDataset
    import pandas as pd

    plain = CSVDataset(filepath=str(tmp_path / "x.csv"))
    assert compat.has_file_target(plain) and not compat.is_partitioned(plain)
    assert str(compat.file_target(plain)) == str(tmp_path / "x.csv"), "kedro-datasets _filepath"
    assert compat.protocol(plain) == "file" and compat.filesystem(plain) is not None

    from kedro.io import Version

    versioned = CSVDataset(filepath=str(tmp_path / "v.csv"), version=Version(None, "2024-01-01T00.00.00.000Z"))
    versioned.save(pd.DataFrame({"a": [1]}))
    saved = Path(str(compat.saved_path(versioned)))
    assert saved.exists() and saved.parent.name == "2024-01-01T00.00.00.000Z", "kedro _get_versioned_path"

    parts = PartitionedDataset(path=str(tmp_path / "parts"), dataset="pandas.CSVDataset", filename_suffix=".csv")
    assert compat.is_partitioned(parts) and compat.has_file_target(parts)
    assert compat.partitions_root(parts).rstrip("/") == str(tmp_path / "parts"), "PartitionedDataset._normalized_path"
    assert compat.partition_path(parts, "p1").endswith("parts/p1.csv"), "PartitionedDataset._partition_to_path"
    assert not compat.has_file_target(MemoryDataset(1))


def test_fluent_store_pins_and_restores_mlflow_globals(tmp_path, monkeypatch) -> None:
    import mlflow

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    elsewhere = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    ours = f"sqlite:///{tmp_path / 'ours.db'}"
    mlflow.set_tracking_uri(elsewhere)
    try:
        with compat.fluent_store(ours, None):
            assert mlflow.get_tracking_uri() == ours, "mlflow tracking utils._tracking_uri"
        assert mlflow.get_tracking_uri() == elsewhere
        assert os.environ["MLFLOW_TRACKING_URI"] == elsewhere  # as set_tracking_uri left it
    finally:
        from mlflow.tracking._tracking_service import utils

        utils._tracking_uri = None
        os.environ.pop("MLFLOW_TRACKING_URI", None)


def test_a_changed_surface_is_named_in_the_error() -> None:
    with pytest.raises(compat.PrivateSurfaceChangedError, match="kedro Node._inputs.*upgrade kedro-mlflow-starter"):
        compat.node_call_parts(type("NotANode", (), {"func": None})())


def test_no_private_name_of_another_package_is_used_outside_compat() -> None:
    """``obj._name`` on objects we do not own, and ``from x import _name``, only in compat.py."""
    offenders = []
    ours = {item.name for path in PLUGIN.rglob("*.py") for item in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(item, ast.ClassDef)}
    for path in PLUGIN.rglob("*.py"):
        if path.name == "compat.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for item in ast.walk(tree):
            if isinstance(item, ast.ImportFrom) and item.module and not item.module.startswith("kedro_mlflow_starter"):
                offenders += [f"{path.name}: from {item.module} import {a.name}" for a in item.names
                              if a.name.startswith("_") and a.name != "__version__"]
                if item.module != "__future__" and any(part.startswith("_") for part in item.module.split(".")):
                    offenders.append(f"{path.name}: from {item.module}")
            if isinstance(item, ast.Attribute) and item.attr.startswith("_") and not item.attr.startswith("__"):
                owner = item.value
                if isinstance(owner, ast.Name) and (owner.id in ("self", "cls", "model", "state") or owner.id in ours):
                    continue
                if isinstance(owner, ast.Call) and getattr(owner.func, "id", None) == "super":
                    continue
                if item.attr in ("_replace", "_asdict", "_fields", "_make"):  # namedtuple's public API
                    continue
                offenders.append(f"{path.name}:{item.lineno}: .{item.attr}")
    assert offenders == []


def test_catalog_entry_being_built_is_the_entry_name_kedro_builds() -> None:
    from kedro.io import DataCatalog

    seen = {}

    class Probe(compat_probe_base()):  # type: ignore[misc]
        def __init__(self) -> None:
            seen["name"] = compat.catalog_entry_being_built()

    catalog = DataCatalog.from_config({"my_entry": {"type": Probe}})
    catalog.get("my_entry")
    assert seen["name"] == "my_entry"
    Probe()
    assert seen["name"] is None  # built by hand: no entry


def compat_probe_base() -> type:
    from kedro.io import AbstractDataset

    class Base(AbstractDataset):
        def load(self): return None  # noqa: ANN201, E704
        def save(self, data): return None  # noqa: ANN001, ANN201, E704
        def _describe(self): return {}  # noqa: ANN202, E704
    return Base


def test_leave_fluent_run_pops_without_ending_the_run(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    run_id = mlflow.MlflowClient(uri).create_run("0").info.run_id
    mlflow.start_run(run_id=run_id)
    assert compat.leave_fluent_run(run_id) is True
    assert mlflow.active_run() is None
    assert mlflow.MlflowClient(uri).get_run(run_id).info.status == "RUNNING"
    assert compat.leave_fluent_run(run_id) is False


def test_register_request_header_provider_adds_its_headers() -> None:
    from mlflow.tracking.request_header.abstract_request_header_provider import RequestHeaderProvider
    from mlflow.tracking.request_header.registry import resolve_request_headers

    class Token(RequestHeaderProvider):
        def in_context(self) -> bool:
            return True

        def request_headers(self) -> dict:
            return {"X-Test-Token": "abc"}

    from mlflow.tracking.request_header import registry

    compat.register_request_header_provider(Token())
    try:
        assert resolve_request_headers()["X-Test-Token"] == "abc"
    finally:  # leave MLflow's registry as it was for the other tests of this process
        providers = registry._request_header_provider_registry._registry
        providers[:] = [p for p in providers if not isinstance(p, Token)]


def test_optuna_trial_id_is_the_storage_id_of_a_trial() -> None:
    import optuna

    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(storage=storage)
    study.enqueue_trial({})
    study.enqueue_trial({})
    second = study.get_trials(deepcopy=False)[1]
    trial_id = compat.optuna_trial_id(second)
    assert storage.get_trial(trial_id).number == 1, "optuna FrozenTrial._trial_id"


def test_split_params_reads_params_as_kedro_run_does() -> None:
    import click

    option = click.Option(["--params"])
    context = click.Context(click.Command("run"))
    assert compat.split_params(context, option, "a=1, b.c=x,d.e=true") == {"a": 1, "b": {"c": "x"}, "d": {"e": True}}
    with pytest.raises(click.UsageError, match="Item `a` must contain a key and a value"):
        compat.split_params(context, option, "a")


def test_renew_autologging_pools_gives_new_pools_of_mlflow_sizes() -> None:
    from mlflow.utils.autologging_utils import client, metrics_queue

    old = (client._AUTOLOGGING_QUEUEING_CLIENT_THREAD_POOL, metrics_queue._thread_pool)
    compat.renew_autologging_pools()
    new = (client._AUTOLOGGING_QUEUEING_CLIENT_THREAD_POOL, metrics_queue._thread_pool)
    for before, after in zip(old, new):
        assert after is not before, "mlflow.utils.autologging_utils' module-level thread pools"
        assert (after._max_workers, after._thread_name_prefix) == (before._max_workers, before._thread_name_prefix)
    assert new[1].submit(lambda: 42).result(timeout=10) == 42
