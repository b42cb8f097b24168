"""`Dram`: a shared memory channel (DRAM, or the link of a global buffer) as a SimPy actor.

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
"""

from __future__ import annotations

import math

import simpy

__all__ = ["OPERANDS", "CountingEnvironment", "Dram", "MemorySystem", "whole_bursts"]

OPERANDS = ("ifmap", "filter", "ofmap")
"""The three operand streams a core moves: inputs, weights and outputs."""


def whole_bursts(nbytes: float, weight: float, burst_bytes: int) -> float:
    """The bytes a DRAM moves for ``nbytes`` split over ``weight`` identical streams, each
    stream's request rounded up to whole ``burst_bytes`` bursts."""
    if nbytes <= 0 or burst_bytes <= 1:
        return max(0.0, nbytes)
    return weight * math.ceil(nbytes / weight / burst_bytes - 1e-9) * burst_bytes

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
        self._pending: list[_Transfer] = []  # waiting out their latency
        self._last = 0.0
        self._gen = 0
        self.bytes_moved = 0.0
        self.busy_s = 0.0
        self.busy_intervals: list[tuple[float, float]] = []
        self._busy_since = 0.0

    # -- public -----------------------------------------------------------------------------------
    def transfer(self, nbytes: float, weight: float = 1.0, *,
                 latency: bool = True) -> simpy.Event:
        """Move ``nbytes`` (the sum over the ``weight`` identical streams it stands for).
        ``latency=False``: the requests continue a stream already in flight (pipelined behind the
        previous transfer of the same engine), so no fresh latency is paid."""
        if nbytes < 0 or weight <= 0:
            raise ValueError(f"transfer of {nbytes} bytes with weight {weight} is not allowed")
        done = self.env.event()
        if nbytes == 0:
            done.succeed()
            return done
        self.bytes_moved += nbytes
        lat = self.latency_s if latency else 0.0
        if math.isinf(self.bytes_per_s):
            if lat > 0:
                return self.env.timeout(lat)
            done.succeed()
            return done
        tr = _Transfer(float(nbytes), float(weight), done)
        if lat > 0:
            self._pending.append(tr)
            self.env.timeout(lat).callbacks.append(lambda _ev: self._join(tr))
        else:
            self._join(tr)
        return done

    def promote(self, done: simpy.Event, weight: float) -> None:
        """Give the transfer that ``done`` belongs to the fair-share ``weight`` from now on (a
        low-priority prefetch that its layer now waits for becomes a demand stream)."""
        for tr in self._active:
            if tr.done is done:
                self._advance()
                tr.weight = weight
                self._reschedule()
                return
        for tr in self._pending:
            if tr.done is done:
                tr.weight = weight

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
        if tr in self._pending:
            self._pending.remove(tr)
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


class MemorySystem:
    """Everything between the cores and DRAM: the DRAM channels and an optional global-buffer link.

    ``channels`` fair-share servers of ``bytes_per_s / channels`` each. With the ``interleaved``
    map every transfer spreads over all channels, which for a fluid server is one server of the
    summed bandwidth (so one `Dram` stands for them); with ``by_operand`` the ifmap, filter and
    ofmap streams use channel 0, 1, 2 (modulo the count). Every stream moves whole bursts: a
    transfer of ``weight`` streams is rounded up to ``weight * ceil(bytes / weight / burst)``
    bursts. A global buffer with a finite link rate (``gb_bytes_per_s``) is a second fair-share
    server every transfer also crosses (cut-through: it ends when both have moved its bytes).
    """

    def __init__(self, env: simpy.Environment, *, bytes_per_s: float, latency_s: float,
                 channels: int = 1, channel_map: str = "interleaved", burst_bytes: int = 1,
                 gb_bytes_per_s: float = math.inf) -> None:
        self.env = env
        per_operand = channel_map == "by_operand" and channels > 1
        n = channels if per_operand else 1
        share = bytes_per_s / channels if per_operand else bytes_per_s
        self.channels = [Dram(env, share, latency_s) for _ in range(n)]
        self._per_operand = per_operand
        self.burst_bytes = burst_bytes
        self.link = Dram(env, gb_bytes_per_s, 0.0) if math.isfinite(gb_bytes_per_s) else None
        self.bytes_by_operand = dict.fromkeys(OPERANDS, 0.0)
        self._parts: dict[simpy.Event, tuple[str, simpy.Event]] = {}
        self.counters: dict[str, list[tuple[float, float]]] = {}
        self._levels: dict[str, float] = {}

    def count(self, track: str, delta: float) -> None:
        """Step counter ``track`` by ``delta`` now (buffer occupancy, for the trace)."""
        level = self._levels.get(track, 0.0) + delta
        self._levels[track] = level
        steps = self.counters.setdefault(track, [])
        if steps and steps[-1][0] == self.env.now:
            steps[-1] = (self.env.now, level)
        else:
            steps.append((self.env.now, level))

    def bandwidth_track(self) -> list[tuple[float, float]]:
        """DRAM GB/s in use over time: the fluid channels run at full rate while busy."""
        deltas: list[tuple[float, float]] = []
        for ch in self.channels:
            for a, b in ch.busy_intervals:
                deltas += [(a, ch.bytes_per_s / 1e9), (b, -ch.bytes_per_s / 1e9)]
        out: list[tuple[float, float]] = []
        level = 0.0
        for t, d in sorted(deltas):
            level += d
            if out and out[-1][0] == t:
                out[-1] = (t, max(0.0, level))
            else:
                out.append((t, max(0.0, level)))
        return out

    def channel(self, operand: str) -> Dram:
        return self.channels[OPERANDS.index(operand) % len(self.channels)] \
            if self._per_operand else self.channels[0]

    def bursts(self, nbytes: float, weight: float) -> float:
        """``nbytes`` split over ``weight`` streams, each rounded up to whole bursts."""
        return whole_bursts(nbytes, weight, self.burst_bytes)

    def transfer(self, operand: str, nbytes: float, weight: float = 1.0, *,
                 latency: bool = True) -> simpy.Event:
        """Move ``nbytes`` of ``operand`` (summed over ``weight`` identical streams)."""
        # a stream's later pieces continue its bursts; only a request that starts one rounds up
        moved = self.bursts(nbytes, weight) if latency else max(0.0, nbytes)
        self.bytes_by_operand[operand] += moved
        ev = self.channel(operand).transfer(moved, weight, latency=latency)
        if self.link is None or moved <= 0:
            return ev
        both = simpy.AllOf(self.env, [ev, self.link.transfer(moved, weight)])
        self._parts[both] = (operand, ev)
        return both

    def promote(self, operand: str, done: simpy.Event, weight: float) -> None:
        """Raise the fair-share weight of the ``operand`` transfer that ``done`` signals."""
        if done in self._parts:
            _, ev = self._parts[done]
            self.channel(operand).promote(ev, weight)
            if self.link is not None:
                for part in getattr(done, "_events", ()):
                    self.link.promote(part, weight)
        else:
            self.channel(operand).promote(done, weight)

    def transfer_many(self, amounts: dict[str, float], weight: float = 1.0, *,
                      latency: bool = True) -> simpy.Event | None:
        """Move several operands' bytes at once; an event for all of them, None if nothing moves."""
        evs = [self.transfer(op, b, weight, latency=latency) for op, b in amounts.items() if b > 0]
        if not evs:
            return None
        return evs[0] if len(evs) == 1 else simpy.AllOf(self.env, evs)

    @property
    def busy_s(self) -> float:
        """Time with any channel busy (the busiest channel's busy time)."""
        return max(c.busy_s for c in self.channels)

    @property
    def busy_intervals(self) -> list[tuple[float, float]]:
        return sorted(iv for c in self.channels for iv in c.busy_intervals)

