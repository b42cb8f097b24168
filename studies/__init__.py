"""Studies: one module per experiment that reproduces a paper's hardware result.

A study is a plain module in this package (the protocol, documented in ``docs/studies.md``)::

    NAME: str                      # == the module name, what `python -m dse.study NAME` takes
    TITLE: str                     # one line for `--list` and the report heading
    PARAMS: dict[str, object]      # parameters and their defaults (CLI / run() overridable)
    def grid(params) -> list[dict] # validate params, return the design points (flat dicts)
    def evaluate(point, ctx) -> list[dict]   # rows for one design point; pure, picklable by name
    def summarize(results, params) -> dse.study.report.Summary  # tables, plots, paper targets
    def run(**kw) -> pandas.DataFrame        # = dse.study.runner.run(<this module>, **kw)

Data, not logic: a study declares its grid and its paper targets; `dse.study.runner` executes points
(progress, cache, processes, atomic writes) and `dse.study.report` renders what `summarize` returns.
Importing a study module must stay cheap (no torch at import time): `--list` imports them all.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

__all__ = ["REQUIRED", "check", "get", "names"]

REQUIRED = ("NAME", "TITLE", "PARAMS", "grid", "evaluate", "summarize", "run")
"""Attributes every study module defines (see the module docstring)."""

_HELPERS = frozenset({"pipeline"})


def names() -> list[str]:
    """Names of the study modules in this package, sorted (helpers such as `pipeline` excluded)."""
    out = []
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_") or info.name in _HELPERS:
            continue
        out.append(info.name)
    return sorted(out)


def check(module: ModuleType) -> ModuleType:
    """Return ``module`` if it follows the study protocol, else raise ValueError listing gaps."""
    missing = [a for a in REQUIRED if not hasattr(module, a)]
    problems = [f"missing {', '.join(missing)}"] if missing else []
    if not missing:
        if not isinstance(module.PARAMS, dict):
            problems.append(f"PARAMS={type(module.PARAMS).__name__} must be a dict")
        problems += [f"{a} is not callable" for a in ("grid", "evaluate", "summarize", "run")
                     if not callable(getattr(module, a))]
    if problems:
        raise ValueError(f"study module {module.__name__!r} does not follow the study protocol "
                         f"(see docs/studies.md): {'; '.join(problems)}")
    return module


def get(name: str) -> ModuleType:
    """The study module called ``name``; ValueError naming the available ones if unknown."""
    available = names()
    if not isinstance(name, str) or name not in available:
        raise ValueError(f"unknown study {name!r}; available: {', '.join(available)}")
    return check(importlib.import_module(f"studies.{name}"))
