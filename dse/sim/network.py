"""`Network`: the on-chip network between core groups (`arch.groups`) as SimPy resources.

Each link is a fair-share bandwidth server (`dse.sim.dram.Dram`: active transfers split its
bytes per second in proportion to their weights), so transfers contend on a link exactly as DRAM
streams contend on a channel. A ``bus`` is one link that every transfer crosses in one hop; a
``mesh`` has one link per direction between grid neighbours and XY routing (`arch.groups`). A
transfer first pays ``hops x noc_hop_cycles`` (cut-through: the head's router delay), then moves
its bytes on every link of its route at once and ends when the slowest link has moved them (the
same cut-through approximation as the global-buffer link in `dse.sim.dram.MemorySystem`).
With multicast a tensor several groups read is injected once and crosses each link of the union
of its routes once; without it, once per destination.

Counted: ``bytes_sent`` (bytes injected, each once), ``byte_hops`` (bytes x links crossed, for
energy) and the links' busy intervals (for the trace).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import simpy

from arch.groups import noc_route
from dse.sim.dram import Dram

__all__ = ["Network"]


class Network:
    """The network of ``topology`` ("bus" | "mesh") joining ``groups`` core groups."""

    def __init__(self, env: simpy.Environment, *, topology: str, groups: int,
                 bytes_per_s: float, hop_s: float, multicast: bool) -> None:
        if topology not in ("bus", "mesh"):
            raise ValueError(f"noc={topology!r} is not allowed here; expected bus or mesh")
        self.env = env
        self.topology = topology
        self.groups = groups
        self.bytes_per_s = bytes_per_s
        self.hop_s = hop_s
        self.multicast = multicast
        self.links: dict[tuple[int, int], Dram] = {}
        self.bytes_sent = 0.0
        self.byte_hops = 0.0

    def _link(self, key: tuple[int, int]) -> Dram:
        if key not in self.links:
            self.links[key] = Dram(self.env, self.bytes_per_s, 0.0)
        return self.links[key]

    def send(self, src: int, dsts: list[int], nbytes: float) -> simpy.Event:
        """Move ``nbytes`` from group ``src`` to every group in ``dsts``; an event for arrival."""
        if not dsts or nbytes <= 0:
            ev = self.env.event()
            ev.succeed()
            return ev
        return self.env.process(self._send(src, dsts, float(nbytes)))

    def _send(self, src: int, dsts: list[int],
              nbytes: float) -> Generator[simpy.Event, Any, None]:
        # one route per destination (a bus: its one link), one hop count: the longest route
        per_dst = [[(-1, -1)] if self.topology == "bus" else noc_route(src, d, self.groups)
                   for d in dsts]
        hops = max(len(p) for p in per_dst)
        paths = per_dst
        if self.multicast and len(per_dst) > 1:  # injected once, each link of the union once
            union: list[tuple[int, int]] = []
            for path in per_dst:
                union += [link for link in path if link not in union]
            paths = [union]
        self.bytes_sent += nbytes * len(paths)
        self.byte_hops += nbytes * sum(len(p) for p in paths)
        if hops and self.hop_s > 0:
            yield self.env.timeout(hops * self.hop_s)
        moves = [self._link(link).transfer(nbytes, latency=False) for p in paths for link in p]
        if moves:
            yield simpy.AllOf(self.env, moves)

    @property
    def busy_intervals(self) -> list[tuple[float, float]]:
        """When any link was busy (merged)."""
        merged: list[tuple[float, float]] = []
        for a, b in sorted(iv for link in self.links.values() for iv in link.busy_intervals):
            if merged and a <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], b))
            else:
                merged.append((a, b))
        return merged
