"""The workload of a search: extracted from a zoo model once (the only torch step), loaded
everywhere else without torch.

`prepare_workload` quantizes and extracts the model and caches the workload and its accuracy
proxy as JSON in the output folder; workers read the workload from the study (`Problem`) through
`workloads.graph.Workload` (``import workloads`` is torch-free: its torch-dependent names load on
first use).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workloads.graph import Workload

if TYPE_CHECKING:
    from dse.search.accuracy import AccuracyModel

__all__ = ["prepare_workload"]

# one logger for the package: records read "dse.search: ..." whichever module logs them
log = logging.getLogger("dse.search")


def prepare_workload(model: str, recipe: str, out: Path, *, w_bits: int, a_bits: int,
                     batch: int = 1, sensitivity: str = "noise_gain", seed: int = 0
                     ) -> tuple[Workload, AccuracyModel]:
    """Extract ``model`` quantized by ``recipe`` once and cache it (and the proxy) as JSON in out.

    This is the only step that imports torch; workers load ``workload.json`` and the proxy table.
    """
    from dse.search.accuracy import ProxyAccuracy

    source = {"model": model, "recipe": recipe, "w_bits": w_bits, "a_bits": a_bits,
              "batch": batch, "sensitivity": sensitivity, "seed": seed}
    wl_path, acc_path, src_path = out / "workload.json", out / "accuracy.json", out / "source.json"
    cached = _load_cached(source, src_path, wl_path, acc_path)
    if cached is not None:
        return cached
    import torch

    import quant
    from workloads import extract, zoo

    if model not in zoo.names():
        raise ValueError(f"model={model!r} is not allowed; expected one of "
                         f"{', '.join(zoo.names())}")
    if recipe not in quant.recipes():
        raise ValueError(f"recipe={recipe!r} is not allowed; expected one of "
                         f"{', '.join(quant.recipes())}")
    torch.manual_seed(seed)  # the proxy reads the (initial) weights: make them reproducible
    float_model = zoo.get(model, width=quant.get_recipe(recipe).procedure.width)  # WRPN: 2x
    shape = tuple(zoo.input_shape(model))
    qmodel = float_model if recipe == "fp32" else quant.quantize(
        float_model, recipe, w_bits=w_bits, a_bits=a_bits)
    wl = extract(qmodel, input_shape=shape, batch=batch, default_bits=16, name=model)
    modules = {la.name: la.module for la in wl.compute_layers()}
    proxy = ProxyAccuracy.from_model(float_model, modules, shape, sensitivity=sensitivity,
                                     seed=seed)
    from dse.study.atomic import atomic_write_text

    wl.save(wl_path)
    atomic_write_text(acc_path, json.dumps(proxy.to_dict()))
    atomic_write_text(src_path, json.dumps(source))  # written last: it vouches for the two before
    return wl, proxy


def _load_cached(source: dict[str, Any], src_path: Path, wl_path: Path, acc_path: Path
                 ) -> tuple[Workload, AccuracyModel] | None:
    """The cached workload and proxy when ``source.json`` matches ``source``; None when absent or
    of another source; None with a warning when a file is unreadable (truncated by a crash or a
    full disk, edited): the caller extracts again, as a study re-traces a corrupt cache entry."""
    from dse.search.accuracy import ProxyAccuracy

    if not (src_path.exists() and wl_path.exists() and acc_path.exists()):
        return None
    path = src_path
    try:
        if json.loads(src_path.read_text()) != source:
            return None
        path = wl_path
        wl = Workload.load(wl_path)
        path = acc_path
        proxy = ProxyAccuracy.from_dict(json.loads(acc_path.read_text()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        log.warning("%s is unreadable (%s: %s); extracting the workload again", path,
                    type(e).__name__, " ".join(str(e).split())[:120])
        return None
    log.info("reusing the cached workload in %s", wl_path)
    return wl, proxy

