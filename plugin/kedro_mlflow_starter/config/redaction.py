"""The one place that decides what must not be written to MLflow or printed.

Two rules, used by everything that records or prints: the ``user:password@`` part of any
URI is replaced by ``***@``, and a value whose key looks secret (``password``, ``token``,
``api_key``... or a project's own ``tracking.params.secret_patterns``) is replaced by
``***``. Pure Python, no ``mlflow``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

REDACTED = "***"

DEFAULT_SECRET_PATTERNS = (
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "access_key",
    "private_key",
    "credential",
)

_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^/@\s'\"]+)@")


def redact_uri(text: str) -> str:
    """``text`` with the ``user:password@`` part of every URI in it replaced by ``***@``.

    Tracking URIs may carry credentials (``https://user:token@host``); anything the plugin
    prints or records goes through here first.
    """
    return _USERINFO.sub(r"\g<scheme>***@", text)


def is_secret(key: str, patterns: Iterable[str] = DEFAULT_SECRET_PATTERNS) -> bool:
    """True when ``key`` contains one of ``patterns`` (case-insensitive, ``-`` read as ``_``)."""
    normalised = key.lower().replace("-", "_")
    return any(pattern.lower() in normalised for pattern in patterns if pattern)


def redact_nested(value: Any, patterns: Iterable[str] = DEFAULT_SECRET_PATTERNS) -> Any:
    """``value`` with every mapping entry under a secret-looking key replaced by ``***``."""
    patterns = tuple(patterns)
    if isinstance(value, Mapping):
        return {
            k: REDACTED if is_secret(str(k), patterns) else redact_nested(v, patterns) for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return type(value)(redact_nested(item, patterns) for item in value)
    return value
