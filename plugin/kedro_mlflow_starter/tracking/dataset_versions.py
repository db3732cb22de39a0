"""The versions a run loaded and saved of Kedro versioned datasets, as run tags (facts, not knobs)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from kedro.io import AbstractVersionedDataset

if TYPE_CHECKING:  # pragma: no cover
    from kedro.io import DataCatalog


def _resolve(catalog: DataCatalog, name: str, method: str) -> str | None:
    """``resolve_load_version``/``resolve_save_version`` of a versioned dataset; None for others or
    when there is nothing to resolve (nothing saved yet)."""
    if name not in catalog:
        return None
    dataset = catalog.get(name)
    if not isinstance(dataset, AbstractVersionedDataset) or getattr(dataset, "_version", None) is None:
        return None
    try:
        return getattr(dataset, method)()
    except Exception:
        return None


def version_tags(catalog: DataCatalog, read: Iterable[str], written: Iterable[str]) -> dict[str, str]:
    """``kedro.load_version.<name>`` for the versioned datasets read, ``kedro.save_version.<name>`` for those written."""
    tags: dict[str, str] = {}
    for names, kind in ((read, "load"), (written, "save")):
        for name in sorted(set(names)):
            version = _resolve(catalog, name, f"resolve_{kind}_version")
            if version:
                tags[f"kedro.{kind}_version.{name}"[:250]] = str(version)
    return tags


def load_version(catalog: DataCatalog, name: str) -> str | None:
    """The version of ``name`` that the run loads, or None for an unversioned dataset."""
    return _resolve(catalog, name, "resolve_load_version")
