"""``ablbench abliterate search|control|direction-report|judge-check``.

The library is :mod:`abliterate`; this module injects what abliterate may not import: the
agent's action parser (the search's format-damage objective) and the agent's prompts.
"""

from __future__ import annotations

from pathlib import Path

import typer

from harness.abliteration import agent_format_ok
from harness.commands._abliterate_shared import DEVICE, DTYPE, LAYERS_PATH, cli_errors


def _log(message: str) -> None:
    typer.echo(message)


def search_cmd(
    model: Path = typer.Option(..., "--model", help="The HF model folder the run was made from."),
    run: Path = typer.Option(..., "--run", help="Run folder with the contrast and vectors/ (writes RUN/search/)."),
    trials: int = typer.Option(200, "--trials", help="Complete trials wanted (heretic's default is 200)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the TPE sampler."),
    startup: int | None = typer.Option(None, "--startup", help="Random trials before TPE (default 30% of --trials)."),
    trial: int | None = typer.Option(None, "--trial", help="Choose this trial instead of the documented rule."),
    prompts: int | None = typer.Option(None, "--prompts", help="At most N eval prompts per bucket."),
    gen_tokens: int = typer.Option(100, "--gen-tokens", help="Greedy tokens for the refusal-marker objective."),
    format_tokens: int = typer.Option(128, "--format-tokens", help="Greedy tokens of the first agent reply."),
    no_format: bool = typer.Option(False, "--no-format-objective", help="Search refusal and KL only."),
    kl_bound: float = typer.Option(0.1, "--kl-bound", help="KL guard of the choice rule."),
    damage_tolerance: float = typer.Option(0.1, "--damage-tolerance", help="Format guard of the choice rule."),
    batch_size: int = typer.Option(8, "--batch-size", help="Prompts per forward pass."),
    fresh: bool = typer.Option(False, "--fresh", help="Delete the stored study and start over."),
    device: str = DEVICE, dtype: str = DTYPE, layers_path: str | None = LAYERS_PATH,
) -> None:
    """Multi-objective Optuna search over heretic's parameters, with hooks; resumable from SQLite."""
    from abliterate.search.run import SearchOptions, run_search

    opts = SearchOptions(trials=trials, seed=seed, startup=startup, prompts=prompts, gen_tokens=gen_tokens,
                         format_tokens=format_tokens, batch_size=batch_size, kl_bound=kl_bound,
                         damage_tolerance=damage_tolerance, trial=trial, fresh=fresh, device=device, dtype=dtype,
                         layers_path=layers_path)
    doc = run_search(model, run, opts, format_check=None if no_format else agent_format_ok, log=_log)
    objs = ", ".join(f"{k} {v:.4g}" for k, v in doc["objectives"].items())
    typer.echo(f"front: {doc['front_size']} of {doc['trials_complete']} trials; chosen trial {doc['trial']} ({objs})")
    typer.echo(f"rule: {doc['rule']}")
    typer.echo(f"bake it: {doc['bake_command']}")
    typer.echo(run / "search")


def register(abl_app: typer.Typer) -> None:
    """Add the commands to the ``abliterate`` group."""
    abl_app.command("search")(cli_errors(search_cmd))
