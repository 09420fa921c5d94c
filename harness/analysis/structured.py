"""Whether runs used schema-constrained actions (``ablbench run --structured``), and the pairing rule.

Rules, in order:

1. An ablbench results folder says it in ``run.json``: the ``structured`` key, else a
   ``response_format`` in the agent settings; a run.json with neither predates the flag and
   was free-form. Other formats (harbor, tb, a bare CSV) are unknown (None).
2. Constrained decoding changes what is measured (a parse failure becomes impossible), so
   runs that differ in it are not compared unless the caller allows it explicitly.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from ablbench.errors import AblbenchError
from harness.analysis.model import Run


def run_structured(run: Run) -> bool | None:
    """True/False from the run's run.json; None when the run has no run.json (unknown)."""
    folder = run.source if run.source.is_dir() else run.source.parent
    try:
        meta = json.loads((Path(folder) / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict):
        return None
    if "structured" in meta:
        return bool(meta["structured"])
    return bool((meta.get("agent") or {}).get("response_format"))


def check_structured_pairing(runs: Sequence[Run], allow_mixed: bool = False) -> list[str]:
    """Raise when known-structured and known-free-form runs are mixed (unless ``allow_mixed``).

    Returns warning lines: the mix when allowed, and runs whose mode is unknown.
    """
    modes = {run.name: run_structured(run) for run in runs}
    on = [n for n, m in modes.items() if m is True]
    off = [n for n, m in modes.items() if m is False]
    notes = []
    if on and off:
        mix = f"structured: {', '.join(on)}; free-form: {', '.join(off)}"
        if not allow_mixed:
            raise AblbenchError(
                f"these runs differ in --structured ({mix}): constrained decoding changes what is measured -- "
                "rerun one arm the same way, or pass --allow-mixed-structured to compare them anyway"
            )
        notes.append(f"comparing runs that differ in --structured ({mix})")
    unknown = [n for n, m in modes.items() if m is None]
    if unknown and (on or off) and len(runs) > 1:
        notes.append(f"not known whether {', '.join(unknown)} used --structured (no run.json)")
    return notes
