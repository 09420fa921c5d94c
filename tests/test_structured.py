"""``--structured``: the action schema, the preflight against a server that ignores
``response_format`` (the real ``transformers serve`` of the bundled model), and the analysis
refusing to pair a structured run with a free-form one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ablbench.errors import AblbenchError
from harness.action_schema import CEILING, STYLES, action_schema, bounds_for, response_format
from harness.analysis import load_run
from harness.analysis.structured import check_structured_pairing, run_structured

ABLBENCH = str(Path(sys.executable).parent / "ablbench")


def test_bounds_scale_with_small_budgets_and_stop_at_a_fixed_ceiling():
    small = bounds_for(256)
    assert (small.analysis, small.plan, small.keystrokes, small.commands) == (192, 115, 307, 1)
    # a maximal small action (every field full) stays within about the reply budget
    assert small.analysis + small.plan + small.commands * small.keystrokes + 120 <= 3 * 256
    assert bounds_for(1).analysis == 64 and bounds_for(1).commands == 1
    # from the user's default budget up, the same bounds: the grammar does not grow with --max-tokens
    assert {bounds_for(n) for n in (2700, 4096, 16384, 32768, 10**6)} == {CEILING}
    assert (CEILING.analysis, CEILING.plan, CEILING.keystrokes, CEILING.commands) == (800, 400, 800, 8)
    for n in (1, 100, 256, 1000, 1024, 2048, 3000, 8192):
        b = bounds_for(n)
        assert b.analysis <= CEILING.analysis and b.plan <= CEILING.plan
        assert b.keystrokes <= CEILING.keystrokes and b.commands <= CEILING.commands
    # llama.cpp cannot parse a bounded string of more than 1000 characters (issue 26); the
    # largest action fits the default 4096-token reply at 3 characters per token
    assert max(CEILING.analysis, CEILING.plan, CEILING.keystrokes) <= 1000
    assert CEILING.analysis + CEILING.plan + CEILING.commands * (CEILING.keystrokes + 40) + 120 <= 3 * 4096


def test_schema_bounds_every_field_and_both_request_shapes():
    b = bounds_for(512)
    schema = action_schema(b)
    props = schema["properties"]
    assert schema["required"] == ["analysis", "plan", "commands", "task_complete"] == list(props)
    assert schema["additionalProperties"] is False
    assert props["analysis"]["maxLength"] == b.analysis and props["plan"]["maxLength"] == b.plan
    assert props["commands"]["maxItems"] == b.commands
    command = props["commands"]["items"]
    assert command["properties"]["keystrokes"]["maxLength"] == b.keystrokes
    assert command["properties"]["duration"] == {"type": "number", "minimum": 0, "maximum": 60}
    assert response_format(schema, "json_schema") == {
        "type": "json_schema", "json_schema": {"name": "terminal_action", "schema": schema, "strict": True}}
    assert response_format(schema, "json_object") == {"type": "json_object", "schema": schema}
    assert STYLES == ("json_schema", "json_object")
    with pytest.raises(ValueError, match="unknown response_format style"):
        response_format(schema, "grammar")  # type: ignore[arg-type]


def results_folder(root: Path, name: str, run_json: dict | None) -> Path:
    folder = root / name
    folder.mkdir()
    (folder / "master_summary.csv").write_text(
        "task,attempt,reward,outcome\nhello-world,1,1,passed\nmake-output-dir,1,0,failed\n")
    if run_json is not None:
        (folder / "run.json").write_text(json.dumps(run_json))
    return folder


def test_analysis_refuses_mixed_structured_unless_allowed(tmp_path):
    on = results_folder(tmp_path, "on", {"structured": True})
    off = results_folder(tmp_path, "off", {"agent": {"name": "terminus"}})  # before the flag: free-form
    old_style = results_folder(tmp_path, "rf", {"agent": {"response_format": {"type": "json_object"}}})
    csv_only = results_folder(tmp_path, "csv", None)
    runs = {p.name: load_run(p) for p in (on, off, old_style, csv_only)}
    assert [run_structured(r) for r in runs.values()] == [True, False, True, None]

    assert check_structured_pairing([runs["on"], runs["rf"]]) == []
    with pytest.raises(AblbenchError, match="differ in --structured .*--allow-mixed-structured"):
        check_structured_pairing([runs["on"], runs["off"]])
    notes = check_structured_pairing([runs["on"], runs["off"], runs["csv"]], allow_mixed=True)
    assert any("differ in --structured" in n for n in notes) and any("csv" in n for n in notes)

    refused = subprocess.run([ABLBENCH, "analyze", str(on), str(off)], capture_output=True, text=True, timeout=120)
    assert refused.returncode == 1 and len(refused.stderr.strip().splitlines()) == 1
    assert "--allow-mixed-structured" in refused.stderr
    allowed = subprocess.run([ABLBENCH, "analyze", str(on), str(off), "--allow-mixed-structured"],
                             capture_output=True, text=True, timeout=120)
    assert allowed.returncode == 0, allowed.stderr
    assert "warning: comparing runs that differ in --structured" in allowed.stderr


@pytest.fixture(scope="module")
def transformers_server(smollm2_dir):
    from runners.servers import make_server

    with make_server("transformers", smollm2_dir) as server:
        yield server


@pytest.mark.model
@pytest.mark.slow
def test_preflight_refuses_a_server_that_ignores_response_format(transformers_server, tmp_path):
    """`ablbench run --structured` against transformers serve: one line, before any container starts."""
    env = {**os.environ, "ABLBENCH_HOME": str(tmp_path / "home")}
    res = subprocess.run(
        [ABLBENCH, "run", "--structured", "--model-url", transformers_server.base_url,
         "--model", transformers_server.model_name, "--include", "hello-world", "--out", str(tmp_path / "run")],
        capture_output=True, text=True, timeout=600, env=env)
    assert res.returncode == 1
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("error: --structured: the server at") and "does not constrain replies" in last
    # both request shapes were tried, and each got a prose reply instead of the probe object
    assert last.count("the schema was ignored") == 2 and "json_schema:" in last and "json_object:" in last
    assert "--backend llamacpp" in last and "transformers serve ignores response_format" in last
    assert not (tmp_path / "run" / "run.json").exists()
