"""Accelerator descriptions in files: TOML or YAML, by suffix (as Timeloop and ZigZag keep them).

A file is a flat mapping of `Accelerator` fields, optionally under one top-level ``accelerator``
table::

    # sysml19-like 2-bit design
    cores = 64
    rows = 8
    cols = 64
    mac_bits = [2, 2]       # [weight_bits, act_bits]; a single integer means both
    freq_ghz = 1.0
    sram_kib = 256.0        # per core
    dram_gbps = inf         # TOML inf / YAML .inf: unlimited bandwidth

or a preset with its arguments: ``preset = "sysml19"`` plus ``mac_bits``, ``dram_gbps``,
``peak_scaling`` and field overrides. Unknown keys raise ValueError listing them and the allowed
ones.
TOML is read with `tomllib` and written by `to_toml` (flat scalars and int lists only); YAML with
PyYAML's safe loader and dumper.
"""

from __future__ import annotations

import json
import math
import tomllib
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped, unused-ignore]

from arch import presets
from arch.spec import Accelerator

__all__ = ["SUFFIXES", "from_dict", "load", "save", "to_dict", "to_toml"]

SUFFIXES = (".toml", ".yaml", ".yml")
_FIELDS = tuple(f.name for f in fields(Accelerator))


def to_dict(acc: Accelerator) -> dict[str, Any]:
    """The fields of ``acc`` as plain Python values (``mac_bits`` as a list), in field order."""
    out = {name: getattr(acc, name) for name in _FIELDS}
    out["mac_bits"] = list(acc.mac_bits)
    out["core_groups"] = [g.to_dict() for g in acc.core_groups]
    return out


def from_dict(data: dict[str, Any]) -> Accelerator:
    """An `Accelerator` from a mapping of its fields (or of a preset and its arguments)."""
    if not isinstance(data, dict):
        raise ValueError(f"accelerator description={type(data).__name__} is not allowed; expected "
                         "a mapping of Accelerator fields")
    if set(data) == {"accelerator"} and isinstance(data["accelerator"], dict):
        data = data["accelerator"]
    data = dict(data)
    if "mac_bits" in data:
        mb = data["mac_bits"]
        data["mac_bits"] = tuple(mb) if isinstance(mb, list | tuple) else mb
        if isinstance(mb, int) and not isinstance(mb, bool):
            data["mac_bits"] = (mb, mb)
    for key in ("dram_gbps", "noc_bytes_per_cycle", "global_buffer_bytes_per_cycle"):
        bw = data.get(key)
        if isinstance(bw, str) and bw.strip().lower() in ("inf", "+inf", "infinity"):
            data[key] = math.inf  # YAML reads a bare `inf` as a string (its spelling is .inf)
    if "preset" in data:
        return _from_preset(data)
    unknown = sorted(set(data) - set(_FIELDS))
    if unknown:
        raise ValueError(f"unknown key(s) {unknown} in accelerator description; allowed: "
                         f"{', '.join(_FIELDS)} (or 'preset' with its arguments)")
    if "cores" not in data:
        raise ValueError("cores is missing from the accelerator description; expected an "
                         "integer >= 1")
    return Accelerator(**data)


def _from_preset(data: dict[str, Any]) -> Accelerator:
    name = data.pop("preset")
    if name not in presets.names():
        raise ValueError(f"preset={name!r} is not allowed; available: {', '.join(presets.names())}")
    extra = {"sysml19": ("mac_bits", "dram_gbps", "peak_scaling", "total_sram_kib"),
             "llsq40nm": ("bits", "mac_bits", "dram_gbps"),
             "vu9p": ("mac_bits", "dram_gbps"),
             "scalesim": ("dram_words_per_cycle", "word_bytes")}[name]
    allowed = set(_FIELDS) | set(extra)
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ValueError(f"unknown key(s) {unknown} for preset {name!r}; allowed: "
                         f"{', '.join(sorted(allowed))}")
    if name == "llsq40nm" and "bits" in data:
        bits = data.pop("bits")
        data["bits"] = tuple(bits) if isinstance(bits, list) else bits
    groups = data.pop("core_groups", None)
    acc = presets.get(name, **data)
    if groups:  # the preset sizes the chip; the groups then split its cores
        acc = replace(acc, core_groups=tuple(groups))
    return acc


def _toml_value(key: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            raise ValueError(f"{key}=nan is not allowed in a TOML accelerator file")
        return ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(key, v) for v in value) + "]"
    raise ValueError(f"{key}={value!r} is not allowed in a TOML accelerator file; expected a "
                     "number, string or list")


def to_toml(acc: Accelerator) -> str:
    """``acc`` as TOML text (one ``key = value`` line per field)."""
    lines = ["# qdse accelerator description (arch.io); fields of arch.Accelerator"]
    data = to_dict(acc)
    groups = data.pop("core_groups")
    lines += [f"{k} = {_toml_value(k, v)}" for k, v in data.items()]
    for g in groups:  # an array of tables, after every plain key
        lines += ["", "[[core_groups]]"] + [f"{k} = {_toml_value(k, v)}" for k, v in g.items()]
    return "\n".join(lines) + "\n"


def _suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise ValueError(f"path suffix={path.suffix!r} is not allowed ({path}); expected one of "
                         f"{', '.join(SUFFIXES)}")
    return suffix


def load(path: str | Path) -> Accelerator:
    """Read an `Accelerator` from a ``.toml``, ``.yaml`` or ``.yml`` file."""
    path = Path(path)
    suffix = _suffix(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not a UTF-8 text file (byte {exc.object[exc.start]:#04x} at "
                         f"offset {exc.start}); expected a TOML or YAML accelerator description"
                         ) from None
    except OSError as exc:
        raise ValueError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    try:
        data = tomllib.loads(text) if suffix == ".toml" else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: not valid {suffix[1:].upper()}: {_one_line(exc)}") from None
    try:
        return from_dict(data)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc


def _one_line(exc: Exception) -> str:
    """A parser's message on one line: PyYAML's spans four (problem, context, a snippet, a caret);
    keep the problem and its position."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None)
    if problem and mark is not None:
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    return " ".join(str(exc).split())


def save(acc: Accelerator, path: str | Path) -> Path:
    """Write ``acc`` to ``path`` as TOML or YAML (by suffix); returns the path."""
    path = Path(path)
    suffix = _suffix(path)
    if suffix == ".toml":
        text = to_toml(acc)
    else:
        text = yaml.safe_dump(to_dict(acc), sort_keys=False, allow_unicode=True)
    path.write_text(text, encoding="utf-8")
    return path
