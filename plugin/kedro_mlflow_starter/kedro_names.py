"""How Kedro names a pipeline's inputs: ``parameters``, ``params:<key>`` and transcoded ``<name>@<format>``."""

from __future__ import annotations

PARAMS_PREFIX = "params:"
TRANSCODING_SEPARATOR = "@"


def is_parameter(name: str) -> bool:
    """True for ``parameters`` and ``params:...`` inputs: values, not data."""
    return name == "parameters" or name.startswith(PARAMS_PREFIX)


def parameter_key(name: str) -> str:
    """``params:model_options.C`` -> ``model_options.C``."""
    return name[len(PARAMS_PREFIX):] if name.startswith(PARAMS_PREFIX) else name


def strip_transcoding(name: str) -> str:
    """``model@pickle`` -> ``model`` (Kedro's transcoding suffix removed)."""
    return name.split(TRANSCODING_SEPARATOR, 1)[0]
