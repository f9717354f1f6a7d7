"""Strict JSON for the files tfgen writes for other programs to read.

Python's ``json`` writes ``float("inf")`` as the bare token ``Infinity`` (and NaN
as ``NaN``), which is not JSON: ``JSON.parse``, Go's ``encoding/json`` and most
other parsers refuse the whole file. A recipe can hold such a number on purpose
(``KDEGAN(threshold=inf)`` turns the MMD stopping test off), and a metric can be
``inf`` or ``NaN``. So ``recipe.json``, ``metrics.json``, ``card.json`` and the
export info are written through :func:`dump`: a non-finite float becomes the
string ``"inf"``, ``"-inf"`` or ``"nan"``, which ``float()`` reads back (and
:func:`restore` turns back into floats when a recipe is read).
"""
from __future__ import annotations

import json
import math
from typing import Any, IO

__all__ = ["dump", "dumps", "restore", "strict"]

_NON_FINITE = {"inf": float("inf"), "-inf": float("-inf"), "nan": float("nan")}


def strict(data: Any) -> Any:
    """``data`` with every non-finite float replaced by ``"inf"``, ``"-inf"`` or ``"nan"``."""
    if isinstance(data, float) and not math.isfinite(data):
        return "nan" if math.isnan(data) else ("inf" if data > 0 else "-inf")
    if isinstance(data, dict):
        return {k: strict(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [strict(v) for v in data]
    return data


def restore(data: Any) -> Any:
    """The inverse of :func:`strict`: the strings ``"inf"``, ``"-inf"`` and ``"nan"``
    become floats again (for data where those strings mean nothing else: recipes)."""
    if isinstance(data, str):
        return _NON_FINITE.get(data, data)
    if isinstance(data, dict):
        return {k: restore(v) for k, v in data.items()}
    if isinstance(data, list):
        return [restore(v) for v in data]
    return data


def dumps(data: Any, **kwargs) -> str:
    """``json.dumps`` of :func:`strict` ``(data)``; raises rather than write a non-JSON token."""
    return json.dumps(strict(data), allow_nan=False, **kwargs)


def dump(data: Any, f: IO[str], **kwargs) -> None:
    """``json.dump`` of :func:`strict` ``(data)`` into the open text file ``f``."""
    json.dump(strict(data), f, allow_nan=False, **kwargs)
