"""Preflight of model folders: real SmolLM2 files, real tiny checkpoints, and broken copies of them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from runners.preflight import check_model, compare_to_base, errors

pytestmark = pytest.mark.model

SMALL_FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
               "chat_template.jinja")


def messages(problems, severity=None):
    return [p.message for p in problems if severity is None or p.severity == severity]


@pytest.fixture
def smol_copy(smollm2_dir, tmp_path) -> Path:
    """SmolLM2's small files copied, its weights hard-linked (or copied) into a new folder."""
    out = tmp_path / "edited"
    out.mkdir()
    for name in SMALL_FILES:
        shutil.copy2(smollm2_dir / name, out / name)
    try:
        os.link(smollm2_dir / "model.safetensors", out / "model.safetensors")
    except OSError:
        shutil.copy2(smollm2_dir / "model.safetensors", out / "model.safetensors")
    return out


def set_json(path: Path, **changes) -> None:
    data = json.loads(path.read_text())
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    path.write_text(json.dumps(data))


def fake_weights(folder: Path, names: list[str], dtype=np.float32) -> None:
    """Replace the weights by small tensors with the given names (only headers matter)."""
    (folder / "model.safetensors").unlink(missing_ok=True)
    save_file({n: np.zeros((4, 4), dtype=dtype) for n in names}, str(folder / "model.safetensors"))


def test_bundled_model_is_clean(smollm2_dir):
    assert check_model(smollm2_dir) == []
    assert check_model(smollm2_dir, base=smollm2_dir) == []


@pytest.mark.parametrize("family", ["llama", "qwen3", "gemma2"])
def test_fresh_tiny_checkpoints_pass(tmp_path, family):
    import torch

    sys.path.insert(0, str(Path(__file__).parent))
    from tiny_models import build_tiny

    folder = build_tiny(family, tmp_path / family, dtype=torch.bfloat16, shards=2 if family == "llama" else 1)
    assert check_model(folder) == []
    fp32 = build_tiny(family, tmp_path / f"{family}-fp32")
    problems = check_model(fp32)
    assert errors(problems) == []
    assert any("not all bf16" in m for m in messages(problems, "warning"))


def test_missing_chat_template_and_tokenizer(smol_copy):
    (smol_copy / "chat_template.jinja").unlink()
    (smol_copy / "tokenizer.json").unlink()
    errs = messages(check_model(smol_copy), "error")
    assert any("no chat template" in m for m in errs)
    assert any("no tokenizer" in m for m in errs)


def test_chat_template_in_tokenizer_config_is_accepted(smol_copy):
    template = (smol_copy / "chat_template.jinja").read_text()
    (smol_copy / "chat_template.jinja").unlink()
    set_json(smol_copy / "tokenizer_config.json", chat_template=template)
    assert errors(check_model(smol_copy)) == []


def test_generation_config_missing_or_without_turn_end(smol_copy):
    gen = smol_copy / "generation_config.json"
    set_json(gen, eos_token_id=0)  # <|endoftext|> only: <|im_end|> (2) would not stop generation
    errs = messages(check_model(smol_copy), "error")
    assert len(errs) == 1 and "<|im_end|>=2" in errs[0]
    set_json(gen, eos_token_id=[0, 2])
    assert check_model(smol_copy) == []
    set_json(gen, eos_token_id=None)
    assert any("no eos_token_id" in m for m in messages(check_model(smol_copy), "error"))
    gen.unlink()
    assert any("generation_config.json missing" in m for m in messages(check_model(smol_copy), "error"))


def test_tied_embeddings_must_match_tensors(smol_copy):
    cfg = smol_copy / "config.json"
    fake_weights(smol_copy, ["model.embed_tokens.weight", "lm_head.weight"], dtype=np.float16)
    errs = messages(check_model(smol_copy), "error")  # config says tied (true)
    assert len(errs) == 1 and "lm_head.weight is stored" in errs[0]
    set_json(cfg, tie_word_embeddings=False)
    assert errors(check_model(smol_copy)) == []
    fake_weights(smol_copy, ["model.embed_tokens.weight"], dtype=np.float16)
    errs = messages(check_model(smol_copy), "error")
    assert len(errs) == 1 and "no lm_head.weight" in errs[0]
    # absent from config.json: the Llama class default (untied) applies
    set_json(cfg, tie_word_embeddings=None)
    assert any("no lm_head.weight" in m for m in messages(check_model(smol_copy), "error"))


def test_dtype_warnings(smol_copy):
    fake_weights(smol_copy, ["model.embed_tokens.weight"], dtype=np.float32)
    set_json(smol_copy / "config.json", dtype="float32")
    problems = check_model(smol_copy)
    assert errors(problems) == []
    warns = messages(problems, "warning")
    assert any("F32: 1" in m for m in warns) and any("'float32'" in m for m in warns)


def test_missing_shard_and_no_weights(smol_copy):
    (smol_copy / "model.safetensors.index.json").write_text(json.dumps(
        {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}))
    assert any("shards named in the index are missing" in m for m in messages(check_model(smol_copy), "error"))
    (smol_copy / "model.safetensors.index.json").unlink()
    (smol_copy / "model.safetensors").unlink()
    assert any("no *.safetensors" in m for m in messages(check_model(smol_copy), "error"))


def test_compare_to_base(smol_copy, smollm2_dir):
    assert compare_to_base(smol_copy, smollm2_dir) == []
    tpl = smol_copy / "chat_template.jinja"
    tpl.write_text(tpl.read_text() + " ")  # one byte is enough
    (smol_copy / "tokenizer.json").unlink()
    set_json(smol_copy / "generation_config.json", temperature=0.2)
    set_json(smol_copy / "config.json", hidden_size=1024)
    problems = compare_to_base(smol_copy, smollm2_dir)
    errs, warns = messages(problems, "error"), messages(problems, "warning")
    assert any(m.startswith("chat_template.jinja differs") for m in errs)
    assert any(m.startswith("tokenizer.json is in the base but missing") for m in errs)
    assert any("hidden_size" in m for m in errs)
    assert any("generation_config.json differs" in m for m in warns)


def test_not_a_model_folder(tmp_path):
    problems = check_model(tmp_path)
    assert len(problems) == 1 and "no config.json" in problems[0].message


def test_serve_check_cli(smol_copy, smollm2_dir, tmp_path):
    cli = [str(Path(sys.executable).parent / "ablbench"), "serve", "--check"]
    env = {**os.environ, "ABLBENCH_HOME": str(tmp_path / "home")}
    good = subprocess.run([*cli, "--model", str(smol_copy), "--base", str(smollm2_dir)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert good.returncode == 0, good.stderr
    assert "preflight ok" in good.stdout
    (smol_copy / "chat_template.jinja").write_text("{{ messages }}")
    bad = subprocess.run([*cli, "--model", str(smol_copy), "--base", str(smollm2_dir)],
                         capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 1
    assert "chat_template.jinja differs" in bad.stderr and "error:" in bad.stderr
