"""The bandwidth x area sweep's ``throughput_by_fidelity`` table (issue 9 item 5): each cell is
the images/s a direct `dse.simulate` call gives in that mode, the knee is recomputed from them,
and the summary shows the table with its note."""

from __future__ import annotations

import dataclasses
import math

import pytest

from studies import bandwidth_area_sweep, pipeline

SMALL = {"model": "resnet20", "cores": (4,), "bandwidth": (1.0, math.inf), "sram_kib": (128.0,),
         "batch": 2}
"""One design, two bandwidths: at 1 GB/s ResNet-20's weights hold up its layers, so prefetch and
tile fidelity move the images/s and the four mode columns differ."""


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep")
    return out, bandwidth_area_sweep.run(out=out, **SMALL)


def _direct_images_per_s(mode: str, dram_gbps: float) -> float:
    """images/s of the sweep's 4-core design from `dse.simulate` in ``mode``, built here from the
    preset (`cores` given: the preset's design with 4 cores of 128 KiB)."""
    from arch import presets
    from dse import simulate

    wl = pipeline.workload_for("resnet20", "pact_sawb", w_bits=2, a_bits=2)
    acc = dataclasses.replace(presets.sysml19((2, 2), dram_gbps, high_precision="configurable"),
                              cores=4, sram_kib=128.0)
    return SMALL["batch"] / simulate(wl, acc, batch=SMALL["batch"],
                                     **pipeline.sim_options(mode)).latency_s


def test_table_cells_are_direct_simulations_in_each_mode(sweep):
    _, df = sweep
    table = bandwidth_area_sweep.by_fidelity(df).set_index("quantity")
    assert list(table.columns) == ["design", *pipeline.SIM_MODES]
    assert list(table.index) == ["images/s at 1 GB/s", "images/s at unlimited",
                                 "compute_bound_gbps"]
    for mode in pipeline.SIM_MODES:
        assert table.at["images/s at 1 GB/s", mode] == pytest.approx(
            _direct_images_per_s(mode, 1.0), rel=1e-9), mode
    # the headline column is the sweep's own images/s
    head = df.sort_values("dram_gbps")["images_per_s"].to_numpy()
    assert table.loc[["images/s at 1 GB/s", "images/s at unlimited"],
                     pipeline.HEADLINE_MODE].to_numpy() == pytest.approx(head, rel=1e-12)
    # here the modes differ, so a column mixed up with another would fail above
    assert table.at["images/s at 1 GB/s", "layer"] < 0.95 * table.at[
        "images/s at 1 GB/s", "layer+prefetch"]
    assert table.at["images/s at 1 GB/s", "tile"] != table.at["images/s at 1 GB/s", "layer"]


def test_knee_per_mode_is_each_modes_own_5_percent_point(sweep):
    _, df = sweep
    table = bandwidth_area_sweep.by_fidelity(df, tolerance=0.05).set_index("quantity")
    for mode in pipeline.SIM_MODES:
        low, best = (table.at[f"images/s at {b}", mode] for b in ("1 GB/s", "unlimited"))
        expected = 1.0 if low >= 0.95 * max(low, best) else math.inf
        assert table.at["compute_bound_gbps", mode] == expected, mode
    # without prefetch the 1 GB/s point falls out of the tolerance: the knee moves to unlimited
    assert table.at["compute_bound_gbps", "layer"] == math.inf
    assert table.at["compute_bound_gbps", "layer+prefetch"] == 1.0


def test_summary_shows_the_table_and_why_it_moved(sweep):
    out, df = sweep
    text = (out / "summary.md").read_text()
    assert "## throughput_by_fidelity" in text
    assert "| design | quantity | layer+prefetch | layer | tile+prefetch | tile |" in text
    assert "**Simulator fidelity** (`throughput_by_fidelity`" in text
    assert "**Why it moved here.**" in text
    staged = df["weights_staged_bytes"].iloc[0] / 2**20
    assert f"{staged:.1f} MiB staged" in text
    assert (out / "throughput_by_fidelity.csv").exists()


def test_weights_staged_are_the_prefetched_layers_weights(sweep):
    """Staged bytes = the weights of the layers the headline marks prefetched, each at its
    w_bits (read from the workload graph, not the simulator's DRAM counters)."""
    from arch import presets
    from dse import simulate

    _, df = sweep
    wl = pipeline.workload_for("resnet20", "pact_sawb", w_bits=2, a_bits=2)
    acc = dataclasses.replace(presets.sysml19((2, 2), 1.0, high_precision="configurable"),
                              cores=4, sram_kib=128.0)
    layers = simulate(wl, acc, batch=SMALL["batch"]).layers
    names = layers.loc[layers["weights_prefetched"].astype(bool), "name"]
    expected = sum(wl[n].weight_bytes for n in names)
    row = df[df["dram_gbps"] == 1.0].iloc[0]
    assert 0 < expected < wl.weight_bytes
    assert row["weights_staged_bytes"] == expected


def test_headline_mode_only_gives_no_table(tmp_path):
    df = bandwidth_area_sweep.run(out=tmp_path, **{**SMALL, "bandwidth": (4.0,)},
                                  modes=(pipeline.HEADLINE_MODE,))
    assert not any(c.startswith("latency_s@") for c in df.columns)
    assert bandwidth_area_sweep.by_fidelity(df) is None
    assert "throughput_by_fidelity" not in (tmp_path / "summary.md").read_text()


def test_bad_mode_names_the_field():
    with pytest.raises(ValueError, match="modes='tile\\+magic'"):
        bandwidth_area_sweep.grid({**bandwidth_area_sweep.PARAMS, "modes": ("tile+magic",)})
