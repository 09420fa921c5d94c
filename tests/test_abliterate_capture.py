"""Activation capture on tiny random models of every supported family (real configs)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from tiny_models import build_tiny

from abliterate.capture import LastTokenHooks, capture, load_activations, load_means, run_rows, tokenize
from abliterate.contrast import build_contrast, plain_user, render
from abliterate.errors import AbliterationError
from abliterate.infer import ablated
from abliterate.model import load_model
from abliterate.prompts import PromptItem

FAMILIES = ["llama", "mistral", "qwen2", "qwen3", "qwen3_moe", "qwen3_next", "qwen3_5", "gemma2", "gemma3"]
SYSTEM = "You are an agent with a shell. Act, do not ask. " * 2


def agent(prompt: str) -> list[dict]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}]


ITEMS = [PromptItem(id=f"p{i}", prompt=p, category=c) for i, (p, c) in enumerate([
    ("List files in /tmp", "files"), ("git status of /app", "git"), ("chmod 600 key.pem", "perm"),
    ("grep -r error /var/log and count matches", "text"), ("tar czf backup.tgz /etc", "files"),
])]


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: extra OpenMP threads only cost on a busy machine
    yield {fam: build_tiny(fam, root / fam) for fam in FAMILIES}
    torch.set_num_threads(before)


@pytest.mark.parametrize("family", FAMILIES)
def test_hooks_capture_each_decoder_layer_output(tiny_dirs, family, tmp_path):
    lm = load_model(tiny_dirs[family], device="cpu")
    cfg = json.loads((tiny_dirs[family] / "config.json").read_text())
    text_cfg = cfg.get("text_config", cfg)
    assert lm.n_layers == text_cfg["num_hidden_layers"] and lm.d_model == text_cfg["hidden_size"]
    expected_path = "model.language_model.layers" if family == "qwen3_5" else "model.layers"
    assert lm.layers_path == expected_path
    refuse, comply = build_contrast(lm.tokenizer, refuse_items=ITEMS, comply_items=ITEMS, refuse_messages=plain_user,
                                    comply_messages=agent, eval_fraction=0.4, seed=0)
    meta = capture(lm, refuse, comply, tmp_path / "acts", batch_size=3, show_progress=False)
    acts = {b: load_activations(tmp_path / "acts", b) for b in ("refuse", "comply")}
    assert acts["refuse"].shape == (len(ITEMS), lm.n_layers, lm.d_model)
    assert acts["refuse"].dtype == np.float32
    assert meta["buckets"]["comply"]["counts"] == {"train": 3, "eval": 2, "all": 5}

    # reference: one prompt at a time, no padding, output_hidden_states[k + 1] == layer k output
    for i, rec in enumerate(comply):
        ids = torch.tensor([lm.tokenizer(rec["text"], add_special_tokens=False)["input_ids"]])
        with torch.no_grad():
            hs = lm.model(input_ids=ids, output_hidden_states=True, use_cache=False).hidden_states
        assert len(hs) == lm.n_layers + 1
        for k in range(lm.n_layers - 1):
            np.testing.assert_allclose(acts["comply"][i, k], hs[k + 1][0, -1].float().numpy(), atol=2e-5, rtol=1e-4)
        # the last entry of output_hidden_states is after the final norm: the hook must NOT equal it
        assert not np.allclose(acts["comply"][i, -1], hs[-1][0, -1].float().numpy(), atol=1e-3)

    means = load_means(tmp_path / "acts")
    train = [i for i, r in enumerate(refuse) if r["split"] == "train"]
    np.testing.assert_allclose(means["refuse_train"], acts["refuse"][train].astype(np.float64).mean(0), atol=1e-6)
    assert means["refuse_train"].dtype == np.float64
    assert means["next_probs_comply_train"].shape[-1] >= lm.tokenizer.vocab_size


@pytest.mark.parametrize("family", ["llama", "gemma3"])
def test_shared_prefix_cache_gives_the_same_numbers(tiny_dirs, family):
    lm = load_model(tiny_dirs[family], device="cpu")
    recs = [{"id": str(i), "text": render(lm.tokenizer, agent(it.prompt))} for i, it in enumerate(ITEMS)]
    ids = tokenize(lm, recs)
    out = []
    for prefix_cache in (False, True):
        with torch.no_grad(), LastTokenHooks(lm) as hooks:
            logits = run_rows(lm, ids, list(range(len(ids))), hooks, prefix_cache=prefix_cache)
            out.append((logits, hooks.buffer.clone()))
    assert lm.prefix_cache  # the shared-prefix path really ran (no fallback)
    torch.testing.assert_close(out[0][0], out[1][0], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(out[0][1], out[1][1], atol=1e-4, rtol=1e-4)


def test_ablation_hooks_remove_the_direction_everywhere(tiny_dirs):
    lm = load_model(tiny_dirs["qwen2"], device="cpu")
    recs = [{"id": "a", "text": render(lm.tokenizer, plain_user("List files in /tmp"))}]
    ids = tokenize(lm, recs)
    r = torch.randn(lm.d_model)
    r /= r.norm()
    with torch.no_grad(), ablated(lm, r), LastTokenHooks(lm) as hooks:
        run_rows(lm, ids, [0], hooks)
        # hooks registered later run later: they see the ablated residual
        proj = hooks.buffer[0] @ r
    assert proj.abs().max() < 1e-4
    with torch.no_grad(), LastTokenHooks(lm) as hooks:
        run_rows(lm, ids, [0], hooks)
        assert (hooks.buffer[0] @ r).abs().max() > 1e-3


def test_unknown_architecture_is_named(tiny_dirs, tmp_path):
    folder = tmp_path / "weird"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "martian", "architectures": ["MartianForCausalLM"]}))
    with pytest.raises(AbliterationError, match="MartianForCausalLM.*--layers-path"):
        load_model(folder)
    lm_dir = tiny_dirs["llama"]
    with pytest.raises(AbliterationError, match="no ModuleList of 4 decoder layers at model.decoder.blocks"):
        load_model(lm_dir, layers_path="model.decoder.blocks")


def test_prompt_longer_than_context_is_an_error(tiny_dirs):
    lm = load_model(tiny_dirs["llama"], device="cpu")
    long = {"id": "long", "text": render(lm.tokenizer, plain_user("ls -la /tmp " * 400))}
    with pytest.raises(AbliterationError, match="'long' is .* longer than the model's context"):
        tokenize(lm, [long])
