"""Task loading: Terminal-Bench 2 / harbor folders and legacy ``tb`` folders -> ``TaskSpec``.

TB2 / harbor layout: ``task.toml``, ``instruction.md``, ``environment/Dockerfile``,
``tests/test.sh``, ``solution/solve.sh``. Legacy ``tb`` layout: ``task.yaml``, ``Dockerfile``
(or ``docker-compose.yaml``), ``run-tests.sh``, ``tests/``, ``solution.sh``/``solution.yaml``.
Every problem found is reported with the file it concerns; no referenced path may leave
the task folder, symlinks included.
"""

from __future__ import annotations

import fnmatch
import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ablbench.errors import AblbenchError
from ablbench.task_spec import TaskSpec

TB2_CONFIG = "task.toml"
LEGACY_CONFIG = "task.yaml"
KNOWN_SCHEMAS = {"1.0", "1.1", "1.2"}

# harbor's defaults when task.toml leaves a timeout out
TB2_AGENT_TIMEOUT_S = 600.0
TB2_VERIFIER_TIMEOUT_S = 600.0
BUILD_TIMEOUT_S = 600.0
# legacy tb defaults
LEGACY_AGENT_TIMEOUT_S = 360.0
LEGACY_TEST_TIMEOUT_S = 60.0

_NAME_BAD = re.compile(r"[^a-z0-9._-]+")
_IMAGE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@+-]*$")
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)
_SIZE_MB = {"": 1.0, "k": 1 / 1024, "m": 1.0, "g": 1024.0, "t": 1024.0 * 1024}


@dataclass(frozen=True)
class TaskProblem:
    """One thing wrong with a task folder: the file concerned and what to do about it."""

    path: Path
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class _Problems(Exception):
    """Internal: the problems that stopped one task from loading."""

    def __init__(self, problems: list[TaskProblem]) -> None:
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = problems


def sanitize_name(raw: str) -> str:
    """Lowercase ``raw`` and keep only ``[a-z0-9._-]`` (runs of anything else become ``-``)."""
    name = _NAME_BAD.sub("-", raw.strip().lower()).strip("-.")
    return re.sub(r"-{2,}", "-", name)


def parse_size_mb(value: Any) -> int:
    """``"2G"``, ``"512M"``, ``"1.5Gi"``, ``"2GB"`` -> megabytes; a bare number means MB."""
    if isinstance(value, bool):
        raise ValueError(f"not a size: {value!r}")
    if isinstance(value, int | float):
        mb = float(value)
    else:
        m = _SIZE_RE.match(str(value))
        if not m:
            raise ValueError(f"not a size: {value!r} (use e.g. \"2G\" or \"512M\")")
        mb = float(m.group(1)) * _SIZE_MB[m.group(2).lower()]
    if mb <= 0:
        raise ValueError(f"size must be positive, got {value!r}")
    return max(1, round(mb))


def is_task_dir(path: Path) -> bool:
    """True if ``path`` holds a ``task.toml`` or ``task.yaml``."""
    return (path / TB2_CONFIG).is_file() or (path / LEGACY_CONFIG).is_file()


def load_task(path: Path | str) -> TaskSpec:
    """Load and validate one task folder; raise ``AblbenchError`` naming the first problem."""
    try:
        return _load(Path(path))
    except _Problems as exc:
        first = exc.problems[0]
        more = f" (+{len(exc.problems) - 1} more problems; run `ablbench tasks check`)" if len(
            exc.problems) > 1 else ""
        raise AblbenchError(f"{first}{more}") from None


def discover_tasks(
    root: Path | str, include: tuple[str, ...] | list[str] = (), exclude: tuple[str, ...] | list[str] = (),
) -> list[TaskSpec]:
    """Every task under ``root`` (sorted by name), filtered by fnmatch globs on task names.

    ``root`` may itself be a task folder. A task matches a glob if its name or its folder
    name does; no match gives an empty list. Raises ``AblbenchError`` if a selected task is
    broken or two tasks share a name.
    """
    root = Path(root)
    include = (include,) if isinstance(include, str) else tuple(include)
    exclude = (exclude,) if isinstance(exclude, str) else tuple(exclude)
    specs = []
    for folder in _task_folders(root):
        try:
            specs.append(load_task(folder))
        except AblbenchError:
            if _globs_pick(folder.name, include, exclude):
                raise
            # a broken task the filters leave out does not stop the others
    seen: dict[str, Path] = {}
    for spec in specs:
        if spec.name in seen:
            raise AblbenchError(
                f"{spec.path}: task name {spec.name!r} is also used by {seen[spec.name]}; rename one of them")
        seen[spec.name] = spec.path
    chosen = [s for s in specs if _selected(s, include, exclude)]
    return sorted(chosen, key=lambda s: s.name)


def check_tasks(root: Path | str) -> list[TaskProblem]:
    """Validate every task under ``root``; return all problems found (empty list: all good)."""
    root = Path(root)
    try:
        folders = _task_folders(root, strict=False)
    except AblbenchError as exc:
        return [TaskProblem(root, str(exc))]
    problems: list[TaskProblem] = []
    if not folders:
        problems.append(TaskProblem(root, "no tasks found (expected folders with task.toml or task.yaml)"))
    if root.is_dir() and not is_task_dir(root):
        for child in sorted(root.iterdir()):
            if child.is_dir() and not child.name.startswith(".") and not is_task_dir(child) and (
                    (child / "instruction.md").exists() or (child / "tests").is_dir()):
                problems.append(TaskProblem(child, "looks like a task but has no task.toml or task.yaml"))
    names: dict[str, Path] = {}
    for folder in folders:
        try:
            spec = _load(folder)
        except _Problems as exc:
            problems.extend(exc.problems)
            continue
        if spec.name in names:
            problems.append(TaskProblem(
                folder, f"task name {spec.name!r} is also used by {names[spec.name]}; rename one of them"))
        names.setdefault(spec.name, folder)
    return problems


# ---------------------------------------------------------------------------- discovery


def _task_folders(root: Path, strict: bool = True) -> list[Path]:
    if not root.exists():
        raise AblbenchError(f"{root}: no such folder; pass a task folder or a folder of tasks")
    if not root.is_dir():
        raise AblbenchError(f"{root}: not a folder; pass a task folder or a folder of tasks")
    if is_task_dir(root):
        return [root]
    folders = sorted(c for c in root.iterdir() if c.is_dir() and not c.name.startswith(".") and is_task_dir(c))
    if strict and not folders:
        raise AblbenchError(f"{root}: no tasks found (expected sub-folders with task.toml or task.yaml)")
    return folders


def _globs_pick(names: str | set[str], include: tuple[str, ...], exclude: tuple[str, ...]) -> bool:
    names = {names} if isinstance(names, str) else names

    def hit(globs: tuple[str, ...]) -> bool:
        return any(fnmatch.fnmatchcase(n, g) for g in globs for n in names)

    return (not include or hit(include)) and not hit(exclude)


def _selected(spec: TaskSpec, include: tuple[str, ...], exclude: tuple[str, ...]) -> bool:
    return _globs_pick({spec.name, spec.path.name}, include, exclude)


# ---------------------------------------------------------------------------- loading


class _Ctx:
    """Collects problems while one task folder is read."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.real = folder.resolve()
        self.problems: list[TaskProblem] = []

    def add(self, path: Path, message: str) -> None:
        problem = TaskProblem(path, message)
        if problem not in self.problems:
            self.problems.append(problem)

    def inside(self, path: Path) -> bool:
        """True if ``path`` (symlinks resolved) stays inside the task folder; else records a problem."""
        try:
            path.resolve().relative_to(self.real)
        except (RuntimeError, OSError):  # a symlink loop
            self.add(path, "symlink cannot be resolved (loop?); replace it with a real file")
            return False
        except ValueError:
            self.add(path, "points outside the task folder; keep every task file inside the task folder")
            return False
        return True

    def file(self, rel: str, what: str, required: bool = True) -> Path | None:
        path = self.folder / rel
        if not path.exists() and not path.is_symlink():
            if required:
                self.add(path, f"missing {what}; create {rel}")
            return None
        if not self.inside(path):
            return None
        if not path.is_file():
            self.add(path, f"{what} must be a file")
            return None
        return path

    def folder_(self, rel: str, what: str, required: bool = True) -> Path | None:
        path = self.folder / rel
        if not path.exists() and not path.is_symlink():
            if required:
                self.add(path, f"missing {what}; create the folder {rel}/")
            return None
        if not self.inside(path):
            return None
        if not path.is_dir():
            self.add(path, f"{what} must be a folder")
            return None
        return path

    def scan_symlinks(self) -> None:
        """Every symlink anywhere in the task folder must resolve inside it."""
        for dirpath, dirnames, filenames in os.walk(self.folder):
            for entry in dirnames + filenames:
                p = Path(dirpath) / entry
                if p.is_symlink():
                    self.inside(p)


def _load(folder: Path) -> TaskSpec:
    if not folder.is_dir():
        raise _Problems([TaskProblem(folder, "not a folder")])
    ctx = _Ctx(folder)
    ctx.scan_symlinks()
    if (folder / TB2_CONFIG).exists():
        spec = _load_tb2(ctx)
    elif (folder / LEGACY_CONFIG).exists():
        spec = _load_legacy(ctx)
    else:
        ctx.add(folder, "not a task folder: no task.toml (TB2) or task.yaml (legacy tb)")
        spec = None
    if ctx.problems or spec is None:
        raise _Problems(ctx.problems)
    return spec


def _number(ctx: _Ctx, where: Path, table: dict, key: str, default: float | None,
            label: str) -> float | None:
    value = table.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        ctx.add(where, f"{label} must be a positive number, got {value!r}")
        return default
    return float(value)


def _table(ctx: _Ctx, where: Path, data: dict, key: str) -> dict:
    value = data.get(key, {})
    if not isinstance(value, dict):
        ctx.add(where, f"[{key}] must be a table, got {type(value).__name__}")
        return {}
    return value


def _size(ctx: _Ctx, where: Path, env: dict, key: str, mb_key: str) -> int | None:
    if env.get(mb_key) is not None:
        value = env[mb_key]
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            ctx.add(where, f"[environment] {mb_key} must be a positive number of MB, got {value!r}")
            return None
        return int(value)
    if env.get(key) is None:
        return None
    try:
        return parse_size_mb(env[key])
    except ValueError as exc:
        ctx.add(where, f"[environment] {key}: {exc}")
        return None


def _name(ctx: _Ctx, where: Path, raw: Any) -> str:
    if not isinstance(raw, str) or not raw.strip():
        ctx.add(where, f"task name must be a non-empty string, got {raw!r}")
        return sanitize_name(ctx.folder.name) or "task"
    # harbor names may carry an organisation prefix ("org/task"): keep the task part
    name = sanitize_name(raw.rsplit("/", 1)[-1])
    if not name:
        ctx.add(where, f"task name {raw!r} has no usable characters; use [a-z0-9._-]")
        return "task"
    return name


def _instruction(ctx: _Ctx, path: Path | None) -> str:
    if path is None:
        return ""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        ctx.add(path, "instruction is not valid UTF-8 text")
        return ""
    if not text.strip():
        ctx.add(path, "instruction is empty; write the task prompt into it")
    return text


def _load_tb2(ctx: _Ctx) -> TaskSpec | None:
    folder = ctx.folder
    config = ctx.file(TB2_CONFIG, "task config")
    if config is None:
        return None
    try:
        data = tomllib.loads(config.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        ctx.add(config, f"invalid TOML: {exc}; fix the syntax")
        return None

    schema = data.get("schema_version", data.get("version"))
    if schema is None:
        ctx.add(config, 'no version; add version = "1.0" (or schema_version = "1.2")')
    elif str(schema) not in KNOWN_SCHEMAS and not re.fullmatch(r"1(\.\d+)*", str(schema)):
        ctx.add(config, f"unsupported task.toml version {schema!r}; supported: 1.x "
                f"({', '.join(sorted(KNOWN_SCHEMAS))} known)")

    task_t = _table(ctx, config, data, "task")
    meta = dict(_table(ctx, config, data, "metadata"))
    agent_t = _table(ctx, config, data, "agent")
    verifier_t = _table(ctx, config, data, "verifier")
    env_t = _table(ctx, config, data, "environment")

    name = _name(ctx, config, task_t["name"]) if "name" in task_t else sanitize_name(folder.name)
    if not name:
        ctx.add(folder, "folder name has no usable characters for a task name; rename it with [a-z0-9._-]")
    if "name" in task_t:
        meta.setdefault("task_name", task_t["name"])

    instruction = _instruction(ctx, ctx.file("instruction.md", "instruction"))

    docker_image = env_t.get("docker_image") or None  # "" means: no prebuilt image
    if docker_image is not None and (not isinstance(docker_image, str) or not _IMAGE_RE.match(docker_image)):
        ctx.add(config, f"[environment] docker_image is not a valid image reference: {docker_image!r}")
        docker_image = None
    env_dir = ctx.folder_("environment", "environment folder", required=False)
    dockerfile = None
    if env_dir is not None:
        dockerfile = ctx.file("environment/Dockerfile", "Dockerfile", required=docker_image is None)
    elif docker_image is None and not (folder / "environment").exists():
        ctx.add(folder / "environment", "no environment/Dockerfile and no [environment] docker_image; "
                "add one of them")
    build_context = env_dir if dockerfile is not None else None

    allow_internet = env_t.get("allow_internet", True)
    if not isinstance(allow_internet, bool):
        ctx.add(config, f"[environment] allow_internet must be true or false, got {allow_internet!r}")
        allow_internet = True
    gpus = env_t.get("gpus", 0)
    if isinstance(gpus, bool) or not isinstance(gpus, int) or gpus < 0:
        ctx.add(config, f"[environment] gpus must be a whole number >= 0, got {gpus!r}")
    elif gpus:
        meta["gpus"] = gpus

    tests_dir = ctx.folder_("tests", "tests folder")
    if tests_dir is not None:
        ctx.file("tests/test.sh", "verifier entry point")
    solution = ctx.file("solution/solve.sh", "reference solution", required=False)

    return TaskSpec(
        name=name,
        path=folder,
        instruction=instruction,
        format="tb2",
        docker_image=docker_image,
        build_context=build_context,
        dockerfile=dockerfile,
        agent_timeout_s=_number(ctx, config, agent_t, "timeout_sec", TB2_AGENT_TIMEOUT_S, "[agent] timeout_sec"),
        verifier_timeout_s=_number(ctx, config, verifier_t, "timeout_sec", TB2_VERIFIER_TIMEOUT_S,
                                   "[verifier] timeout_sec"),
        build_timeout_s=_number(ctx, config, env_t, "build_timeout_sec", BUILD_TIMEOUT_S,
                                "[environment] build_timeout_sec"),
        cpus=_number(ctx, config, env_t, "cpus", None, "[environment] cpus"),
        memory_mb=_size(ctx, config, env_t, "memory", "memory_mb"),
        storage_mb=_size(ctx, config, env_t, "storage", "storage_mb"),
        allow_internet=allow_internet,
        tests_dir=tests_dir or folder / "tests",
        test_script="test.sh",
        solution=solution,
        metadata=meta,
    )


def _load_legacy(ctx: _Ctx) -> TaskSpec | None:
    import yaml

    folder = ctx.folder
    config = ctx.file(LEGACY_CONFIG, "task config")
    if config is None:
        return None
    try:
        data = yaml.safe_load(config.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        reason = " ".join(str(exc).split())
        ctx.add(config, f"invalid YAML: {reason}; fix the syntax")
        return None
    if not isinstance(data, dict):
        ctx.add(config, "task.yaml must be a mapping with at least an 'instruction' key")
        return None

    instruction = data.get("instruction")
    if instruction is None and isinstance(data.get("descriptions"), list):
        # the oldest tb tasks: descriptions: [{key: base, description: ...}]
        descs = [d for d in data["descriptions"] if isinstance(d, dict)]
        base = [d for d in descs if d.get("key") == "base"] or descs
        instruction = base[0].get("description") if base else None
    if not isinstance(instruction, str) or not instruction.strip():
        ctx.add(config, "no instruction; add an 'instruction: |' block with the task prompt")
        instruction = ""

    meta = {k: v for k, v in data.items() if k not in {"instruction", "descriptions"}}
    dockerfile = ctx.file("Dockerfile", "Dockerfile", required=False)
    build_context: Path | None = folder if dockerfile is not None else None
    compose = ctx.file("docker-compose.yaml", "compose file", required=False) or ctx.file(
        "docker-compose.yml", "compose file", required=False)
    if dockerfile is None and compose is not None:
        build_context, dockerfile = _compose_build(ctx, compose)
    if dockerfile is None and compose is None:
        ctx.add(folder / "Dockerfile", "missing Dockerfile; legacy tasks build their image from it")

    tests_dir = ctx.folder_("tests", "tests folder")
    ctx.file("run-tests.sh", "verifier entry point")
    solution = ctx.file("solution.sh", "reference solution", required=False) or ctx.file(
        "solution.yaml", "reference solution", required=False)

    name = sanitize_name(folder.name)
    if not name:
        ctx.add(folder, "folder name has no usable characters for a task name; rename it with [a-z0-9._-]")

    return TaskSpec(
        name=name,
        path=folder,
        instruction=instruction,
        format="legacy",
        docker_image=None,
        build_context=build_context,
        dockerfile=dockerfile,
        agent_timeout_s=_number(ctx, config, data, "max_agent_timeout_sec", LEGACY_AGENT_TIMEOUT_S,
                                "max_agent_timeout_sec"),
        verifier_timeout_s=_number(ctx, config, data, "max_test_timeout_sec", LEGACY_TEST_TIMEOUT_S,
                                   "max_test_timeout_sec"),
        build_timeout_s=BUILD_TIMEOUT_S,
        cpus=None,
        memory_mb=None,
        storage_mb=None,
        allow_internet=True,
        tests_dir=tests_dir or folder / "tests",
        test_script="run-tests.sh",
        solution=solution,
        metadata=meta,
    )


def _compose_build(ctx: _Ctx, compose: Path) -> tuple[Path | None, Path | None]:
    """Build context and Dockerfile of the compose file's ``client`` service (legacy tb)."""
    import yaml

    try:
        data = yaml.safe_load(compose.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        ctx.add(compose, f"invalid YAML: {' '.join(str(exc).split())}; fix the syntax")
        return None, None
    services = data.get("services") if isinstance(data, dict) else None
    client = services.get("client") if isinstance(services, dict) else None
    build = client.get("build") if isinstance(client, dict) else None
    if build is None:
        ctx.add(compose, "no Dockerfile and no services.client.build in the compose file; add a Dockerfile")
        return None, None
    if isinstance(build, str):
        build = {"context": build}
    context = ctx.folder / str(build.get("context", "."))
    if not ctx.inside(context):
        return None, None
    dockerfile = context / str(build.get("dockerfile", "Dockerfile"))
    if not ctx.inside(dockerfile):
        return None, None
    if not dockerfile.is_file():
        ctx.add(dockerfile, "Dockerfile named by the compose file is missing")
        return None, None
    return context, dockerfile
