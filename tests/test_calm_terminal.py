"""A calm terminal: library warnings land in the step's log file, generation shows live progress."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

from tiny_models import build_tiny

from abliterate.infer import generate
from abliterate.model import load_model
from abliterate.progress import warnings_to_file


def test_warnings_and_transformers_log_lines_go_to_the_file_not_the_screen(tmp_path: Path, capsys) -> None:
    log = tmp_path / "notes" / "capture.log"
    with warnings_to_file(log):
        warnings.warn("`past_key_values` is deprecated", FutureWarning, stacklevel=1)
        logging.getLogger("transformers.generation").warning("Setting pad_token_id to eos_token_id")
    with warnings.catch_warnings(record=True) as after:  # outside the block: normal handling again
        warnings.simplefilter("always")
        warnings.warn("after the block", UserWarning, stacklevel=1)
    assert [str(w.message) for w in after] == ["after the block"]
    text = log.read_text()
    assert "FutureWarning: `past_key_values` is deprecated" in text
    assert "Setting pad_token_id to eos_token_id" in text
    assert "after the block" not in text
    captured = capsys.readouterr()
    assert "past_key_values" not in captured.err + captured.out
    assert "pad_token_id" not in captured.err + captured.out


class _CountingProgress:
    def __init__(self) -> None:
        self.advances: list[float] = []

    def advance(self, _task: int, amount: float) -> None:
        self.advances.append(amount)


def test_generation_advances_progress_per_token_step_and_totals_one_per_prompt(tmp_path: Path) -> None:
    lm = load_model(build_tiny("llama", tmp_path / "llama"), device="cpu")
    records = [{"id": str(i), "text": f"<|im_start|>user\nList files {i}<|im_end|>\n<|im_start|>assistant\n"}
               for i in range(5)]
    prog = _CountingProgress()
    texts = generate(lm, records, max_new_tokens=6, batch_size=2, progress=prog, task=0)
    assert len(texts) == 5
    assert len(prog.advances) > 3  # many small steps, not one per batch
    assert abs(sum(prog.advances) - len(records)) < 1e-9


def test_model_loading_shows_no_library_bar_inside_the_block_and_the_bar_returns_after(tmp_path: Path,
                                                                                      capfd) -> None:
    from transformers.utils import logging as transformers_logging

    folder = build_tiny("llama", tmp_path / "llama")
    with warnings_to_file(tmp_path / "load.log"):
        load_model(folder, device="cpu")
    assert "Loading weights" not in "".join(capfd.readouterr())
    assert transformers_logging.is_progress_bar_enabled()  # restored for code outside the step
