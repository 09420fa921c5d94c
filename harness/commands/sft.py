"""``ablbench sft``: LoRA fine-tuning on agent trajectories (the SFT arm); the work is in :mod:`sft`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from cyclopts import App, Parameter

from ablbench.errors import AblbenchError
from harness.errors import echo, fail
from sft.run import SftOptions


def sft_command(options: Annotated[SftOptions, Parameter(name="*")] = SftOptions()) -> None:
    """Train a LoRA adapter on agent trajectories; write the adapter, a merged HF folder (and GGUF), sft.json."""
    _sft(options)


def _sft(o: SftOptions) -> None:
    from harness.api import train_sft

    try:
        report = train_sft(o, log=lambda m: echo(m, err=True))
    except AblbenchError as exc:
        raise fail(str(exc)) from exc
    v = report["validation_loss"]

    def fmt(x: float | None) -> str:
        return "-" if x is None else f"{x:.4f}"

    echo(f"validation loss {fmt(v['before'])} -> {fmt(v['after'])}; "
               f"{report['throughput_tokens_per_s']} tokens/s", err=True)
    echo(Path(o.out) / "sft.json")


def register(app: App) -> None:
    """Add the ``sft`` verb."""
    app.command(sft_command, name="sft")
