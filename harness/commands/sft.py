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
    import os
    from dataclasses import replace

    # before torch loads OpenMP: idle threads sleep instead of spinning on a shared CPU
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

    from harness.extras import require

    try:
        require("sft", "sft")
        from harness.agents.terminus import history_reply
        from sft.run import run_sft

        if o.model is None:
            from harness.embedded_model import materialize

            o = replace(o, model=materialize())
        report = run_sft(o, history_reply=history_reply, log=lambda m: echo(m, err=True))
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
