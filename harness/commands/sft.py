"""``ablbench sft``: LoRA fine-tuning on agent trajectories (the SFT arm); the work is in :mod:`sft`."""

from __future__ import annotations

from pathlib import Path

import typer
from cyclopts import App

from ablbench.errors import AblbenchError
from harness.commands._typer_bridge import mount
from harness.errors import fail


def _register_typer(app: typer.Typer) -> None:
    """Add the ``sft`` verb."""

    @app.command("sft")
    def sft(
        model: Path | None = typer.Option(None, "--model", help="HF model folder (default: the bundled SmolLM2)."),
        traces: list[Path] = typer.Option([], "--traces", help="ablbench run folder, harbor job or trial folder "
                                          "(repeat for more); passed trials only unless --include-failed."),
        out: Path = typer.Option(Path("results/sft"), "--out", help="Output folder (adapter, merged, sft.json)."),
        gguf: Path | None = typer.Option(None, "--gguf", help="The base model's GGUF: also write merged.gguf."),
        include_failed: bool = typer.Option(False, "--include-failed", help="Train on failed trials too."),
        epochs: int = typer.Option(3, "--epochs"),
        lr: float = typer.Option(1e-3, "--lr", help="AdamW learning rate (LoRA)."),
        rank: int = typer.Option(16, "--rank", help="LoRA rank."),
        alpha: int = typer.Option(32, "--alpha", help="LoRA alpha."),
        dropout: float = typer.Option(0.0, "--dropout", help="LoRA dropout."),
        target_modules: str = typer.Option("all-linear", "--target-modules", help="PEFT target_modules."),
        batch_tokens: int = typer.Option(4096, "--batch-tokens", help="Padded tokens per batch (length-grouped)."),
        max_len: int = typer.Option(2048, "--max-len", help="Longest sequence in tokens (longer: cut on the left)."),
        val_fraction: float = typer.Option(0.2, "--val-fraction", help="Share of TASKS held out for validation."),
        seed: int = typer.Option(0, "--seed"),
        device: str = typer.Option("auto", "--device", help="auto (GPU when present) | cpu | cuda."),
        dtype: str = typer.Option("auto", "--dtype", help="auto (bf16 on a GPU that has it, else float32)."),
        threads: int = typer.Option(0, "--threads", help="Torch threads (0: ABLBENCH_TORCH_THREADS, else the idle CPUs)."),
        quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
    ) -> None:
        """Train a LoRA adapter on agent trajectories; write the adapter, a merged HF folder (and GGUF), sft.json."""
        from sft.run import SftOptions

        _sft(SftOptions(model=model, traces=tuple(traces), out=out, gguf=gguf, include_failed=include_failed,
                        epochs=epochs, lr=lr, rank=rank, alpha=alpha, dropout=dropout, target_modules=target_modules,
                        batch_tokens=batch_tokens, max_len=max_len, val_fraction=val_fraction, seed=seed,
                        device=device, dtype=dtype, threads=threads, quiet=quiet))


def _sft(o) -> None:
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
        report = run_sft(o, history_reply=history_reply, log=lambda m: typer.echo(m, err=True))
    except AblbenchError as exc:
        raise fail(str(exc)) from exc
    v = report["validation_loss"]

    def fmt(x: float | None) -> str:
        return "-" if x is None else f"{x:.4f}"

    typer.echo(f"validation loss {fmt(v['before'])} -> {fmt(v['after'])}; "
               f"{report['throughput_tokens_per_s']} tokens/s", err=True)
    typer.echo(Path(o.out) / "sft.json")


def register(app: App) -> None:
    """Add the ``sft`` verb (still declared with typer: harness/commands/_typer_bridge.py)."""
    group = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    _register_typer(group)
    command = typer.main.get_command(group)
    mount(app, group, "sft", (command.help or "").split("\n")[0])
