"""``ablbench smoke``: a quick side-by-side look at a base and an edited model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import typer
from cyclopts import App

from ablbench.errors import AblbenchError
from harness.commands._typer_bridge import mount
from harness.errors import fail


@dataclass(frozen=True)
class SmokeOptions:
    """The options of ``ablbench smoke``: a quick look at a base (and an edited) model."""

    base: Path | None = None  # None: the bundled SmolLM2
    edited: Path | None = None  # None: base only
    run: Path | None = None  # its eval prompts instead of the built-ins
    limit: int = 4  # prompts per bucket (benign ones too)
    max_new_tokens: int = 100
    out: Path | None = None  # default: the current folder
    device: str = "auto"
    dtype: str = "auto"
    quiet: bool = False


def _register_typer(app: typer.Typer) -> None:
    """Add the ``smoke`` verb."""

    @app.command("smoke")
    def smoke(
        base: Path | None = typer.Option(None, "--base", help="Original model folder or .gguf (default: bundled SmolLM2)."),
        edited: Path | None = typer.Option(None, "--edited", help="Edited model folder or .gguf (omit: base only)."),
        run: Path | None = typer.Option(None, "--run", help="Use this run's eval prompts instead of built-ins."),
        limit: int = typer.Option(4, "--limit", help="Prompts per bucket."),
        max_new_tokens: int = typer.Option(100, "--max-new-tokens", help="Greedy tokens per generation."),
        out: Path | None = typer.Option(None, "--out", help="Folder for evaluation.json/.md (default: .)."),
        device: str = typer.Option("auto", "--device"),
        dtype: str = typer.Option("auto", "--dtype"),
        quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
    ) -> None:
        """Generations for "List files in /tmp" and a few shell tasks, refusal markers, first-token KL."""
        _smoke(SmokeOptions(base=base, edited=edited, run=run, limit=limit, max_new_tokens=max_new_tokens, out=out,
                            device=device, dtype=dtype, quiet=quiet))


def _smoke(o: SmokeOptions) -> None:
    """The evaluation ``o`` asks for, with smoke's fixed choices: 8 per batch, ``limit`` benign prompts, no RD."""
    from harness.abliteration import print_evaluation, run_evaluation
    from harness.extras import require

    try:
        require("abliterate", "smoke")
        base = o.base
        if base is None:
            from harness.embedded_model import materialize

            base = materialize()
        from ablbench.paths import cache_dir
        from abliterate.evaluate.run import EvaluationOptions
        from abliterate.progress import warnings_to_file

        with warnings_to_file(cache_dir() / "logs" / "smoke.log"):
            report, out_dir = run_evaluation(EvaluationOptions(
                base=base, edited=o.edited, run=o.run, out=o.out, max_new_tokens=o.max_new_tokens, limit=o.limit,
                benign=o.limit, no_rd=True, batch_size=8, device=o.device, dtype=o.dtype, quiet=o.quiet,
            ))
    except AblbenchError as exc:  # AbliterationError included
        raise fail(str(exc)) from exc
    print_evaluation(report, typer.echo)
    typer.echo(out_dir / "evaluation.md")


def register(app: App) -> None:
    """Add the ``smoke`` verb (still declared with typer: harness/commands/_typer_bridge.py)."""
    group = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    _register_typer(group)
    command = typer.main.get_command(group)
    mount(app, group, "smoke", (command.help or "").split("\n")[0])
