"""``ablbench tasks list|check``: inspect and validate task folders."""

from __future__ import annotations

from pathlib import Path

import typer

from ablbench.errors import AblbenchError
from ablbench.paths import BUNDLED_TASKS
from harness.errors import fail


def _fmt_s(seconds: float) -> str:
    return f"{seconds:g}s" if seconds < 120 or seconds % 60 else f"{seconds / 60:g}m"


def register(app: typer.Typer) -> None:
    """Add the ``tasks`` verb group."""
    tasks_app = typer.Typer(help="Inspect and validate task folders (TB2/harbor or legacy tb).",
                            no_args_is_help=True)

    @tasks_app.command("list")
    def list_(
        path: Path = typer.Argument(BUNDLED_TASKS, help="A folder of tasks, or one task folder."),
        include: list[str] = typer.Option([], "--include", "-i", help="Only tasks matching this glob."),
        exclude: list[str] = typer.Option([], "--exclude", "-e", help="Skip tasks matching this glob."),
    ) -> None:
        """Show the tasks under PATH with format, difficulty, timeouts and environment."""
        from rich.console import Console
        from rich.table import Table

        from harness.tasks import discover_tasks

        try:
            specs = discover_tasks(path, tuple(include), tuple(exclude))
        except AblbenchError as exc:
            raise fail(str(exc)) from exc
        table = Table(title=f"{len(specs)} tasks in {path}", caption="timeouts: agent / verifier")
        table.add_column("name", no_wrap=True)
        for col in ("fmt", "level", "category", "timeouts", "image", "net"):
            table.add_column(col, overflow="fold", min_width=4 if col == "net" else None)
        for s in specs:
            env = s.docker_image or ""
            if s.dockerfile is not None:
                rel = s.dockerfile.relative_to(s.path).as_posix()
                build = "build" if rel in {"environment/Dockerfile", "Dockerfile"} else f"build {rel}"
                env = f"{env} | {build}" if env else build
            table.add_row(s.name, s.format, s.difficulty or "-", s.category or "-",
                          f"{_fmt_s(s.agent_timeout_s)} / {_fmt_s(s.verifier_timeout_s)}", env,
                          "yes" if s.allow_internet else "no")
        Console().print(table)

    @tasks_app.command("check")
    def check(
        path: Path = typer.Argument(BUNDLED_TASKS, help="A folder of tasks, or one task folder."),
    ) -> None:
        """Validate every task under PATH; print each problem with its file; exit 1 if any."""
        from harness.tasks import check_tasks, discover_tasks

        problems = check_tasks(path)
        if problems:
            for p in problems:
                typer.secho(f"{p.path}: {p.message}", err=True, fg=typer.colors.RED)
            raise fail(f"{len(problems)} problem(s) in {path}; fix them and rerun `ablbench tasks check`")
        n = len(discover_tasks(path))
        typer.echo(f"ok: {n} task(s) in {path}")

    app.add_typer(tasks_app, name="tasks")
