"""Results with a column that mixes sequences and scalars still write as Parquet."""

from __future__ import annotations

import json

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dse.study.tables import write_results
from dse.study.tidy import mixed_sequence_columns, parquet_table


def test_a_column_of_choices_beside_chosen_values_is_stored_as_text(tmp_path) -> None:
    # a search that found no feasible design keeps its point's choices, the others their pick
    df = pd.DataFrame({"mac_bits": ["2x2", ("2x2", "4x4"), None],
                       "sram_kib": [512.0, [256.0, 512.0], 1024.0],
                       "images_per_s": [10.0, float("nan"), 12.0],
                       "modes": [("layer",), ("layer",), ("layer",)]})
    assert mixed_sequence_columns(df) == ["mac_bits", "sram_kib"]
    (path,) = write_results(df, tmp_path, formats=("parquet",))
    back = pq.read_table(path).to_pandas()
    assert list(back["mac_bits"][:2]) == ["2x2", '["2x2", "4x4"]']
    assert pd.isna(back["mac_bits"][2])
    assert [json.loads(v) for v in back["sram_kib"]] == [512.0, [256.0, 512.0], 1024.0]
    # a column of sequences in every row keeps its list type
    assert pa.types.is_list(pq.read_table(path).schema.field("modes").type)


def test_without_the_conversion_arrow_refuses_the_column() -> None:
    df = pd.DataFrame({"mac_bits": ["2x2", ["2x2", "4x4"]]})
    with pytest.raises(pa.ArrowTypeError):
        pa.Table.from_pandas(df, preserve_index=False)
    assert parquet_table(df).column("mac_bits").to_pylist() == ["2x2", '["2x2", "4x4"]']
