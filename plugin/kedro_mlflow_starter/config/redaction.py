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
    """``value`` with every mapping entry under a secret-looking key replaced by ``***`` (but
    ``credentials: <name>``, a reference to credentials.yml) and the credentials of every URI removed."""
    patterns = tuple(patterns)
    if isinstance(value, Mapping):
        return {k: REDACTED if _secret_entry(str(k), v, patterns) else redact_nested(v, patterns)
                for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return type(value)(redact_nested(item, patterns) for item in value)
    return redact_uri(value) if isinstance(value, str) else value


def _secret_entry(key: str, value: Any, patterns: Iterable[str]) -> bool:
    if key == "credentials":  # a mapping is the secret itself; a name only points into credentials.yml
        return isinstance(value, Mapping)
    return is_secret(key, patterns)
