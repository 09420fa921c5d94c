"""The plain description of one task that crosses from task loading into the runner."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

TaskFormat = Literal["tb2", "legacy"]


@dataclass(frozen=True)
class TaskSpec:
    """Everything the runner needs to know about one task, already validated.

    ``docker_image`` is a prebuilt image to use when available; ``build_context`` and
    ``dockerfile`` describe how to build one otherwise (the loader guarantees at least one
    of ``docker_image`` and ``dockerfile``).

    Verifier: copy ``tests_dir`` to ``/tests`` and ``test_script_path`` to
    ``/tests/<test_script>`` (for TB2 it already lies inside ``tests_dir``; for the legacy
    format ``run-tests.sh`` sits in the task root), then run ``bash /tests/<test_script>``.
    Legacy tasks expect ``TEST_DIR=/tests`` in the environment and write no reward file:
    their reward is the exit status of ``run-tests.sh`` (0 -> 1.0, else 0.0).

    ``solution`` is the reference solution (``solve.sh``, ``solution.sh`` or a legacy
    ``solution.yaml``) for the oracle agent, or None; ``solution_script()`` gives it as a
    bash script whatever its form. ``metadata`` holds the free-form ``[metadata]`` table
    (difficulty, category, tags...) plus ``gpus`` when a task asks for any.
    """

    name: str
    path: Path
    instruction: str
    format: TaskFormat
    docker_image: str | None
    build_context: Path | None
    dockerfile: Path | None
    agent_timeout_s: float
    verifier_timeout_s: float
    build_timeout_s: float
    cpus: float | None
    memory_mb: int | None
    storage_mb: int | None
    allow_internet: bool
    tests_dir: Path
    test_script: str
    solution: Path | None
    metadata: dict = field(default_factory=dict)

    @property
    def test_script_path(self) -> Path:
        """Host path of the verifier entry point."""
        inside = self.tests_dir / self.test_script
        return inside if inside.is_file() else self.path / self.test_script

    def solution_script(self) -> str | None:
        """The reference solution as bash script text, or None when the task has none."""
        if self.solution is None:
            return None
        text = self.solution.read_text(encoding="utf-8")
        if self.solution.suffix not in {".yaml", ".yml"}:
            return text
        import yaml  # legacy tb solution.yaml: a list of {command: ...} steps

        steps = yaml.safe_load(text) or []
        lines = ["#!/bin/bash"]
        for step in steps:
            command = step.get("command") if isinstance(step, dict) else step
            if command:
                lines.append(str(command).rstrip("\n"))
        return "\n".join(lines) + "\n"

    @property
    def difficulty(self) -> str | None:
        """The task's declared difficulty (easy/medium/hard), if any."""
        value = self.metadata.get("difficulty")
        return str(value) if value is not None else None

    @property
    def category(self) -> str | None:
        """The task's declared category, if any."""
        value = self.metadata.get("category")
        return str(value) if value is not None else None
