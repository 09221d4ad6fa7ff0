"""Static arc graph of a playbook: reachability, back-edges and forward upstreams (dsl §4.6)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import cached_property

__all__ = ["Graph"]


class Graph:
    """Precomputed reachability over `next` arcs; built once per playbook."""

    def __init__(self, arcs: Mapping[str, list[str]]) -> None:
        self.arcs = {k: [t for t in v if t in arcs] for k, v in arcs.items()}

    @cached_property
    def reach(self) -> dict[str, frozenset[str]]:
        """Steps reachable from each step by one or more arcs."""
        out: dict[str, frozenset[str]] = {}
        for start in self.arcs:
            seen: set[str] = set()
            stack = list(self.arcs[start])
            while stack:
                n = stack.pop()
                if n in seen:
                    continue
                seen.add(n)
                stack.extend(self.arcs.get(n, ()))
            out[start] = frozenset(seen)
        return out

    def reachable_from(self, sources: Iterable[str]) -> set[str]:
        """Union of the sources and everything reachable from them."""
        out: set[str] = set()
        for s in sources:
            if s in self.reach:
                out.add(s)
                out |= self.reach[s]
        return out

    def is_back_edge(self, src: str, dst: str) -> bool:
        """U→T is a back-edge when U == T or U is reachable from T."""
        return src == dst or src in self.reach.get(dst, frozenset())

    @cached_property
    def incoming(self) -> dict[str, tuple[str, ...]]:
        """Forward upstreams of each step (back-edge sources removed)."""
        inc: dict[str, list[str]] = {k: [] for k in self.arcs}
        for src, targets in self.arcs.items():
            for t in targets:
                if not self.is_back_edge(src, t) and src not in inc[t]:
                    inc[t].append(src)
        return {k: tuple(v) for k, v in inc.items()}

    def is_loop_branch_point(self, step: str) -> bool:
        """S has an arc to a step from which S is reachable again."""
        return any(step == t or step in self.reach.get(t, frozenset()) for t in self.arcs.get(step, ()))
