"""Building ``*Config`` dataclasses from JSON dicts, with a clear error for unknown fields."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, TypeVar

__all__ = ["build_config"]

T = TypeVar("T")


def build_config(cls: type[T], d: Mapping[str, Any] | None, what: str) -> T:
    """``cls(**d)``, refusing fields ``cls`` does not have (a typo in a config must not be silently ignored)."""
    d = dict(d or {})
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - known
    if unknown:
        raise ValueError(f"unknown {what} fields {sorted(unknown)}; known: {sorted(known)}")
    return cls(**d)
