"""What a results table looks like on disk: no repeated columns, whole cycles, exact zeros, and
per-key shares as a Parquet map rather than JSON text.

`tidy` runs on every table `dse.study.report.write_results` writes (the table a study computes
with is not changed, so neither its targets nor its cache are):

* a flattened design or option column (``acc_<field>``, ``opt_<option>``, as
  `dse.sim.SimResult.to_dict` spells them) whose values repeat another column's is dropped - the
  row already says ``cores``, ``dram_gbps``, ``accelerator`` ...;
* a ``*_cycles`` column is rounded to whole cycles (integers), since a clock counts whole cycles;
* floating-point residue is an exact zero: a value whose magnitude is at most 1e-9 of its column's
  largest (a stall of 3e-12 cycles beside stalls of 10^4) is written as 0.

`parquet_table` stores a column of JSON objects of numbers (``macs_by_bits``:
``{"2x2": 0.87, "16x16": 0.13}``) as a Parquet ``map<string, double>``; CSV keeps the JSON text.
A column that holds sequences in some rows and scalars in others (a point's search choices beside
the chosen value) is stored as text, which Arrow's one type per column requires.
"""

from __future__ import annotations

import json
import logging
import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["FLATTENED_PREFIXES", "RESIDUE", "json_map_columns", "mixed_sequence_columns",
           "parquet_table", "tidy"]

log = logging.getLogger(__name__)

FLATTENED_PREFIXES = ("acc_", "opt_")
RESIDUE = 1e-9
"""Relative size (to the column's largest magnitude) below which a value is written as 0."""


def _same(a: pd.Series, b: pd.Series) -> bool:
    numeric = pd.api.types.is_numeric_dtype
    if not (numeric(a) and numeric(b)):
        return bool((a.astype(str) == b.astype(str)).all())
    try:
        return bool(np.array_equal(a.to_numpy(dtype=float), b.to_numpy(dtype=float),
                                   equal_nan=True))
    except (TypeError, ValueError):
        return False


def _repeats(df: pd.DataFrame) -> list[str]:
    """Flattened columns whose values repeat another (unprefixed) column's."""
    plain = [c for c in df.columns if not str(c).startswith(FLATTENED_PREFIXES)]
    return [c for c in df.columns if str(c).startswith(FLATTENED_PREFIXES)
            and any(_same(df[c], df[p]) for p in plain)]


def tidy(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` as written to disk (see the module docstring); a new frame."""
    drop = _repeats(df) if len(df) else []
    out = df.drop(columns=drop)
    for c in out.columns:
        col = out[c]
        if not pd.api.types.is_float_dtype(col):
            continue
        finite = col[np.isfinite(col)]
        if str(c).endswith("_cycles") and len(finite) == len(col):
            out[c] = np.rint(col).astype(np.int64)
            continue
        top = float(finite.abs().max()) if len(finite) else 0.0
        if top > 0:
            out[c] = col.where(~(col.abs() <= RESIDUE * top), 0.0)
    if drop:
        log.debug("results: dropped %d repeated columns: %s", len(drop), ", ".join(drop))
    return out


def _json_object(v: Any) -> dict[str, float] | None:
    if not isinstance(v, str) or not v.startswith("{"):
        return None
    try:
        d = json.loads(v)
    except ValueError:
        return None
    if not isinstance(d, dict) or not all(isinstance(x, int | float) and not isinstance(x, bool)
                                          for x in d.values()):
        return None
    return {str(k): float(x) for k, x in d.items()}


def json_map_columns(df: pd.DataFrame) -> list[str]:
    """Columns every non-null value of which is a JSON object of numbers."""
    out = []
    for c in df.columns:
        if pd.api.types.is_numeric_dtype(df[c]):
            continue
        values = df[c].dropna()
        if len(values) and all(_json_object(v) is not None for v in values):
            out.append(c)
    return out


def mixed_sequence_columns(df: pd.DataFrame) -> list[str]:
    """Object columns holding sequences (lists, tuples) in some rows and scalars in others - a
    design point's search choices (``mac_bits=('2x2', '4x4')``) beside the chosen value
    (``'2x2'``) of other rows. Arrow gives a column one type, so such a column cannot be stored
    as it is."""
    out = []
    for c in df.columns:
        if df[c].dtype != object:
            continue
        kinds = {isinstance(v, list | tuple) for v in df[c].dropna()}
        if kinds == {True, False}:
            out.append(c)
    return out


def _as_text(v: Any) -> Any:
    """A value of a mixed column as text: a sequence as its JSON list, a number as JSON, a
    string as it is; missing stays missing."""
    if v is None or isinstance(v, str) or (isinstance(v, float) and math.isnan(v)):
        return v
    return json.dumps(list(v) if isinstance(v, list | tuple) else v, default=str)


def parquet_table(df: pd.DataFrame) -> pa.Table:
    """``df`` as an Arrow table, JSON-object columns as ``map<string, double>``, and a column
    mixing sequences with scalars (`mixed_sequence_columns`) as text, each sequence as its JSON
    list (``'["2x2", "4x4"]'``)."""
    import pyarrow as pa

    mixed = mixed_sequence_columns(df)
    if mixed:
        df = df.assign(**{c: df[c].map(_as_text) for c in mixed})
    maps = json_map_columns(df)
    table = pa.Table.from_pandas(df.drop(columns=maps), preserve_index=False)
    for c in maps:
        items = [None if (v is None or (isinstance(v, float) and math.isnan(v)))
                 else list((_json_object(v) or {}).items()) for v in df[c]]
        arr = pa.array(items, type=pa.map_(pa.string(), pa.float64()))
        table = table.add_column(list(df.columns).index(c), c, arr)
    return table
