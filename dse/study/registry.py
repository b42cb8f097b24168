"""Where the runner finds studies by name, without `dse` importing the packages that hold them.

Studies sit downstream of `dse` (they use the simulator and the runner), so `dse` never imports
them in code; ``python -m dse.study NAME`` looks the name up here, at run time, in the study
packages: ``studies`` (this project's paper studies) plus any named in the environment variable
``QDSE_STUDY_PACKAGES`` (comma-separated importable packages: a user's own studies). A study
package offers ``names() -> list[str]`` and ``get(name) -> module`` (as `studies` does); a package
without them is scanned for modules that define the study protocol's ``NAME``.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from types import ModuleType

__all__ = ["DEFAULT_PACKAGES", "ENV_PACKAGES", "get", "names", "packages"]

DEFAULT_PACKAGES = ("studies",)
ENV_PACKAGES = "QDSE_STUDY_PACKAGES"


def packages() -> tuple[str, ...]:
    """The study packages searched, in order: the defaults, then ``$QDSE_STUDY_PACKAGES``."""
    extra = [p.strip() for p in os.environ.get(ENV_PACKAGES, "").split(",") if p.strip()]
    return tuple(dict.fromkeys([*DEFAULT_PACKAGES, *extra]))


def _package(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError as e:
        raise ValueError(f"study package {name!r} cannot be imported ({e}); check "
                         f"${ENV_PACKAGES}") from None


def _names_in(pkg: ModuleType) -> list[str]:
    """The studies of one package: its ``names()``, else its public modules that define
    ``NAME`` (a helper module beside them is no study: listing it made ``--list`` fail on it)."""
    if callable(getattr(pkg, "names", None)):
        return list(pkg.names())
    out = []
    for m in sorted(pkgutil.iter_modules(getattr(pkg, "__path__", [])), key=lambda m: m.name):
        if m.name.startswith("_"):
            continue
        try:
            module = importlib.import_module(f"{pkg.__name__}.{m.name}")
        except ImportError as e:
            raise ValueError(f"study package {pkg.__name__!r}: module {m.name!r} cannot be "
                             f"imported ({e}); check ${ENV_PACKAGES}") from None
        if hasattr(module, "NAME"):
            out.append(m.name)
    return out


def names() -> list[str]:
    """Every study name the packages offer, in package order (the first package wins a name)."""
    out: dict[str, None] = {}
    for p in packages():
        out.update(dict.fromkeys(_names_in(_package(p))))
    return list(out)


def get(name: str) -> ModuleType:
    """The study module called ``name``; ValueError listing the studies if none is."""
    for p in packages():
        pkg = _package(p)
        if name not in _names_in(pkg):
            continue
        if callable(getattr(pkg, "get", None)):
            module: ModuleType = pkg.get(name)
            return module
        module = importlib.import_module(f"{p}.{name}")
        if not hasattr(module, "NAME"):
            break
        return module
    raise ValueError(f"unknown study {name!r}; available: {', '.join(names())}")
