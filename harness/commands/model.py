"""``ablbench model embedded``: the bundled SmolLM2 as an HF folder, or the path of its GGUF."""

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
        out: Path | None = typer.Option(None, "--out", help="Folder to write (default: the ablbench cache; hf only)."),
        fmt: str = typer.Option("hf", "--format", help="hf: a bf16 safetensors folder | gguf: the bundled GGUF file."),
    ) -> None:
        """Print the bundled SmolLM2-135M-Instruct: an HF folder (materialized once) or its GGUF file."""
        from harness.embedded_model import EmbeddedModelOptions, embedded_model

        try:
            typer.echo(embedded_model(EmbeddedModelOptions(out=out, fmt=fmt)))
        except AblbenchError as exc:
            raise fail(str(exc)) from exc

    app.add_typer(model_app, name="model")
