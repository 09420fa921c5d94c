"""``ablbench tasks list|check|diff``: inspect, validate and compare task folders."""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass
from pathlib import Path
from typing import Annotated

from cyclopts import App, Parameter

from ablbench.errors import AblbenchError
from ablbench.paths import BUNDLED_TASKS, TRAIN_TASKS
from harness.errors import echo, fail, secho


@dataclass(frozen=True)
class TasksListOptions:
    """The options of ``ablbench tasks list``."""

    path: Path = BUNDLED_TASKS
    """A folder of tasks, or one task folder."""
    _: KW_ONLY
    include: Annotated[tuple[str, ...], Parameter(alias="-i")] = ()
    """Only tasks matching this glob."""
    exclude: Annotated[tuple[str, ...], Parameter(alias="-e")] = ()
    """Skip tasks matching this glob."""


@dataclass(frozen=True)
class TasksCheckOptions:
    """The options of ``ablbench tasks check`` (``base_image_map`` and ``offline`` apply with ``images``)."""

    path: Path = BUNDLED_TASKS
    """A folder of tasks, or one task folder."""
    _: KW_ONLY
    images: bool = False
    """Also say, per task, whether its image can host the agent (tmux, bash): ready, needs bootstrap, cannot run. Nothing is pulled or built."""
    base_image_map: tuple[str, ...] = ()
    """FROM=TO, as for `ablbench run` (with --images; repeatable)."""
    offline: bool = False
    """As for `ablbench run` (with --images)."""


@dataclass(frozen=True)
class TasksDiffOptions:
    """The options of ``ablbench tasks diff`` (two task folders, old then new)."""

    old: Path
    """The old folder of tasks (or one task folder)."""
    new: Path
    """The new folder of tasks (or one task folder)."""


def _fmt_s(seconds: float) -> str:
    return f"{seconds:g}s" if seconds < 120 or seconds % 60 else f"{seconds / 60:g}m"


def register(app: App) -> None:
    """Add the ``tasks`` verb group."""
    tasks_app = App(name="tasks", help="Inspect and validate task folders (TB2/harbor or legacy tb).",
                    help_flags=["--help"], version_flags=[])

    @tasks_app.command(name="list")
    def list_(options: Annotated[TasksListOptions, Parameter(name="*")] = TasksListOptions()) -> None:
        """Show the tasks under PATH with format, difficulty, timeouts and environment."""
        _list(options)

    @tasks_app.command(name="check")
    def check(options: Annotated[TasksCheckOptions, Parameter(name="*")] = TasksCheckOptions()) -> None:
        """Validate every task under PATH; print each problem with its file; exit 1 if any."""
        _check(options)

    @tasks_app.command(name="diff")
    def diff(options: Annotated[TasksDiffOptions, Parameter(name="*")]) -> None:
        """List the tasks changed (same name, other content), added and removed between OLD and NEW."""
        _diff(options)

    app.command(tasks_app)


def _list(o: TasksListOptions) -> None:
    """``tasks list``: one table row per task."""
    from rich.console import Console
    from rich.table import Table

    from harness.tasks import discover_tasks

    try:
        specs = discover_tasks(o.path, o.include, o.exclude)
    except AblbenchError as exc:
        raise fail(str(exc)) from exc
    table = Table(title=f"{len(specs)} tasks in {o.path}", caption="timeouts: agent / verifier")
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
    if Path(o.path).resolve() == BUNDLED_TASKS.resolve() and TRAIN_TASKS.is_dir():
        # the training set lives apart (never run by default): say where
        Console().print(f"[dim]training tasks (for SFT data, not evaluation): ablbench tasks list {TRAIN_TASKS}[/]")


def _check(o: TasksCheckOptions) -> None:
    """``tasks check``: every problem with its file, exit 1 if any; then the images with ``o.images``."""
    from harness.tasks import check_tasks, discover_tasks

    problems = check_tasks(o.path)
    if problems:
        for p in problems:
            secho(f"{p.path}: {p.message}", err=True, fg="red")
        raise fail(f"{len(problems)} problem(s) in {o.path}; fix them and rerun `ablbench tasks check`")
    specs = discover_tasks(o.path)
    echo(f"ok: {len(specs)} task(s) in {o.path}")
    if o.images:
        _check_images(specs, o)


def _check_images(specs: list, o: TasksCheckOptions) -> None:
    """``tasks check --images``: one row per task (runners.runtime_image, rule 5); exit 1 if any cannot run."""
    from collections import Counter

    import docker
    from rich.console import Console
    from rich.table import Table

    from ablbench.paths import BASE_IMAGE
    from runners.images import ImageError, ImageOptions, ImageResolver, parse_image_map
    from runners.runtime_image import AgentRuntime
    from runners.task_readiness import check_task

    try:
        mapping = parse_image_map(o.base_image_map)
    except ValueError as exc:
        raise fail(str(exc)) from None
    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except Exception as exc:  # noqa: BLE001 - any failure means "no engine"
        raise fail(f"--images needs the Docker engine ({exc}); start docker or set DOCKER_HOST") from None
    resolver = ImageResolver(client, ImageOptions(base_image_map=mapping, offline=o.offline, fallback_image=BASE_IMAGE))
    runtime = AgentRuntime(client)
    table = Table(title="agent runtime (tmux, bash) per task image")
    for col in ("task", "image", "status", "detail"):
        table.add_column(col, overflow="fold")
    colour = {"ready": "green", "needs bootstrap": "yellow", "cannot run": "red", "unknown": "magenta"}
    counts: Counter = Counter()
    for spec in specs:
        try:
            row = check_task(spec, resolver, runtime)
            status, image, detail = row.status, row.image, "; ".join([row.detail, *row.notes])
        except (ImageError, docker.errors.DockerException) as exc:
            status, image, detail = "unknown", spec.docker_image or "-", str(exc).splitlines()[0]
        counts[status] += 1
        table.add_row(spec.name, image, f"[{colour[status]}]{status}[/]", detail)
    Console().print(table)
    echo(", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    if counts["needs bootstrap"]:
        echo("needs bootstrap: `ablbench run` adds tmux/bash in a cached derived image (the build needs "
                   "network to the image's package mirror)")
    if counts["cannot run"]:
        raise fail(f"{counts['cannot run']} task image(s) cannot host the agent: add tmux and bash to their "
                   "Dockerfiles, or map them with --base-image-map FROM=IMAGE_WITH_TMUX")


def _diff(o: TasksDiffOptions) -> None:
    """``tasks diff``: changed tasks with the files that differ, then added and removed ones."""
    from harness.task_versions import diff_tasks
    from harness.tasks import discover_tasks

    try:
        d = diff_tasks(discover_tasks(o.old), discover_tasks(o.new))
    except AblbenchError as exc:
        raise fail(str(exc)) from exc
    for name, files in d.changed.items():
        echo(f"changed  {name}: {', '.join(files)}")
    for name in d.added:
        echo(f"added    {name}")
    for name in d.removed:
        echo(f"removed  {name}")
    echo(f"{len(d.changed)} changed, {len(d.added)} added, {len(d.removed)} removed, {len(d.same)} the same")
