"""The Python API (harness.api): the README's example runs as written, and every place that
uses an agent default reads it from harness/agents/defaults.py."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys

import pytest

from ablbench.paths import REPO_ROOT
from harness.agents import defaults
from harness.agents.terminus import AgentConfig
from harness.run_options import RunOptions
from harness.sweep import parser

README = REPO_ROOT / "README.md"


def readme_api_example() -> str:
    """The first ```python block of the README's "Python API" section."""
    section = README.read_text().split("\n## Python API\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    assert blocks, "the README's Python API section lost its example"
    return blocks[0]


@pytest.mark.docker
def test_readme_api_example_runs_the_oracle_and_analyzes(docker_client, base_image, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    exec(compile(readme_api_example(), str(README), "exec"), {"__name__": "readme_example"})  # noqa: S102
    assert capsys.readouterr().out.strip().endswith("2 of 2 tasks solved")
    run = tmp_path / "api-example"
    assert sorted(p.parent.parent.name for p in run.glob("*/*/result.json")) == ["hello-world", "make-output-dir"]
    assert (run / "report.md").read_text().startswith("#")


AGENT_FIELDS = {"max_turns": "MAX_TURNS", "max_tokens": "MAX_TOKENS", "temperature": "TEMPERATURE",
                "top_p": "TOP_P", "seed": "SEED"}


def test_agent_defaults_are_written_once():
    run, agent = RunOptions(), AgentConfig()
    sweep = parser().parse_args([])
    for name, const in AGENT_FIELDS.items():
        value = getattr(defaults, const)
        assert getattr(run, name) == value and getattr(agent, name) == value, name
        if name in {"max_turns", "max_tokens", "temperature"}:
            assert getattr(sweep, name) == value, name
    # no literal copy of them in the modules that use them, nor in the scripts
    for path in ("harness/run_options.py", "harness/agents/terminus.py", "harness/agents/harbor_agent.py",
                 "harness/commands/run.py", "harness/sweep.py"):
        text = (REPO_ROOT / path).read_text()
        for name in AGENT_FIELDS:
            value = re.escape(str(getattr(defaults, AGENT_FIELDS[name])))
            assert not re.search(rf"\b{name}\b[^\n]*?(=|Option\()\s*{value}\b", text), f"{path} repeats {name}'s default"
    for script in ("full_bench_parallel.sh", "harbor_sweep.sh"):
        text = (REPO_ROOT / "scripts" / script).read_text()
        assert not re.search(r"max_turns=\d|max_tokens=\d|temperature=\d|--max-(turns|tokens) \d", text), script


def test_harbor_sweep_reads_the_defaults_from_python():
    """harbor_sweep.sh's defaults come from harness/agents/defaults.py: run its line that reads them."""
    script = (REPO_ROOT / "scripts" / "harbor_sweep.sh").read_text()
    line = next(x for x in script.splitlines(keepends=True) if x.startswith('eval "$("$PY"'))
    rest = script[script.index(line) + len(line):].split("\n", 1)[0]
    got = subprocess.run(["bash", "-c", f"PY={sys.executable}\n{line}{rest}\necho $max_turns $max_tokens $temperature"],
                         capture_output=True, text=True, check=True, cwd=REPO_ROOT).stdout.split()
    assert got == [str(defaults.MAX_TURNS), str(defaults.MAX_TOKENS), str(defaults.TEMPERATURE)]


def test_sweep_run_settings_default_to_run_options():
    from harness.sweep import SweepOptions

    assert dataclasses.asdict(SweepOptions().run) == dataclasses.asdict(RunOptions(agent="terminus"))
