"""A tiny study for the runner's tests: cheap pure points, no simulator (the protocol's oracle)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd

from dse.study.report import Plot, Summary, Target
from dse.study.runner import Context, expand_grid
from dse.study.runner import run as _run

NAME = "fake_study"
TITLE = "runner test study: value = x**2 * scale"
PARAMS: dict[str, Any] = {"xs": (1, 2, 3), "kinds": ("a", "b"), "scale": 1.0}


def grid(params: dict[str, Any]) -> list[dict[str, Any]]:
    if params["scale"] <= 0:
        raise ValueError(f"scale={params['scale']!r} is not allowed; expected > 0")
    return expand_grid({"x": params["xs"], "kind": params["kinds"]}, scale=float(params["scale"]))


def prepare(points: list[dict[str, Any]], ctx: Context) -> None:
    if ctx.cache_dir is not None:  # record which points the parent prepared
        ctx.cache_dir.mkdir(parents=True, exist_ok=True)
        with open(Path(ctx.cache_dir) / "prepared.log", "a") as f:
            f.write(" ".join(f"{p['x']}{p['kind']}" for p in points) + "\n")


def evaluate(point: dict[str, Any], ctx: Context) -> list[dict[str, Any]]:
    if os.environ.get("FAKE_STUDY_FAIL_AT") == f"{point['x']}{point['kind']}":
        raise RuntimeError("interrupted on purpose")
    if ctx.cache_dir is not None:  # count evaluations across processes
        ctx.cache_dir.mkdir(parents=True, exist_ok=True)
        with open(Path(ctx.cache_dir) / "calls.log", "a") as f:
            f.write(f"{point['x']}{point['kind']}\n")
    v = point["x"] ** 2 * point["scale"]
    return [{"value": v, "sub": 0}, {"value": -v, "sub": 1}]


def derive(results: pd.DataFrame, params: dict[str, Any]) -> pd.DataFrame:
    return results.assign(value_share=results["value"].abs() / results["value"].abs().sum())


def summarize(results: pd.DataFrame, params: dict[str, Any]) -> Summary:
    main = results[results["sub"] == 0]
    total = float(main["value"].sum())
    return Summary(
        title="Fake study",
        intro="A tiny study.",
        targets=(Target("sum of x^2 (both kinds)", total, 27.0, 29.0, paper="28",
                        source="algebra"),),
        tables={"totals": main.groupby("kind", as_index=False)["value"].sum()},
        plots=(Plot("value.png", "value over x", main, x="x", y="value", hue="kind"),),
        notes="Nothing to explain.",
    )


def run(**kw: Any) -> pd.DataFrame:
    import sys

    return _run(sys.modules[__name__], **kw)
