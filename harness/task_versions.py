"""Task versions: a task's content hash, and what changed between two task folders.

Rules, in order:

1. A task's version is the sha256 over every file of its folder (paths and bytes; caches left
   out: ``runners.fingerprint.tree_hash``), plus the files it uses from outside its folder (a
   legacy task's tests or build context). ``ablbench run`` records it per task in run.json
   (``fingerprint.tasks``), so ``analyze`` can tell TB 2.0 from TB 2.1 under the same names.
2. Two task folders are matched by task name: a name in both with another hash is ``changed``,
   a name only in the second is ``added``, only in the first ``removed``; the rest is ``same``.
   For a changed task, the files whose bytes differ are listed (relative to the task folder).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ablbench.task_spec import TaskSpec
from runners.fingerprint import SKIP_DIRS, tree_hash


def task_hash(spec: TaskSpec) -> str:
    """``sha256:<hex>`` of the task's content (rule 1)."""
    roots = [spec.path] + [
        p for p in (spec.tests_dir, spec.test_script_path, spec.build_context)
        if p is not None and not Path(p).resolve().is_relative_to(Path(spec.path).resolve())
    ]
    return tree_hash(*roots)


@dataclass(frozen=True)
class TaskDiff:
    """How two task folders differ (rule 2)."""

    changed: dict[str, list[str]] = field(default_factory=dict)  # task -> files that differ
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    same: list[str] = field(default_factory=list)


def _files(root: Path) -> dict[str, str]:
    files = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and not SKIP_DIRS.intersection(p.relative_to(root).parts):
            files[p.relative_to(root).as_posix()] = tree_hash(p)
    return files


def changed_files(a: TaskSpec, b: TaskSpec) -> list[str]:
    """The files of two versions of a task whose bytes differ, or that only one has."""
    fa, fb = _files(Path(a.path)), _files(Path(b.path))
    return sorted(k for k in fa.keys() | fb.keys() if fa.get(k) != fb.get(k))


def diff_tasks(old: list[TaskSpec], new: list[TaskSpec]) -> TaskDiff:
    """Compare two lists of tasks by name (rule 2)."""
    a, b = {s.name: s for s in old}, {s.name: s for s in new}
    changed: dict[str, list[str]] = {}
    same = []
    for name in sorted(a.keys() & b.keys()):
        if task_hash(a[name]) == task_hash(b[name]):
            same.append(name)
        else:
            changed[name] = changed_files(a[name], b[name]) or ["(files outside the task folder)"]
    return TaskDiff(changed=changed, added=sorted(b.keys() - a.keys()), removed=sorted(a.keys() - b.keys()),
                    same=same)
