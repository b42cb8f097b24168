"""Validation of study parameters: each check returns the clean value or raises ValueError naming
the field, the bad value and what is allowed (the CLI turns that into a one-line error)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["as_tuple", "check_bandwidths", "check_batch", "check_choice", "check_int",
           "check_kib", "check_positive", "check_tuple_of", "describe_params"]


def as_tuple(value: Any) -> tuple[Any, ...]:
    """A parameter that takes one value or several as a tuple: a string or any other scalar is
    a 1-tuple (``"tile"`` -> ``("tile",)``, never its characters), an iterable its items."""
    if isinstance(value, str) or not isinstance(value, Iterable):
        return (value,)
    return tuple(value)


def check_bandwidths(value: Any, field: str = "bandwidth") -> tuple[float, ...]:
    """DRAM bandwidths in GB/s: numbers > 0, ``inf`` allowed; a single number is a 1-tuple."""
    out = []
    for v in as_tuple(value):
        try:
            f = float(v)
        except (TypeError, ValueError):
            f = math.nan
        if isinstance(v, bool) or math.isnan(f) or f <= 0:
            raise ValueError(f"{field}={value!r} is not allowed; expected GB/s values > 0 "
                             "(inf for unlimited)")
        out.append(f)
    if not out:
        raise ValueError(f"{field}={value!r} is empty; give at least one bandwidth")
    return tuple(dict.fromkeys(out))


def check_batch(value: Any, field: str = "batch") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{field}={value!r} is not allowed; expected an integer >= 1")
    return value


def check_positive(value: Any, field: str) -> tuple[float, ...]:
    """One or more finite numbers > 0."""
    out = []
    for v in as_tuple(value):
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v <= 0:
            raise ValueError(f"{field}={value!r} is not allowed; expected finite numbers > 0")
        out.append(v)
    if not out:
        raise ValueError(f"{field}={value!r} is empty; give at least one value")
    return tuple(out)


def check_int(field: str, value: Any, lo: int, hi: int, *, none: str = "") -> Any:
    """An integer in ``lo..hi`` (bools refused); with ``none`` also None, which means ``none``
    (said in the error: ``expected None (the recipe's bits) or an integer in 1..32``)."""
    if value is None and none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        allowed = f"an integer in {lo}..{hi}"
        raise ValueError(f"{field}={value!r} is not allowed; expected "
                         + (f"None ({none}) or {allowed}" if none else allowed))
    return value


def check_kib(value: Any, field: str) -> float | None:
    """An optional SRAM size: None (the preset's own) or one finite number of KiB > 0."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
            or value <= 0:
        raise ValueError(f"{field}={value!r} is not allowed; expected None (the preset's own) or "
                         "a finite number of KiB > 0")
    return float(value)


def check_choice(field: str, value: Any, allowed: Sequence[Any]) -> Any:
    if value not in allowed:
        raise ValueError(f"{field}={value!r} is not allowed; expected one of "
                         f"{', '.join(map(str, allowed))}")
    return value


def check_tuple_of(field: str, value: Any, allowed: Sequence[Any], *,
                   allow_empty: bool = False) -> tuple[Any, ...]:
    """One value or several (`as_tuple`), each in ``allowed`` (an empty ``allowed`` accepts
    anything), duplicates dropped; an empty tuple only with ``allow_empty``."""
    out = as_tuple(value)
    if not out and not allow_empty:
        raise ValueError(f"{field}={value!r} is empty; give at least one value")
    for v in out:
        if allowed:
            check_choice(field, v, allowed)
    return tuple(dict.fromkeys(out))


def describe_params(params: dict[str, Any]) -> str:
    """'Parameters: a=1, b=(...)' for a summary's intro."""
    def fmt(v: Any) -> str:
        if isinstance(v, float) and math.isinf(v):
            return "inf"
        if isinstance(v, tuple | list):  # a 1-tuple as Python writes it: (16,), not (16)
            return "(" + ", ".join(fmt(x) for x in v) + ("," if len(v) == 1 else "") + ")"
        if isinstance(v, float):
            return f"{v:g}"
        return str(v)

    return "Parameters: " + ", ".join(f"`{k}={fmt(v)}`" for k, v in params.items()) + "."
