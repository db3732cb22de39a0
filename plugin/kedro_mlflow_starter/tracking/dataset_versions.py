"""The load and save versions a run used for Kedro versioned datasets, as run tags.

Tags (not params): a version is a fact about the run's data, not a knob, and tags can be
read and searched in the UI (``tags.`kedro.load_version.iris` = '...'``). Pure Python.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

LOAD_TAG = "kedro.load_version.{}"
SAVE_TAG = "kedro.save_version.{}"


def is_versioned(dataset: Any) -> bool:
    """A Kedro versioned dataset (``versioned: true`` in the catalog)."""
    from kedro.io import AbstractVersionedDataset

    return isinstance(dataset, AbstractVersionedDataset) and getattr(dataset, "_version", None) is not None


def version_tags(catalog: Any, read: Iterable[str], written: Iterable[str]) -> dict[str, str]:
    """``kedro.load_version.<name>`` for versioned datasets the run read from outside,
    ``kedro.save_version.<name>`` for those it wrote."""
    tags: dict[str, str] = {}
    for name, template, resolve in (
        *((n, LOAD_TAG, "resolve_load_version") for n in sorted(set(read))),
        *((n, SAVE_TAG, "resolve_save_version") for n in sorted(set(written))),
    ):
        if name not in catalog:
            continue
        dataset = catalog.get(name)
        if not is_versioned(dataset):
            continue
        try:
            version = getattr(dataset, resolve)()
        except Exception:  # nothing saved yet under that name: no load version to report
            continue
        if version:
            tags[template.format(name)[:250]] = str(version)
    return tags


def load_version(catalog: Any, name: str) -> str | None:
    """The version of ``name`` that the run loads, or None for an unversioned dataset."""
    if name not in catalog:
        return None
    dataset = catalog.get(name)
    if not is_versioned(dataset):
        return None
    try:
        return dataset.resolve_load_version()
    except Exception:
        return None
