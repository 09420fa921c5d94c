"""Every region of the overlap of solved-task sets, empty regions included."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations


@dataclass(frozen=True)
class Region:
    """Tasks solved by exactly the runs in ``runs`` and by none of the others."""

    runs: tuple[str, ...]
    tasks: tuple[str, ...]

    def label(self, all_runs: Sequence[str]) -> str:
        """Human label: "abl only", "abl ∩ base", or "all of abl ∩ base ∩ sft"."""
        if len(self.runs) == 1 and len(all_runs) > 1:
            return f"{self.runs[0]} only"
        return " ∩ ".join(self.runs)


def regions(solved: Mapping[str, set[str]], order: Sequence[str] | None = None) -> list[Region]:
    """All 2^k - 1 exclusive regions, ordered by number of runs then by run order.

    ``solved`` maps run name to its set of solved tasks.
    """
    names = list(order) if order is not None else list(solved)
    everything = set().union(*solved.values()) if solved else set()
    out: list[Region] = []
    for size in range(1, len(names) + 1):
        for combo in combinations(names, size):
            inside = set(everything)
            for name in names:
                inside = inside & solved[name] if name in combo else inside - solved[name]
            out.append(Region(combo, tuple(sorted(inside))))
    return out


def unsolved_by_all(solved: Mapping[str, set[str]], tasks: set[str]) -> list[str]:
    """Tasks no run solved (the complement of every region)."""
    return sorted(tasks - set().union(*solved.values())) if solved else sorted(tasks)
