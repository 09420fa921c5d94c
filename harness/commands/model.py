"""``ablbench model embedded``: the bundled SmolLM2 as an HF folder, or the path of its GGUF."""

from __future__ import annotations

from typing import Annotated

from cyclopts import App, Parameter

from ablbench.errors import AblbenchError
from harness.embedded_model import EmbeddedModelOptions
from harness.errors import echo, fail


def register(app: App) -> None:
    """Add the ``model`` verb group."""
    model_app = App(name="model", help="Bundled models.", help_flags=["--help"], version_flags=[])

    @model_app.command(name="embedded")
    def embedded(options: Annotated[EmbeddedModelOptions, Parameter(name="*")] = EmbeddedModelOptions()) -> None:
        """Print the bundled SmolLM2-135M-Instruct: an HF folder (materialized once) or its GGUF file."""
        from harness.embedded_model import embedded_model

        try:
            echo(embedded_model(options))
        except AblbenchError as exc:
            raise fail(str(exc)) from exc

    app.command(model_app)
