"""``ablbench abliterate bake``: stream a checkpoint and orthogonalize its residual writers.

No ``register()`` here: ``harness/commands/abliterate.py`` registers :func:`bake_command`
as ``abliterate bake``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

from cyclopts import Parameter

from ablbench.errors import AblbenchError
from abliterate.options import BakeOptions
from harness.errors import echo, fail, secho


def bake_command(options: Annotated[BakeOptions, Parameter(name="*")]) -> None:
    """Orthogonalize every residual-stream writer of MODEL against a direction, streaming tensor by tensor."""
    from abliterate.bake.run import run_bake

    try:
        report = run_bake(options)
    except AblbenchError as exc:  # BakeError included (an AbliterationError)
        raise fail(str(exc)) from exc
    _print_summary(report, options.out, options.dry_run)


def _print_summary(report: dict, out: Path, dry_run: bool) -> None:
    """One short human summary; the full record is abliteration.json (or stdout on a dry run)."""
    edited = report.get("edited", [])
    skipped = report.get("skipped", [])
    if dry_run:
        echo(json.dumps({"would_edit": [e["key"] for e in edited], "skipped": skipped}, indent=2))
        echo(f"dry run: {len(edited)} tensor(s) would be edited, {len(skipped)} skipped; nothing written")
        return
    for s in skipped:
        secho(f"SKIPPED {s['key']}: {s['reason']}", err=True, fg="yellow")
    for f in report.get("not_copied", []):
        secho(f"NOT COPIED {f['file']}: {f['reason']}", err=True, fg="yellow")
    where = out.parent if report.get("format") == "gguf" else out
    echo(f"baked {len(edited)} tensor(s) into {out} (provenance: {where / 'abliteration.json'})")
