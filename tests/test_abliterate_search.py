"""``abliterate search``: the Optuna study survives SIGKILL, the Pareto front and the choice rule
are right, and the chosen trial's bake equals its hook-ablated model.

Tiny random models (tests/tiny_models.py) and real subprocesses; a few seconds per test.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_models import build_tiny
from tiny_runs import build_tiny_run

from abliterate.bake.run import bake
from abliterate.model import load_model
from abliterate.search.front import choose_trial, dominates
from abliterate.search.run import SearchOptions, bake_kwargs, run_search
from abliterate.search.space import from_params
from abliterate.search.study import STUDY_FILE, completed, pareto_trials, run_study
from abliterate.writer_hooks import ablated_writers

ABLBENCH = str(Path(sys.executable).parent / "ablbench")
SEARCH_ARGS = ["--trials", "6", "--seed", "3", "--prompts", "4", "--gen-tokens", "48", "--format-tokens", "48"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    return build_tiny_run(tmp_path_factory.mktemp("tiny-search"))


def _states(db: Path) -> dict[str, int]:
    if not db.is_file():
        return {}
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as con:
            return dict(con.execute("SELECT state, count(*) FROM trials GROUP BY state").fetchall())
    except sqlite3.OperationalError:  # tables not created yet, or locked for a moment
        return {}


def _load(folder: Path):
    import optuna

    return optuna.load_study(study_name="abliterate-search", storage=f"sqlite:///{folder / STUDY_FILE}")


def test_sigkill_mid_study_then_resume_loses_and_repeats_nothing(tiny_run, tmp_path):
    model, run = tiny_run
    run2 = tmp_path / "run"
    import shutil

    shutil.copytree(run, run2)
    db = run2 / "search" / STUDY_FILE
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1]), "ABLBENCH_TORCH_THREADS": "1"}
    cmd = [ABLBENCH, "abliterate", "search", "--model", str(model), "--run", str(run2), *SEARCH_ARGS]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            st = _states(db)
            if st.get("COMPLETE", 0) >= 2 and st.get("RUNNING", 0) == 1:
                break
            assert proc.poll() is None, proc.stdout.read().decode()
            time.sleep(0.02)
        else:
            pytest.fail(f"the search never reached 2 complete trials and a running one: {_states(db)}")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    before = _load(run2 / "search")
    done_before = {t.number: (t.params, t.values) for t in completed(before)}
    running = [t for t in before.trials if t.state.name == "RUNNING"]
    assert len(done_before) >= 2 and len(running) == 1
    killed = running[0]

    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"resume: trial(s) [{killed.number}] were interrupted" in res.stdout
    after = _load(run2 / "search")
    done = completed(after)
    assert len(done) == 6  # the budget counts complete trials
    for t in done:  # nothing completed before the kill was rerun or changed
        if t.number in done_before:
            assert (t.params, t.values) == done_before[t.number]
    failed = [t for t in after.trials if t.state.name == "FAIL"]
    assert [t.number for t in failed] == [killed.number] and failed[0].user_attrs["interrupted"] is True
    retries = [t for t in done if t.user_attrs.get("retry_of") == killed.number]
    assert len(retries) == 1 and all(retries[0].params[k] == v for k, v in killed.params.items())
    keys = [json.dumps(t.params, sort_keys=True) for t in done]
    assert len(set(keys)) == len(keys)  # the resumed sampler did not replay the first session's draws
    chosen = json.loads((run2 / "search" / "chosen.json").read_text())
    assert chosen["trials_complete"] == 6 and chosen["trial"] in {t.number for t in done}


def test_pareto_front_and_choice_on_a_synthetic_objective(tmp_path):
    def space(trial):
        return trial.suggest_float("x", 0, 1), trial.suggest_float("y", 0, 1)

    def evaluate(p):
        x, y = p
        return {"refusal": round(x, 1), "kl": (1 - x) ** 2 + 0.1 * y, "format_damage": round(y * (1 - x), 1)}

    objectives = ["refusal", "kl", "format_damage"]
    study = run_study(tmp_path, objectives=objectives, space=space, evaluate=evaluate, trials=24, seed=1)
    done = completed(study)
    assert len(done) == 24
    brute = {a.number for a in done if not any(dominates(b.values, a.values) for b in done if b is not a)}
    assert {t.number for t in pareto_trials(study)} == brute
    # the same seed gives the same study
    again = run_study(tmp_path / "again", objectives=objectives, space=space, evaluate=evaluate, trials=24, seed=1)
    assert [t.params for t in completed(again)] == [t.params for t in done]

    rows = [{"trial": t.number, **dict(zip(objectives, t.values, strict=True))} for t in pareto_trials(study)]
    best, reason = choose_trial(rows, objectives, {"refusal": 0.5, "format_damage": 0.2}, kl_bound=10.0)
    ok = [r for r in rows if r["format_damage"] <= 0.3 + 1e-12]
    assert best["refusal"] == min(r["refusal"] for r in ok) and "lowest refusal" in reason


def test_choice_rule_guards_and_relaxation():
    objs = ["refusal", "kl", "format_damage"]
    rows = [
        {"trial": 0, "refusal": 0.0, "kl": 0.5, "format_damage": 0.9},  # breaks the format
        {"trial": 1, "refusal": 0.2, "kl": 0.05, "format_damage": 0.1},
        {"trial": 2, "refusal": 0.1, "kl": 0.3, "format_damage": 0.1},  # KL too high
        {"trial": 3, "refusal": 0.2, "kl": 0.02, "format_damage": 0.2},  # tie on refusal, lower KL
    ]
    best, _ = choose_trial(rows, objs, {"refusal": 0.8, "format_damage": 0.1})
    assert best["trial"] == 3
    best, reason = choose_trial(rows[:1] + rows[2:3], objs, {"refusal": 0.8, "format_damage": 0.1})
    assert best["trial"] == 2 and "relaxed" in reason and "least damaged" not in reason
    best, reason = choose_trial(rows[:1], objs, {"refusal": 0.0, "format_damage": 0.0})
    assert best["trial"] == 0 and "least damaged" in reason and "cannot guide" in reason


def test_chosen_trial_bakes_to_the_hook_ablated_logits(tiny_run, tmp_path):
    model, run = tiny_run
    lm = load_model(model, device="cpu", dtype="float32")
    doc = run_search(model, run, SearchOptions(trials=3, prompts=3, gen_tokens=4, format_tokens=4),
                     format_check=lambda t: t.strip().startswith("{"), lm=lm, log=lambda _m: None)
    kw = bake_kwargs(doc)
    bake(model, doc["direction_file"], tmp_path / "baked", progress=False, **kw)
    baked = load_model(tmp_path / "baked", device="cpu", dtype="float32")
    params = from_params(doc["params"], lm.n_layers)
    direction = torch.load(doc["direction_file"], weights_only=True)
    ids = torch.tensor([[5, 17, 40, 99, 3, 250, 11, 7]])
    with torch.no_grad(), ablated_writers(lm, direction, params.profiles(), components=doc["components"]):
        hooked = lm.model(input_ids=ids).logits
    with torch.no_grad():
        plain, edited = lm.model(input_ids=ids).logits, baked.model(input_ids=ids).logits
    torch.testing.assert_close(edited, hooked, atol=2e-5, rtol=1e-5)
    assert (edited - plain).abs().max() > 1e-3  # the edit did something


@pytest.mark.parametrize("family", ["qwen2", "gemma2", "qwen3_moe"])
def test_hook_mirror_of_the_bake_across_families(family, tmp_path):
    """Tied embeddings (qwen2), post-norm correction (gemma2), MoE experts (qwen3_moe)."""
    model = build_tiny(family, tmp_path / "m")
    lm = load_model(model, device="cpu", dtype="float32")
    params = from_params({"variant": "diff", "direction_index": 1.5, "attn.max_weight": 1.2,
                          "attn.max_weight_position": 2.2, "attn.min_weight": 0.4, "attn.min_weight_distance": 1.5,
                          "mlp.max_weight": 0.9, "mlp.max_weight_position": 2.8, "mlp.min_weight": 0.2,
                          "mlp.min_weight_distance": 1.6}, lm.n_layers)
    r = torch.from_numpy(np.random.default_rng(0).standard_normal(lm.d_model))
    profiles = {**params.profiles(), "embed": 0.7}
    bake(model, r, tmp_path / "b", progress=False, **profiles)
    ids = torch.tensor([[5, 17, 40, 99, 3, 250, 11]])
    with torch.no_grad(), ablated_writers(lm, r, profiles):
        hooked = lm.model(input_ids=ids).logits
    with torch.no_grad():
        baked = load_model(tmp_path / "b", device="cpu", dtype="float32").model(input_ids=ids).logits
    torch.testing.assert_close(baked, hooked, atol=2e-5, rtol=1e-5)


def test_pipeline_with_search_bakes_the_chosen_profile(tmp_path):
    from tiny_runs import with_system

    from abliterate.contrast import plain_user
    from abliterate.pipeline import PipelineOptions, run_pipeline
    from abliterate.prompts import builtin_prompts

    model = build_tiny("llama", tmp_path / "m")
    items = builtin_prompts()[:10]
    opts = PipelineOptions(eval_fraction=0.4, search=True, search_trials=3, search_prompts=2, search_gen_tokens=4,
                           search_format_tokens=4, report_prompts=2, report_tokens=4, eval_tokens=4, eval_limit=2,
                           rd=False, show_progress=False, device="cpu")
    summary = run_pipeline(model, tmp_path / "run", refuse_items=items, comply_items=items, refuse_messages=plain_user,
                           comply_messages=with_system, options=opts, format_check=lambda t: "{" in t)
    out = tmp_path / "run"
    chosen = json.loads((out / "search" / "chosen.json").read_text())
    choice = json.loads((out / "reports" / "choice.json").read_text())
    assert summary["search"] is True and "search" in summary["steps"] and "choose" not in summary["steps"]
    assert choice["source"] == "search" and choice["chosen_layer"] == chosen["direction_index"]
    baked = json.loads((out / "abliterated_model" / "abliteration.json").read_text())
    assert baked["components"] == ["attn", "mlp", "experts"]
    assert baked["profiles"]["attn"] == chosen["profiles"]["attn"]
    torch.testing.assert_close(torch.load(out / "vectors" / "refusal_dir.pt", weights_only=True),
                               torch.load(chosen["direction_file"], weights_only=True))
    assert summary["direction_verdict"] and (out / "reports" / "direction_report.json").is_file()
