"""The bundled training tasks (``tasks/train``): well-formed, disjoint from the evaluation tasks,
never loaded by default, and exactly what ``scripts/make_train_tasks.py`` writes.

Leakage rule (``test_no_long_word_ngram_is_shared_with_the_evaluation_tasks``): a task's text is
its instruction plus its solution as the replay agent sends it (``solution_steps``: comments and
commands; the ``#!`` line and ``set -euo pipefail`` are not steps). Words: the text lowercased,
split on whitespace, each piece stripped of surrounding ``NGRAM_PUNCT``; empty pieces dropped.
No training task may share a run of more than ``NGRAM_BOUND`` consecutive words with any
evaluation task, and no training instruction may open with the first ``OPENER_WORDS`` words of
an evaluation instruction (that catches a copied template such as "Create a directory named").
"""

from __future__ import annotations

import filecmp
import importlib.util
import re
import sys
from pathlib import Path

import pytest
from cli_helpers import CliRunner

from ablbench.paths import BASE_IMAGE, BUNDLED_TASKS, REPO_ROOT, TRAIN_TASKS
from ablbench.task_spec import TaskSpec
from harness.agents.replay import solution_steps
from harness.cli import app
from harness.tasks import check_tasks, discover_tasks

NGRAM_BOUND = 4
OPENER_WORDS = 3
NGRAM_PUNCT = "`'\".,;:()[]{}!?*"
EVAL = discover_tasks(BUNDLED_TASKS)
TRAIN = discover_tasks(TRAIN_TASKS)


def words(spec: TaskSpec) -> list[str]:
    """The task's instruction and replayed solution as words (module doc)."""
    steps = solution_steps(spec.solution_script() or "")
    text = spec.instruction + "\n" + "\n".join(f"{s.comment}\n{s.command}" for s in steps)
    return [w for w in (t.strip(NGRAM_PUNCT) for t in text.lower().split()) if w]


def longest_shared(a: list[str], b: list[str]) -> list[str]:
    """The longest run of consecutive words found in both ``a`` and ``b`` (the first, if several)."""
    best: list[str] = []
    prev = [0] * (len(b) + 1)
    for i in range(1, len(a) + 1):
        cur = [0] * (len(b) + 1)
        for j in range(1, len(b) + 1):
            if a[i - 1] == b[j - 1]:
                cur[j] = prev[j - 1] + 1
                if cur[j] > len(best):
                    best = a[i - cur[j]:i]
        prev = cur
    return best


def test_longest_shared_finds_the_longest_run():
    a = ["make", "a", "copy", "of", "the", "file", "now"]
    b = ["please", "make", "a", "copy", "of", "it", "and", "the", "file", "now"]
    assert longest_shared(a, b) == ["make", "a", "copy", "of"]
    assert longest_shared(a, ["zzz"]) == []


def test_the_training_set_is_valid_and_large_enough():
    assert check_tasks(TRAIN_TASKS) == []
    assert len(TRAIN) >= 40
    families = {s.metadata["tags"][1] for s in TRAIN}
    assert len(families) >= 8
    per_family = {f: sum(s.metadata["tags"][1] == f for s in TRAIN) for f in families}
    assert min(per_family.values()) >= 3, per_family
    checklib = BUNDLED_TASKS / "hello-world" / "tests" / "checklib.py"
    for s in TRAIN:
        assert s.metadata.get("split") == "train" and s.metadata["tags"][0] == "train", s.name
        assert s.format == "tb2" and not s.allow_internet and s.solution is not None, s.name
        docker = s.dockerfile.read_text().splitlines()
        assert docker[0] == f"FROM {BASE_IMAGE}", s.name
        assert not any(line.startswith(("COPY", "ADD")) for line in docker), s.name  # cheap, context-free builds
        assert sum(line.startswith("RUN") for line in docker) <= 1, s.name
        assert filecmp.cmp(s.tests_dir / "checklib.py", checklib, shallow=False), s.name
        assert solution_steps(s.solution_script()), s.name


def test_training_names_are_disjoint_from_the_evaluation_names():
    train = {s.name for s in TRAIN} | {s.path.name for s in TRAIN}
    evaluation = {s.name for s in EVAL} | {s.path.name for s in EVAL}
    assert not train & evaluation


def test_no_long_word_ngram_is_shared_with_the_evaluation_tasks():
    eval_words = {s.name: words(s) for s in EVAL}
    worst: tuple[int, str, str, str] = (0, "", "", "")
    for t in TRAIN:
        tw = words(t)
        for name, ew in eval_words.items():
            shared = longest_shared(tw, ew)
            assert len(shared) <= NGRAM_BOUND, f"{t.name} shares {' '.join(shared)!r} with {name}"
            worst = max(worst, (len(shared), t.name, name, " ".join(shared)))
    assert worst[0] >= 1  # the measure sees common words at all
    print(f"longest shared word n-gram: {worst[0]} words, {worst[1]} ~ {worst[2]}: {worst[3]!r}")


def test_no_training_instruction_opens_like_an_evaluation_instruction():
    def opener(spec: TaskSpec) -> tuple[str, ...]:
        return tuple(re.findall(r"[a-z0-9]+", spec.instruction.lower())[:OPENER_WORDS])

    openers = {opener(s): s.name for s in EVAL}
    for t in TRAIN:
        assert opener(t) not in openers, f"{t.name} opens like {openers[opener(t)]}"


# ------------------------------------------------------------------ default loading


def test_loading_the_bundled_tasks_never_picks_training_tasks():
    assert len(EVAL) == 12
    assert not {s.name for s in EVAL} & {s.name for s in TRAIN}
    assert all(TRAIN_TASKS not in s.path.parents for s in EVAL)
    assert check_tasks(BUNDLED_TASKS) == []  # tasks/train is not mistaken for a broken task


def test_cli_lists_and_checks_the_training_set_only_when_pointed_at_it():
    runner = CliRunner()
    default = runner.invoke(app, ["tasks", "list"], env={"COLUMNS": "200"})
    assert default.exit_code == 0, default.output
    assert "12 tasks" in default.output and "copy-backup-todo" not in default.output
    assert f"ablbench tasks list {TRAIN_TASKS}" in " ".join(default.output.split())  # where the others are
    train = runner.invoke(app, ["tasks", "list", str(TRAIN_TASKS)], env={"COLUMNS": "200"})
    assert train.exit_code == 0, train.output
    assert f"{len(TRAIN)} tasks" in train.output and "hello-world" not in train.output
    checked = runner.invoke(app, ["tasks", "check", str(TRAIN_TASKS)])
    assert checked.exit_code == 0, checked.output


# ------------------------------------------------------------------ the generator


def test_the_training_tasks_are_what_the_generator_writes(tmp_path):
    spec = importlib.util.spec_from_file_location("make_train_tasks", REPO_ROOT / "scripts" / "make_train_tasks.py")
    if spec is None or spec.loader is None:
        pytest.fail("scripts/make_train_tasks.py is missing")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    module.write(tmp_path / "train")
    mine = sorted(str(p.relative_to(tmp_path / "train")) for p in (tmp_path / "train").rglob("*") if p.is_file())
    bundled = sorted(str(p.relative_to(TRAIN_TASKS)) for p in Path(TRAIN_TASKS).rglob("*")
                     if p.is_file() and "__pycache__" not in p.parts)
    assert mine == bundled
    for rel in mine:
        assert (tmp_path / "train" / rel).read_bytes() == (TRAIN_TASKS / rel).read_bytes(), rel
