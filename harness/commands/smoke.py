"""``ablbench smoke``: a quick side-by-side look at a base and an edited model."""

from __future__ import annotations

from pathlib import Path

import typer

from ablbench.errors import AblbenchError
from harness.errors import fail


def register(app: typer.Typer) -> None:
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
        from abliterate.errors import AbliterationError
        from harness.commands.abliterate import print_evaluation, run_evaluation
        from harness.extras import require

        try:
            require("abliterate", "smoke")
            if base is None:
                from harness.embedded_model import materialize

                base = materialize()
            from ablbench.paths import cache_dir
            from abliterate.progress import warnings_to_file

            with warnings_to_file(cache_dir() / "logs" / "smoke.log"):
                report, out_dir = run_evaluation(base, edited, run, out, max_new_tokens=max_new_tokens,
                                                 limit=limit, batch_size=8, device=device, dtype=dtype, quiet=quiet,
                                                 benign=limit, rd=False)
        except (AblbenchError, AbliterationError) as exc:
            raise fail(str(exc)) from exc
        print_evaluation(report)
        typer.echo(out_dir / "evaluation.md")
