"""Plain data read from any results format: one row per trial (task attempt)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

SOLVED_AT = 1.0 - 1e-9  # a trial counts as solved when its reward is (numerically) 1


@dataclass(frozen=True)
class Trial:
    """One attempt at one task. ``reward`` is 0 for errored trials (TB2 convention)."""

    task: str
    attempt: int
    reward: float
    outcome: str
    parse_fail: float | None = None
    no_cmd: float | None = None
    error: str = ""
    #: the trial's folder when the format has one (trajectories live there)
    trial_dir: Path | None = field(default=None, compare=False)
    #: the trial's master_summary.csv row as text, when it came from one
    columns: dict[str, str] | None = field(default=None, compare=False, hash=False)

    @property
    def solved(self) -> bool:
        return self.reward >= SOLVED_AT


@dataclass
class Run:
    """A named run: where it came from, its format and its trials."""

    name: str
    source: Path
    kind: str  # "results" | "csv" | "harbor" | "tb"
    trials: list[Trial] = field(default_factory=list)

    def tasks(self) -> set[str]:
        return {t.task for t in self.trials}

    def by_task(self) -> dict[str, list[Trial]]:
        """Trials grouped per task, each list ordered by attempt."""
        out: dict[str, list[Trial]] = defaultdict(list)
        for t in self.trials:
            out[t.task].append(t)
        return {k: sorted(v, key=lambda t: t.attempt) for k, v in out.items()}
