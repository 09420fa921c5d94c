"""``ablbench model embedded``: the bundled SmolLM2 as an HF folder."""

from __future__ import annotations

from pathlib import Path

import typer

from ablbench.errors import AblbenchError
from harness.errors import fail


def register(app: typer.Typer) -> None:
    """Add the ``model`` verb group."""
    model_app = typer.Typer(help="Bundled models.", no_args_is_help=True)

    @model_app.command("embedded")
    def embedded(
        out: Path | None = typer.Option(None, "--out", help="Folder to write (default: the ablbench cache)."),
    ) -> None:
        """Materialize SmolLM2-135M-Instruct (bf16 safetensors) and print its folder."""
        from harness.embedded_model import materialize

        try:
            typer.echo(materialize(out))
        except AblbenchError as exc:
            raise fail(str(exc)) from exc

    app.add_typer(model_app, name="model")
