"""Which tasks a fine-tuned model has seen, so that no evaluation scores it on them.

Rules, in order:

1. ``ablbench sft`` records the sorted names of every task whose trajectories it read (training
   and validation alike) in ``merged/ablbench_sft.json`` and in merged.gguf's ``sft.provenance``
   (its ``tasks`` entry). Both travel with later edits: a bake copies an HF folder's side files
   and keeps a GGUF's header keys, so an abliterated SFT model still names them.
2. ``seen_tasks(model)`` reads them back from an HF folder or a GGUF file; None when the model
   did not come from ``ablbench sft`` (or came from one that predates the record).
3. ``check_unseen(arm, model, evaluated)`` raises :class:`SftError` when they meet the task names
   about to be evaluated, naming the overlap and the fix.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from sft.errors import SftError

SIDE_FILE = "ablbench_sft.json"


def write_side_file(merged: Path, fingerprint: str, tasks: Iterable[str]) -> Path:
    """Rule 1, the HF side: ``merged/ablbench_sft.json``."""
    from ablbench.atomic import write_json_atomic

    path = Path(merged) / SIDE_FILE
    write_json_atomic(path, {"tool": "ablbench sft", "fingerprint": fingerprint, "tasks": sorted(set(tasks))})
    return path


def seen_tasks(model: Path) -> list[str] | None:
    """Rule 2: the tasks an ``ablbench sft`` model was trained or validated on, else None."""
    model = Path(model)
    if model.is_dir():
        side = model / SIDE_FILE
        return list(json.loads(side.read_text()).get("tasks") or []) if side.is_file() else None
    from runners.gguf_info import GGUFError, has_gguf_magic, read_facts

    if not has_gguf_magic(model):
        return None
    try:
        raw = read_facts(model).sft.get("sft.provenance")
    except GGUFError:
        return None
    tasks = json.loads(raw).get("tasks") if isinstance(raw, str) else None
    return list(tasks) if tasks is not None else None


def check_unseen(arm: str, model: Path, evaluated: Iterable[str]) -> None:
    """Rule 3: refuse to evaluate ``model`` on tasks its fine-tuning saw."""
    seen = set(seen_tasks(model) or ())
    both = sorted(seen & set(evaluated))
    if both:
        shown = ", ".join(both[:5]) + (f" and {len(both) - 5} more" if len(both) > 5 else "")
        raise SftError(f"model {arm}={model} was fine-tuned on {len(both)} of the tasks to evaluate ({shown}): "
                       "evaluate it on other tasks (--exclude them) or fine-tune it on trajectories of other tasks")
