"""``ablbench sft``: the loss mask on a real chat template, training on a tiny real model, the merged
HF folder against PEFT, the merged GGUF under llama.cpp, resume and the command line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import CliRunner
from safetensors.torch import load_file
from sft_helpers import TASKS, lora_model, trace_records, write_run
from tiny_gguf import hf_to_gguf
from tiny_models import build_tiny

from ablbench.atif import write_trajectory
from harness.agents.terminus import TerminusAgent, _Episode, history_reply
from harness.cli import app
from sft import data, tokens, train
from sft.errors import SftError
from sft.merge import merge_hf
from sft.provenance import SIDE_FILE, seen_tasks

LOGIT_TOL = 1e-5  # tests/test_bake_gguf.py: llama.cpp on an F32 file vs transformers, relative to max |logit|


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return build_tiny("llama", tmp_path_factory.mktemp("sft") / "tiny")


def _spans(seq: tokens.Encoded) -> list[list[int]]:
    """Runs of consecutive trained tokens."""
    runs: list[list[int]] = []
    prev = False
    for tok, lab in zip(seq.input_ids, seq.labels, strict=True):
        on = lab != tokens.IGNORE
        if on:
            assert lab == tok
            if not prev:
                runs.append([])
            runs[-1].append(tok)
        prev = on
    return runs


@pytest.mark.model
def test_loss_mask_is_the_replies_token_by_token(smollm2_dir):
    """SmolLM2's own template: exactly each reply and its <|im_end|> carry loss, nothing else."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(smollm2_dir)
    instruction, cmds = TASKS["make-tree"]
    recs = trace_records(instruction, cmds)
    recs[1]["reply"] = "<think>plan it</think>  " + recs[1]["reply"]  # reasoning never enters the history
    [sample] = data.samples_from_trace(recs, "make-tree", "t", history_reply)
    [(ids, labels)] = tokens.encode_sample(tok, sample)
    seq = tokens.Encoded("make-tree", ids, labels)
    full = tok.apply_chat_template(sample.messages, tokenize=False)
    assert ids == tok(full, add_special_tokens=False)["input_ids"]  # one tokenization of the whole render
    replies = [history_reply(r["reply"]) for r in recs if "turn" in r]
    assert "<think>" not in replies[0] and replies[0].startswith("{")
    end = tok.convert_tokens_to_ids("<|im_end|>")
    runs = _spans(seq)
    assert len(runs) == len(replies)
    for run, text in zip(runs, replies, strict=True):
        assert run == tok(text, add_special_tokens=False)["input_ids"] + [end]
    # every other token is prompt: the system prompt, the task, observations, role headers, line breaks
    untrained = tok.decode([t for t, lab in zip(ids, labels, strict=True) if lab == tokens.IGNORE])
    assert untrained.count("<|im_start|>assistant\n") == len(replies)
    assert "You are an AI agent operating a Linux terminal" in untrained and "New terminal output" in untrained
    assert not any(r in untrained for r in replies)


def test_trimmed_requests_are_rebuilt_as_the_agent_sent_them():
    """A trajectory whose context was trimmed becomes one sample per request shape, equal to the agent's own."""
    instruction, _ = TASKS["copy-config"]
    cmds = ["pwd", "ls", "cp /etc/hostname /app/host.txt"]
    recs = trace_records(instruction, cmds, trimmed=[0, 0, 1])
    s0, s1 = data.samples_from_trace(recs, "copy-config", "t", history_reply)
    assert [m["role"] for m in s0.messages] == ["system", "user", "assistant", "user", "assistant"]
    assert s0.trained == [False, False, True, False, True]
    # the agent's own trimming (TerminusAgent._trim) of the third request
    head = recs[0]["messages"]
    ep = _Episode(messages=[dict(m) for m in head], head=len(head), task_content=head[-1]["content"])
    for r in recs[1:3]:
        ep.messages += [{"role": "assistant", "content": history_reply(r["reply"])},
                        {"role": "user", "content": r["next_message"]}]
    assert TerminusAgent._trim(ep, keep_last=1)
    assert s1.messages[:-1] == ep.messages
    assert s1.messages[-1] == {"role": "assistant", "content": history_reply(recs[3]["reply"])}
    assert s1.trained == [False] * len(ep.messages) + [True]


def test_atif_and_harbor_trials_give_the_same_messages(tmp_path):
    """A harbor trial whose agent kept only ATIF gives the same sample as the ablbench trace it came from."""
    run = write_run(tmp_path / "run", {"make-tree": TASKS["make-tree"]})
    trace = run / "make-tree" / "1" / "trace.jsonl"
    job = tmp_path / "job" / "make-tree__abc"
    write_trajectory(trace, job / "agent" / "trajectory.json", instruction=TASKS["make-tree"][0], agent_name="x")
    (job / "result.json").write_text(json.dumps({"task_name": "make-tree", "verifier_result": {"rewards": {"reward": 1}}}))
    [t_run] = data.find_trials(run)
    [t_job] = data.find_trials(tmp_path / "job")
    assert t_job.trajectory.name == "trajectory.json" and t_job.reward == 1.0
    [a] = data.samples_from_trial(t_run, history_reply)
    [b] = data.samples_from_trial(t_job, history_reply)
    assert a.messages == b.messages and a.trained == b.trained


def test_passed_trials_only_and_split_by_task(tmp_path):
    run = write_run(tmp_path / "run", failed=("remove-tmp",))
    keep, dropped = data.select_trials([run])
    assert dropped == 1 and sorted(t.task for t in keep) == sorted(set(TASKS) - {"remove-tmp"})
    keep_all, _ = data.select_trials([run], include_failed=True)
    assert len(keep_all) == len(TASKS)
    tr, va = data.split_tasks([t.task for t in keep], 0.25, seed=3)
    assert len(va) == 1 and not set(tr) & set(va) and sorted(tr + va) == sorted(t.task for t in keep)
    assert data.split_tasks([t.task for t in keep], 0.25, seed=3) == (tr, va)  # seeded


def test_bad_input_is_one_clear_error(tmp_path, tiny):
    from sft.run import SftOptions, run_sft

    with pytest.raises(SftError, match="no such folder"):
        data.find_trials(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SftError, match="no finished trial"):
        data.find_trials(tmp_path / "empty")
    run = write_run(tmp_path / "run", {"make-tree": TASKS["make-tree"]}, failed=("make-tree",))
    with pytest.raises(SftError, match="no passed trial.*--include-failed"):
        run_sft(SftOptions(model=tiny, traces=(run,), out=tmp_path / "o"))
    with pytest.raises(SftError, match="not an HF model folder"):
        run_sft(SftOptions(model=tmp_path, traces=(run,), out=tmp_path / "o"))


def _tiny_seqs(tiny: Path, tmp_path: Path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny)
    trials, _ = data.select_trials([write_run(tmp_path / "run")])
    samples = [s for t in trials for s in data.samples_from_trial(t, history_reply)]
    seqs, dropped = tokens.encode_all(tok, samples, 4096)
    assert dropped == 0 and len(seqs) == len(TASKS)
    return tok, seqs


def test_tiny_model_loss_falls_in_a_few_steps(tiny, tmp_path):
    from transformers import AutoModelForCausalLM

    tok, seqs = _tiny_seqs(tiny, tmp_path)
    s = train.LoraSettings(epochs=6, lr=3e-3, rank=8, alpha=16, batch_tokens=1 << 20)  # one batch: 6 steps
    model = train.add_lora(AutoModelForCausalLM.from_pretrained(tiny, dtype=torch.float32), s)
    before = train.evaluate(model, seqs, tok.pad_token_id or 0, torch.device("cpu"), 1 << 20)
    state = train.train(model, seqs, s, pad_id=tok.pad_token_id or 0, device=torch.device("cpu"),
                        ckpt_dir=tmp_path / "ck")
    after = train.evaluate(model, seqs, tok.pad_token_id or 0, torch.device("cpu"), 1 << 20)
    assert state.step == 6 and len(state.curve) == 6
    # a random tiny model predicts ~uniformly (ln 384 = 5.95) and LoRA cannot rescale its tied head: the
    # fall is small but steady on the same batch
    losses = [c["loss"] for c in state.curve]
    assert abs(losses[0] - before) < 1e-4  # LoRA's B starts at zero: step 1 sees the base model
    assert all(b < a for a, b in zip(losses, losses[1:], strict=False)), losses
    assert after < before - 0.1, (before, after, losses)
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == [f"epoch-{i}" for i in range(1, 7)]


def test_merged_hf_logits_equal_the_adapter_applied_ones(tiny, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    s = train.LoraSettings(rank=4, alpha=8)
    model = lora_model(tiny, s)
    ids = torch.randint(5, 380, (1, 24), generator=torch.Generator().manual_seed(2))
    model.eval()
    with torch.no_grad():
        adapter = model(input_ids=ids).logits
        base = model.get_base_model()
        with model.disable_adapter():
            plain = model(input_ids=ids).logits
    assert (adapter - plain).abs().max() > 1e-2, "the adapter should change the logits"
    out = merge_hf(model, AutoTokenizer.from_pretrained(tiny), tmp_path / "merged", torch.float32)
    del base
    with torch.no_grad():
        merged = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()(input_ids=ids).logits
    assert (merged - adapter).abs().max() <= 1e-5


def _llamacpp_logits(path: Path, ids: list[int]) -> np.ndarray:
    from conftest import missing

    try:
        import llama_cpp
    except ImportError:
        missing("llama-cpp-python is not installed (scripts/setup.sh builds it)")
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=64, n_batch=64, n_threads=1, logits_all=True,
                          verbose=False, seed=0, type_k=0, type_v=0)  # F32 KV cache, as the bake tests
    try:
        llm.eval(ids)
        return np.array(llm.scores[: len(ids)], dtype=np.float64)
    finally:
        llm.close()


@pytest.mark.slow
def test_cli_trains_merges_to_gguf_resumes_and_llamacpp_agrees(tiny, tmp_path):
    """The verb end to end on a tiny llama: sft.json, merged GGUF == merged HF under llama.cpp, resume, rerun."""
    import gguf
    from transformers import AutoModelForCausalLM

    run = write_run(tmp_path / "run", failed=("remove-tmp",))
    base_gguf = hf_to_gguf(tiny, tmp_path / "tiny.gguf")
    out = tmp_path / "out"
    args = ["sft", "--model", str(tiny), "--traces", str(run), "--out", str(out), "--gguf", str(base_gguf),
            "--epochs", "2", "--lr", "1e-2", "--rank", "4", "--alpha", "8", "--batch-tokens", "2048", "--quiet"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    rep = json.loads((out / "sft.json").read_text())
    assert rep["data"]["not_passed_left_out"] == 1 and len(rep["data"]["files"]) == 4
    assert all(len(f["sha256"]) == 64 for f in rep["data"]["files"])
    assert len(rep["split"]["validation_tasks"]) == 1
    assert not set(rep["split"]["train_tasks"]) & set(rep["split"]["validation_tasks"])
    assert rep["validation_loss"]["before"] > 0 and rep["validation_loss"]["after"] > 0
    assert rep["hyperparameters"]["rank"] == 4 and rep["seed"] == 0 and rep["versions"]["peft"] != "missing"
    assert [c["epoch"] for c in rep["loss_curve"]][-1] == 2
    # both merged outputs name the tasks the data came from (training and validation)
    seen = sorted(rep["split"]["train_tasks"] + rep["split"]["validation_tasks"])
    assert seen_tasks(out / "merged") == seen == seen_tasks(out / "merged.gguf") and len(seen) == 4
    assert seen_tasks(base_gguf) is None and seen_tasks(tiny) is None

    # the merged GGUF: same names, types of unchanged tensors, and llama.cpp gives the merged HF model's logits
    src, got = gguf.GGUFReader(base_gguf), gguf.GGUFReader(out / "merged.gguf")
    assert [t.name for t in src.tensors] == [t.name for t in got.tensors]
    changed = {e["gguf"] for e in rep["outputs"]["gguf"]["edited"]}
    assert changed and all(".attn_" in n or ".ffn_" in n for n in changed)
    for a, b in zip(src.tensors, got.tensors, strict=True):
        same = bytes(a.data.tobytes()) == bytes(b.data.tobytes())
        assert same == (a.name not in changed), a.name
    ids = [int(i) for i in torch.randint(5, 380, (16,), generator=torch.Generator().manual_seed(11))]
    with torch.no_grad():
        ref = AutoModelForCausalLM.from_pretrained(out / "merged", dtype=torch.float32)(
            input_ids=torch.tensor([ids])).logits[0].double().numpy()
    cpp = _llamacpp_logits(out / "merged.gguf", ids)
    assert np.abs(cpp - ref).max() <= LOGIT_TOL * np.abs(ref).max()
    assert np.abs(_llamacpp_logits(base_gguf, ids) - ref).max() > 1e-3 * np.abs(ref).max(), "SFT changed nothing"

    # a rerun with the same data and settings is a no-op; other settings into the same folder are refused
    (out / "merged" / SIDE_FILE).unlink()  # as an output from before the record existed: restored
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0 and "up to date" in again.output
    assert seen_tasks(out / "merged") == seen
    other = CliRunner().invoke(app, [*args[:-1], "--seed", "1", "--quiet"])
    assert other.exit_code == 1 and "another training" in other.output

    # killed after epoch 1: the rerun resumes there and ends with the same adapter
    first = load_file(str(out / "adapter" / "adapter_model.safetensors"))
    shutil.rmtree(out / "checkpoints" / "epoch-2")
    for p in ("sft.json", "merged.gguf"):
        (out / p).unlink()
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert json.loads((out / "sft.json").read_text())["resumed_from_epoch"] == 1
    second = load_file(str(out / "adapter" / "adapter_model.safetensors"))
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)

    # more epochs extend the same training
    res = CliRunner().invoke(app, [*args[:args.index("--epochs")], "--epochs", "3", *args[args.index("--epochs") + 2:]])
    assert res.exit_code == 0, res.output
    rep3 = json.loads((out / "sft.json").read_text())
    assert rep3["resumed_from_epoch"] == 2 and rep3["loss_curve"][-1]["epoch"] == 3
    assert rep3["loss_curve"][: len(rep["loss_curve"])] == rep["loss_curve"]


def test_the_demo_trains_on_training_tasks_and_evaluates_on_the_others(tmp_path):
    """scripts/demo.sh replays tasks/train for SFT and benchmarks the default (evaluation) set: the SFT
    data's task names, as `ablbench sft` reads them from a run of those tasks, never meet the evaluation's."""
    import re
    import shlex

    from ablbench.paths import BUNDLED_TASKS, REPO_ROOT, TRAIN_TASKS
    from harness.tasks import discover_tasks

    script = (REPO_ROOT / "scripts" / "demo.sh").read_text()
    sft = next(line for line in script.splitlines() if line.strip().startswith("\"$ABL\" sft "))
    words = shlex.split(sft.replace('"$ABL"', "ablbench").rstrip("\\ "))
    assert "--replay" in words and "--traces" not in words  # the replays are its only data
    assert (REPO_ROOT / words[words.index("--tasks") + 1]).resolve() == TRAIN_TASKS.resolve()
    bench = script[script.index("scripts/full_bench_parallel.sh"):]
    assert not re.search(r"--tasks\b", bench.split("\n\n")[0])  # the benchmark runs the default set

    train = discover_tasks(TRAIN_TASKS)
    evaluation = {s.name for s in discover_tasks(BUNDLED_TASKS)}
    # a run folder of the training tasks, laid out as `ablbench run` writes it, read by sft.data
    run = write_run(tmp_path / "replays", {s.name: (s.instruction, ["true"]) for s in train})
    trials, _ = data.select_trials([run])
    sft_tasks = {t.task for t in trials}
    assert len(sft_tasks) == len(train) >= 40 and len(evaluation) == 12
    assert not sft_tasks & evaluation


@pytest.mark.docker
@pytest.mark.slow
def test_replay_then_train_in_one_command(tiny, base_image, tmp_path):
    """`sft --replay --tasks DIR`: the tasks' reference solutions replayed in containers are the data,
    sft.json says so; a rerun resumes the replays and the training alike; --tasks alone is one line."""
    from ablbench.paths import TRAIN_TASKS

    tasks = tmp_path / "tasks"
    for name in ("copy-logs-glob", "touch-ready-marker", "count-city-lines"):
        shutil.copytree(TRAIN_TASKS / name, tasks / name)
    out = tmp_path / "out"
    args = ["sft", "--model", str(tiny), "--replay", "--tasks", str(tasks), "--parallel", "2", "--out", str(out),
            "--epochs", "1", "--rank", "4", "--alpha", "8", "--val-fraction", "0.34", "--quiet"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    rep = json.loads((out / "sft.json").read_text())
    replay = rep["data"]["replay"]
    assert replay["trials"] == {"passed": 3} and replay["run"] == str(out / "replays")
    assert rep["data"]["sources"] == [str(out / "replays")] and len(rep["data"]["files"]) == 3
    trained = set(rep["split"]["train_tasks"]) | set(rep["split"]["validation_tasks"])
    assert trained == {"copy-logs-glob", "touch-ready-marker", "count-city-lines"}
    assert rep["validation_loss"]["after"] < rep["validation_loss"]["before"]

    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0 and "up to date" in again.output, again.output
    assert "3 passed" in again.output  # the resumed replay kept its trials

    alone = CliRunner().invoke(app, ["sft", "--model", str(tiny), "--tasks", str(tasks), "--out", str(tmp_path / "x")])
    assert alone.exit_code == 1 and alone.output.strip().count("\n") == 0 and "add --replay" in alone.output


def test_a_sweep_refuses_to_evaluate_a_model_on_its_own_training_tasks(tmp_path):
    """full_bench_parallel.sh stops in one line, before serving, when an SFT model (or an edit of one:
    the side file travels with it) met any evaluated task; --exclude of those tasks lets it through."""
    import subprocess
    import sys

    from ablbench.paths import REPO_ROOT
    from harness.run_options import RunOptions
    from harness.sweep import SweepOptions, check_unseen_tasks

    model = tmp_path / "sft-abliterated"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / SIDE_FILE).write_text(json.dumps({"tasks": ["copy-logs-glob", "hello-world", "make-output-dir"]}))
    res = subprocess.run([sys.executable, "-m", "harness.sweep", "--model", f"edited={model}", "--out", str(tmp_path / "o")],
                         capture_output=True, text=True, cwd=REPO_ROOT, timeout=120)
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr.strip().count("\n") == 0, res.stderr
    assert "fine-tuned on 2 of the tasks to evaluate (hello-world, make-output-dir)" in res.stderr
    assert not (tmp_path / "o").exists()  # nothing served, nothing written
    check_unseen_tasks([("edited", model)], RunOptions(exclude=("hello-world", "make-output-dir")))
    assert SweepOptions().run.tasks is None  # the default set is the one checked above
