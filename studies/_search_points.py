"""The design points of `studies.wrpn_vs_pact_search` (not a study itself): the hardware space of
a point, its best searched design as a results row, that design re-simulated in each fidelity
mode, the enumerated uniform-bits baseline and the data-free accuracy proxy. Part of the study's
cache key (its ``CODE``): a change here recomputes its points."""

from __future__ import annotations

import json
import math
from typing import Any

from dse.study.runner import Context
from studies import pipeline

__all__ = ["accuracy_proxy", "best_design_row", "hardware_space", "mode_rates",
           "uniform_baseline"]


def hardware_space(point: dict[str, Any], mac: tuple[tuple[int, int], ...], **kw: Any) -> Any:
    """The hardware space of ``point``: its MAC choices under its formulation."""
    from dse.search.space import SearchSpace

    if point["formulation"] == "fixed_total_sram":
        return SearchSpace(mac_bits=mac, formulation="fixed_total_sram",
                           total_sram_kib=float(point["total_sram_kib"]), **kw)
    return SearchSpace(mac_bits=mac, sram_kib=tuple(float(s) for s in point["sram_kib"]), **kw)


def best_design_row(study: Any, point: dict[str, Any], label: str, space: Any, wl: Any,
                    schedule: str | None = None, min_groups: int = 1) -> dict[str, Any]:
    """The study's best feasible design (of one ``schedule`` on at least ``min_groups`` core
    groups, when given) as a results row."""
    from dse.search import trials_frame
    from dse.search.coverage import design_count, distinct_evaluated, edge_notes

    df = trials_frame(study)
    done = df[(df["state"] == "COMPLETE") & df["feasible"].astype("boolean").fillna(False)]
    if schedule is not None:
        done = done[(done["schedule"] == schedule) & (done["groups"] >= min_groups)]
    row: dict[str, Any] = {
        "kind": point["kind"], "scheme": point["scheme"], "design": label,
        "formulation": point["formulation"], "dram_gbps": point["dram_gbps"],
        "sampler": str(study.user_attrs.get("qdse.sampler", "")), "trials": len(df),
        "complete": int((df["state"] == "COMPLETE").sum()),
        "pruned": int((df["state"] == "PRUNED").sum()), "feasible": len(done),
        "distinct_designs": distinct_evaluated(study),
        "space_designs": design_count(space, wl)}
    if done.empty:
        return row
    best = done.loc[done["images_per_s"].idxmax()]
    for k in ("images_per_s", "energy_j", "latency_s", "utilization", "dram_bytes", "area",
              "area_budget",
              "cores", "rows", "cols", "mac_bits", "sram_kib", "schedule", "groups",
              "micro_batch",
              "accuracy_proxy", "accuracy_model", "min_accuracy"):
        v = best.get(k)
        row[k] = v.item() if hasattr(v, "item") else v
    t = study.trials[int(best["number"])]
    row["trial"] = int(best["number"])
    # how decisive the choice is: the fastest design of another MAC precision
    others = done[done["mac_bits"] != best["mac_bits"]]
    if len(others):
        second = others.loc[others["images_per_s"].idxmax()]
        row["runner_up"] = f"{second['mac_bits']} x {int(second['cores'])}"
        row["margin_pct"] = 100.0 * (float(best["images_per_s"])
                                     / float(second["images_per_s"]) - 1.0)
    row["sram_total_kib"] = float(row["sram_kib"]) * int(row["cores"])
    row["edges"] = "; ".join(edge_notes(space, t.params))
    row["layer_bits"] = json.dumps({k: v for k, v in t.params.items() if k[:2] in ("w:", "a:")})
    return row


def mode_rates(study: Any, row: dict[str, Any], space: Any, wl: Any,
                point: dict[str, Any]) -> dict[str, float]:
    """``images_per_s@MODE`` of the search's best design re-simulated in each of the point's
    ``modes``: the design the search chose at the headline mode, not each mode's own best (the
    search is not re-run per mode). The headline mode's rate must equal the search's."""
    modes = tuple(point.get("modes", ()))
    if not modes or "trial" not in row:
        return {}
    import optuna

    from dse.search.space import apply_layer_bits
    from dse.sim import simulate

    design = space.suggest(optuna.trial.FixedTrial(study.trials[row["trial"]].params), wl,
                           area_budget=float(row["area_budget"]),
                           dram_gbps=float(point["dram_gbps"]))
    if design is None:
        raise RuntimeError(f"trial {row['trial']}'s design no longer fits its area budget")
    layered = apply_layer_bits(wl, design.layer_bits)
    out = {f"images_per_s@{m}": float(simulate(layered, design.accelerator, batch=1,
                                               **design.simulate_kwargs(),
                                               **pipeline.sim_options(m)).images_per_s)
           for m in modes}
    head = out.get(f"images_per_s@{pipeline.HEADLINE_MODE}")
    if head is not None and not math.isclose(head, float(row["images_per_s"]), rel_tol=1e-9):
        raise RuntimeError(f"trial {row['trial']} re-simulates to {head} images/s at "
                           f"{pipeline.HEADLINE_MODE}, the search recorded {row['images_per_s']}")
    return out


def uniform_baseline(point: dict[str, Any], wl: Any, mac: tuple[tuple[int, int], ...],
                     proxy: Any) -> dict[str, Any]:
    """The fastest design of the point's hardware space with the recipe's uniform bits: every
    design enumerated (grid sampler, each once)."""
    from dse.search import run as search
    from dse.search.coverage import design_count

    space = hardware_space(point, mac, layer_bits="recipe")
    study = search(space, ["images_per_s"], workload=wl, seed=int(point["seed"]),
                   dram_gbps=float(point["dram_gbps"]), n_trials=design_count(space, wl),
                   sampler="grid", accuracy=proxy,
                   simulate_options=pipeline.sim_options(pipeline.HEADLINE_MODE))
    return best_design_row(study, point, "uniform", space, wl)


def accuracy_proxy(point: dict[str, Any], wl: Any, ctx: Context) -> Any:
    """Data-free proxy of the zoo model (seeded init weights), cached as JSON in ctx.cache_dir."""
    from dse.search.accuracy import ProxyAccuracy

    path = (ctx.cache_dir / "search" / f"proxy-{point['model']}-{wl.name}.json"
            if ctx.cache_dir else None)
    if path is not None and path.exists():
        return ProxyAccuracy.from_dict(json.loads(path.read_text()))
    import torch

    from workloads import zoo

    torch.manual_seed(int(point["seed"]))
    model = zoo.get(point["model"])
    modules = {la.name: la.module for la in wl.compute_layers()}
    proxy = ProxyAccuracy.from_model(model, modules, tuple(zoo.input_shape(point["model"])),
                                     sensitivity="noise_gain", seed=int(point["seed"]))
    if path is not None:
        from dse.study.report import atomic_write_text

        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(proxy.to_dict()))
    return proxy
