"""`CorePool`: the cores of the accelerator as a SimPy resource.

`CorePool` hands out cores (lowest free ids first) to layers; a layer waits in FIFO order until
enough cores are free (`simpy.Container` semantics: head-of-line, deterministic).
"""

from __future__ import annotations

import simpy

__all__ = ["CoreGrant", "CorePool"]


class CoreGrant:
    """A pending or granted claim on ``n`` cores; a context manager like `simpy.Resource`'s
    requests: ``with pool.request(n) as grant: yield grant.event; ... grant.ids ...`` - the cores
    go back (or the pending claim is withdrawn) when the block exits, never by hand."""

    def __init__(self, pool: CorePool, n: int) -> None:
        self.pool = pool
        self.n = n
        self.ids: tuple[int, ...] = ()
        self.event = pool._tokens.get(n)
        # runs before the waiting process resumes: the callback list is in registration order
        self.event.callbacks.append(self._assign)

    def _assign(self, _ev: simpy.Event) -> None:
        self.ids = self.pool._take(self.n)

    def __enter__(self) -> CoreGrant:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.ids:
            self.pool._give(self.ids)
            self.ids = ()
        elif not self.event.triggered:
            self.event.cancel()


class CorePool:
    """``cores`` identical cores (ids ``first_id`` on: a core group's) handed out lowest free ids
    first, in FIFO order of the claims (`simpy.Container` semantics: head-of-line,
    deterministic)."""

    def __init__(self, env: simpy.Environment, cores: int, first_id: int = 0) -> None:
        self.env = env
        self._tokens = simpy.Container(env, capacity=cores, init=cores)
        self._free = list(range(first_id, first_id + cores))

    def request(self, n: int) -> CoreGrant:
        """Claim ``n`` cores (use as a context manager)."""
        return CoreGrant(self, n)

    def _take(self, n: int) -> tuple[int, ...]:
        self._free.sort()
        ids, self._free = self._free[:n], self._free[n:]
        return tuple(ids)

    def _give(self, ids: tuple[int, ...]) -> None:
        self._free.extend(ids)
        self._tokens.put(len(ids))
