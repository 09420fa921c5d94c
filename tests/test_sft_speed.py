"""``ablbench sft``'s speed-ups stay exact: the shared prompt prefix gives the full batch's loss and
gradients, adapters on the upper layers only merge exactly, and bf16 base weights still learn."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from sft_helpers import lora_model, write_run
from tiny_models import build_tiny

from harness.agents.terminus import history_reply
from sft import data, tokens, train
from sft.errors import SftError
from sft.merge import changed_tensors, merge_hf
from sft.run import SftOptions, run_sft

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return build_tiny("llama", tmp_path_factory.mktemp("sft_speed") / "tiny")


@pytest.fixture(scope="module")
def seqs(tiny, tmp_path_factory) -> list[tokens.Encoded]:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny)
    trials, _ = data.select_trials([write_run(tmp_path_factory.mktemp("sft_speed_run") / "run")])
    out, dropped = tokens.encode_all(tok, [s for t in trials for s in data.samples_from_trial(t, history_reply)], 4096)
    assert dropped == 0 and len(out) == 5
    return out


def _model(tiny: Path, s: train.LoraSettings, dtype=torch.float32):
    model = lora_model(tiny, s)
    train.cast_frozen(model, dtype)
    return model


def _loss_and_grads(model, batch, share: bool) -> tuple[float, int, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    loss, n = train.batch_loss(model, batch, share)
    (loss / n).backward()
    return float(loss.detach()), n, torch.cat([p.grad.flatten() for p in model.parameters() if p.requires_grad])


@pytest.mark.parametrize("lora_layers", [1.0, 0.5])
def test_the_shared_prefix_gives_the_full_batchs_loss_and_gradients(tiny, seqs, lora_layers):
    model = _model(tiny, train.LoraSettings(rank=4, alpha=8, lora_layers=lora_layers))
    batch = train.collate(seqs, list(range(len(seqs))), 0, CPU)
    p = train.shared_prefix(batch)
    # the system prompt and more: every row starts with it, and no position before p + 1 carries loss
    assert p >= train.MIN_SHARED
    assert (batch["input_ids"][:, :p] == batch["input_ids"][:1, :p]).all()
    assert (batch["labels"][:, : p + 1] == tokens.IGNORE).all()
    ids, lengths = batch["input_ids"], batch["attention_mask"].sum(1)
    assert ((ids[:, p] != ids[0, p]).any() or (batch["labels"][:, p + 1] != tokens.IGNORE).any()
            or p == int(lengths.min()) - 1), "the prefix stops at the first reason to"
    full, n_full, g_full = _loss_and_grads(model, batch, share=False)
    shared, n_shared, g_shared = _loss_and_grads(model, batch, share=True)
    assert n_full == n_shared == sum(s.trained_tokens for s in seqs)
    assert abs(full - shared) <= 1e-5 * abs(full)
    assert (g_full - g_shared).norm() <= 1e-5 * g_full.norm()
    # and that is the sum of the rows taken one at a time
    rows = sum(float(train.batch_loss(model, train.collate(seqs, [i], 0, CPU))[0]) for i in range(len(seqs)))
    assert abs(rows - shared) <= 1e-5 * abs(rows)


def test_a_batch_with_nothing_in_common_or_one_row_is_not_split(seqs):
    one = train.collate(seqs, [0], 0, CPU)
    assert train.shared_prefix(one) == 0
    two = train.collate(seqs, [0, 1], 0, CPU)
    two["input_ids"][1, 3] += 1  # the rows now differ at position 3
    assert train.shared_prefix(two) == 3


def test_upper_layer_adapters_leave_the_lower_layers_alone_and_merge_exactly(tiny, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = _model(tiny, train.LoraSettings(rank=4, alpha=8, lora_layers=0.5))
    adapted = {int(n.split(".layers.")[1].split(".")[0]) for n, _ in model.named_parameters() if "lora_" in n}
    assert adapted == {2, 3}  # the top half of the tiny model's 4 layers
    kinds = {n.split(".lora_")[0].rsplit(".", 1)[-1] for n, _ in model.named_parameters() if "lora_A" in n}
    assert kinds == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}  # all-linear
    ids = torch.randint(5, 380, (1, 24), generator=torch.Generator().manual_seed(2))
    model.eval()
    with torch.no_grad():
        adapter = model(input_ids=ids).logits
        with model.disable_adapter():
            plain = model(input_ids=ids).logits
    assert (adapter - plain).abs().max() > 1e-2, "the adapter should change the logits"
    out = merge_hf(model, AutoTokenizer.from_pretrained(tiny), tmp_path / "merged", torch.float32)
    with torch.no_grad():
        merged = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()(input_ids=ids).logits
    assert (merged - adapter).abs().max() <= 1e-5


def test_a_module_pattern_cannot_take_a_layer_share(tiny):
    with pytest.raises(SftError, match="--target-modules.*pattern"):
        _model(tiny, train.LoraSettings(lora_layers=0.5, target_modules=r".*proj"))
    model = _model(tiny, train.LoraSettings(lora_layers=0.25, target_modules="q_proj, v_proj"))
    names = [n for n, _ in model.named_parameters() if "lora_A" in n]
    assert len(names) == 2 and all(".layers.3." in n for n in names)


def test_bf16_base_weights_with_fp32_adapters_learn(tiny, seqs, tmp_path):
    s = train.LoraSettings(epochs=6, lr=3e-3, rank=8, alpha=16, batch_tokens=1 << 20, lora_layers=0.5)
    model = _model(tiny, s, torch.bfloat16)
    assert {p.dtype for p in model.parameters() if p.requires_grad} == {torch.float32}
    assert {p.dtype for p in model.parameters() if not p.requires_grad} == {torch.bfloat16}
    before = train.evaluate(model, seqs, 0, CPU, 1 << 20)
    state = train.train(model, seqs, s, pad_id=0, device=CPU, ckpt_dir=tmp_path / "ck")
    after = train.evaluate(model, seqs, 0, CPU, 1 << 20)
    losses = [c["loss"] for c in state.curve]
    assert losses[-1] < losses[0] and after < before - 0.05, (before, after, losses)


def test_run_sft_records_the_speed_settings_and_merges_in_fp32_on_the_cpu(tiny, tmp_path):
    run = write_run(tmp_path / "run")
    o = SftOptions(model=tiny, traces=(run,), out=tmp_path / "o", epochs=1, rank=4, alpha=8, dtype="bfloat16",
                   lora_layers=0.5, quiet=True)
    rep = run_sft(o, history_reply=history_reply, log=lambda m: None)
    h = rep["hyperparameters"]
    assert h["dtype"] == "bfloat16" and h["validation_and_merge_dtype"] == "float32"
    assert h["lora_layers"] == 0.5 and h["share_prefix"] is True and rep["throughput_tokens_per_s"] > 0
    assert json.loads((tmp_path / "o" / "merged" / "config.json").read_text())["dtype"] == "float32"
    # the frozen weights went through bf16 for training and came back unrounded: only the top layers changed
    changed = changed_tensors(tiny, tmp_path / "o" / "merged")
    assert changed and all(".layers.2." in n or ".layers.3." in n for n in changed), changed
    with pytest.raises(SftError, match="--lora-layers 0"):
        run_sft(SftOptions(model=tiny, traces=(run,), out=tmp_path / "o2", lora_layers=0))


def test_threads_default_to_the_cpus_idle_now(monkeypatch):
    """With every usable CPU kept busy, training takes one thread; ABLBENCH_TORCH_THREADS overrides."""
    import os
    import subprocess
    import sys

    monkeypatch.delenv("ABLBENCH_TORCH_THREADS", raising=False)
    cpus = len(os.sched_getaffinity(0))
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(cpus)]
    try:
        assert train.default_threads(sample_s=0.5) == 1
    finally:
        for b in burners:
            b.kill()
            b.wait()
    monkeypatch.setenv("ABLBENCH_TORCH_THREADS", "3")
    assert train.default_threads() == 3
