"""SimPy hardware actors: the shared DRAM channel and the pool of cores.

`Dram` is a *fair-share* (processor-sharing) bandwidth server: at any instant the active transfers
split ``bytes_per_s`` in proportion to their weights, so n equal streams each progress at BW/n, and
a transfer that starts or ends re-divides the bandwidth at once. A transfer first waits the fixed
``latency_s`` (pipelined requests: one latency per transfer, not per byte or burst), then joins the
active set. This fluid model is exact for DMA engines that interleave fine-grained bursts
round-robin (the usual memory-controller arbitration), and costs two events per transfer instead of
one per burst.

Weights let one SimPy transfer stand for ``w`` identical cores moving the same number of bytes each:
by symmetry, w equal streams started together finish together, so a single transfer of ``w * bytes``
with weight ``w`` is exactly equivalent (`dse.sim.simulate` relies on this to keep events per layer
independent of the core count).

`CorePool` hands out cores (lowest free ids first) to layers; a layer waits in FIFO order until
enough cores are free (`simpy.Container` semantics: head-of-line, deterministic).
"""

from __future__ import annotations

import math

import simpy

__all__ = ["CoreGrant", "CorePool", "CountingEnvironment", "Dram"]

_EPS_S = 1e-18  # transfers whose remaining time is below this are complete (float round-off)


class CountingEnvironment(simpy.Environment):
    """A `simpy.Environment` that counts the events it processes (`SimResult.events`)."""

    def __init__(self, initial_time: float = 0.0) -> None:
        super().__init__(initial_time)
        self.events_processed = 0

    def step(self) -> None:
        self.events_processed += 1
        super().step()


class _Transfer:
    __slots__ = ("done", "remaining", "weight")

    def __init__(self, remaining: float, weight: float, done: simpy.Event) -> None:
        self.remaining = remaining
        self.weight = weight
        self.done = done


class Dram:
    """Shared external memory: fair-share bandwidth ``bytes_per_s`` (may be inf) and a fixed
    per-transfer ``latency_s``. `transfer` returns an event that fires when the bytes have moved.

    Also keeps ``bytes_moved`` (all transfers), ``busy_s`` (time with at least one transfer
    active; the fluid server then runs at full bandwidth) and ``busy_intervals`` (start, end).
    """

    def __init__(self, env: simpy.Environment, bytes_per_s: float, latency_s: float) -> None:
        if not bytes_per_s > 0:
            raise ValueError(f"dram bytes_per_s={bytes_per_s!r} is not allowed; expected > 0")
        if not (latency_s >= 0 and math.isfinite(latency_s)):
            raise ValueError(f"dram latency_s={latency_s!r} is not allowed; expected finite >= 0")
        self.env = env
        self.bytes_per_s = bytes_per_s
        self.latency_s = latency_s
        self._active: list[_Transfer] = []
        self._last = 0.0
        self._gen = 0
        self.bytes_moved = 0.0
        self.busy_s = 0.0
        self.busy_intervals: list[tuple[float, float]] = []
        self._busy_since = 0.0

    # -- public -----------------------------------------------------------------------------------
    def transfer(self, nbytes: float, weight: float = 1.0) -> simpy.Event:
        """Move ``nbytes`` (the sum over the ``weight`` identical streams it stands for)."""
        if nbytes < 0 or weight <= 0:
            raise ValueError(f"transfer of {nbytes} bytes with weight {weight} is not allowed")
        done = self.env.event()
        if nbytes == 0:
            done.succeed()
            return done
        self.bytes_moved += nbytes
        if math.isinf(self.bytes_per_s):
            if self.latency_s > 0:
                return self.env.timeout(self.latency_s)
            done.succeed()
            return done
        tr = _Transfer(float(nbytes), float(weight), done)
        if self.latency_s > 0:
            self.env.timeout(self.latency_s).callbacks.append(lambda _ev: self._join(tr))
        else:
            self._join(tr)
        return done

    # -- fluid bandwidth sharing ----------------------------------------------------------------
    def _advance(self) -> None:
        now = self.env.now
        dt = now - self._last
        if dt > 0 and self._active:
            total_w = sum(t.weight for t in self._active)
            rate = self.bytes_per_s / total_w
            for t in self._active:
                t.remaining -= rate * t.weight * dt
            self.busy_s += dt
        self._last = now

    def _join(self, tr: _Transfer) -> None:
        self._advance()
        if not self._active:
            self._busy_since = self.env.now
        self._active.append(tr)
        self._reschedule()

    def _reschedule(self) -> None:
        self._gen += 1
        if not self._active:
            return
        total_w = sum(t.weight for t in self._active)
        rate = self.bytes_per_s / total_w
        dt = min(t.remaining / (rate * t.weight) for t in self._active)
        gen = self._gen
        self.env.timeout(max(0.0, dt)).callbacks.append(lambda _ev: self._wake(gen))

    def _wake(self, gen: int) -> None:
        if gen != self._gen:
            return  # a transfer joined or left since this wake-up was planned
        self._advance()
        total_w = sum(t.weight for t in self._active)
        rate = self.bytes_per_s / total_w
        still: list[_Transfer] = []
        for t in self._active:
            if t.remaining / (rate * t.weight) <= _EPS_S + 1e-12 * self.env.now:
                t.done.succeed()
            else:
                still.append(t)
        self._active = still
        if not still:
            self.busy_intervals.append((self._busy_since, self.env.now))
        self._reschedule()


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
    """``cores`` identical cores handed out lowest free ids first, in FIFO order of the claims
    (`simpy.Container` semantics: head-of-line, deterministic)."""

    def __init__(self, env: simpy.Environment, cores: int) -> None:
        self.env = env
        self._tokens = simpy.Container(env, capacity=cores, init=cores)
        self._free = list(range(cores))

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
