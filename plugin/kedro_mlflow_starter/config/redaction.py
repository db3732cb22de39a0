"""The one place that decides what must not be written to MLflow or printed."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

REDACTED = "***"
DEFAULT_SECRET_PATTERNS = (
    "password", "passwd", "secret", "token", "api_key", "apikey", "access_key", "private_key", "credential",
)
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^/@\s'\"]+)@")


def redact_uri(text: str) -> str:
    """``text`` with the ``user:password@`` part of every URI in it replaced by ``***@``."""
    return _USERINFO.sub(r"\g<scheme>***@", text)


def is_secret(key: str, patterns: Iterable[str] = DEFAULT_SECRET_PATTERNS) -> bool:
    """True when ``key`` contains one of ``patterns`` (case-insensitive, ``-`` read as ``_``)."""
    normalised = key.lower().replace("-", "_")
    return any(pattern.lower() in normalised for pattern in patterns if pattern)


def redact_nested(value: Any, patterns: Iterable[str] = DEFAULT_SECRET_PATTERNS, *,
                  credentials_by_name: bool = False) -> Any:
    """``value`` fit to be written: secret-looking keys' values become ``***``, URIs lose their
    ``user:password@``, keys become strings, sequences lists and other objects their text (a class
    name, never an ``<... object at 0x...>`` repr).

    ``credentials_by_name``: ``credentials: <name>`` is a catalog's reference to credentials.yml and
    is kept; a ``credentials`` mapping (the secret itself) is always ``***``.
    """
    patterns = tuple(patterns)
    if isinstance(value, Mapping):
        return {str(k): REDACTED if _secret_entry(str(k), v, patterns, credentials_by_name)
                else redact_nested(v, patterns, credentials_by_name=credentials_by_name) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [redact_nested(v, patterns, credentials_by_name=credentials_by_name) for v in value]
    if isinstance(value, str):
        return redact_uri(value)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    text = str(value)
    return type(value).__name__ if " object at 0x" in text else text


def _secret_entry(key: str, value: Any, patterns: tuple[str, ...], credentials_by_name: bool) -> bool:
    if credentials_by_name and key == "credentials":
        return isinstance(value, Mapping)
    return is_secret(key, patterns)
