"""``ablbench abliterate control`` (control edits) and the refusal checks around an edit.

Library: :mod:`abliterate.control`, :mod:`abliterate.direction_report`, :mod:`abliterate.judge`.
"""

from __future__ import annotations

from pathlib import Path

import typer

from harness.commands.abliterate import _errors


def control_command(
    model: Path = typer.Option(..., "--model", help="The HF model folder the run baked."),
    run: Path = typer.Option(..., "--run", help="Run folder with abliterated_model/ (or search/chosen.json)."),
    out: Path = typer.Option(..., "--out", help="Folder for the control model (new or empty)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the random direction."),
    direction: Path | None = typer.Option(
        None, "--direction", help="Bake this direction instead (a second contrast's), with the same strengths."),
    layer: float | None = typer.Option(None, "--layer", help="Row of --direction when it is a per-layer stack."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Bake a control: a seeded random direction orthogonal to the run's, same layers, strengths, components."""
    from abliterate.control import bake_control

    rep = bake_control(model, run, out, seed=seed, direction=direction, layer=layer, progress=not quiet)
    c = rep["control"]
    typer.echo(f"control ({c['kind']}, seed {c['seed']}): {len(rep['edited'])} tensor(s) edited, "
               f"cos to the run's direction {c['cos_to_reference']:.2e}")
    typer.echo(f"three-arm benchmark: scripts/full_bench_parallel.sh --model base={model} "
               f"--model abl={run / 'abliterated_model'} --model control={out}")
    typer.echo(out)


def register(abl_app: typer.Typer) -> None:
    """Add the commands to the ``abliterate`` group."""
    abl_app.command("control")(_errors(control_command))
