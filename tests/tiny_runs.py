"""A tiny abliteration run folder (contrast, activations, direction stacks) on a tiny random model.

Built with the real library steps on a model from tests/tiny_models.py, in a second or two, so
search, control and report tests do not need the bundled SmolLM2.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

from tiny_models import build_tiny

_BUILT: dict[tuple[str, int], Path] = {}

#: the comply bucket's system prompt (a stand-in for the agent's, short enough for the tiny context)
AGENT_SYSTEM = "You are an AI agent operating a Linux terminal. Reply with one JSON object."


def with_system(prompt: str) -> list[dict]:
    """Messages with the stand-in agent system prompt."""
    return [{"role": "system", "content": AGENT_SYSTEM}, {"role": "user", "content": prompt}]


def build_tiny_run(root: Path, family: str = "llama", n_prompts: int = 12) -> tuple[Path, Path]:
    """(model folder, run folder) under ``root``: shell prompts without / with a system prompt.

    Built once per session and family, then copied (each caller may write into its copy).
    """
    key = (family, n_prompts)
    if key not in _BUILT:
        folder = Path(tempfile.mkdtemp(prefix="tiny-run-"))
        atexit.register(shutil.rmtree, folder, True)
        _BUILT[key] = _build(folder, family, n_prompts)
    shutil.copytree(_BUILT[key], root, dirs_exist_ok=True)
    return Path(root) / "model", Path(root) / "run"


def _build(root: Path, family: str, n_prompts: int) -> Path:
    from abliterate.capture import capture
    from abliterate.contrast import build_contrast, plain_user, write_contrast
    from abliterate.directions import write_directions
    from abliterate.model import load_model
    from abliterate.prompts import builtin_prompts

    model = build_tiny(family, Path(root) / "model")
    run = Path(root) / "run"
    lm = load_model(model, device="cpu", dtype="float32")
    items = builtin_prompts()[:n_prompts]
    refuse, comply = build_contrast(lm.tokenizer, refuse_items=items, comply_items=items,
                                    refuse_messages=plain_user, comply_messages=with_system, eval_fraction=0.5)
    write_contrast(run, refuse, comply)
    capture(lm, refuse, comply, run / "activations", show_progress=False)
    write_directions(run / "activations", run / "vectors")
    return root
