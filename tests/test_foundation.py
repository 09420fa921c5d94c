"""The ground everything stands on: engine, base image, bundled model, CLI, doctor, set-up."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ablbench.paths import REPO_ROOT

ABLBENCH = [sys.executable, "-m", "harness.cli"]


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(Path(sys.executable).parent / "ablbench"), *args],
        capture_output=True, text=True, timeout=timeout, cwd=REPO_ROOT,
    )


def test_base_image_runs_the_agent_tools(container) -> None:
    code, out = container.exec_run(["bash", "-lc", "tmux -V && git --version && python3 --version && echo ok"])
    assert code == 0, out
    text = out.decode()
    assert text.startswith("tmux ") and "git version" in text and text.rstrip().endswith("ok")


def test_container_has_no_network(container) -> None:
    code, out = container.exec_run(["bash", "-c", "ls /sys/class/net"])
    assert code == 0 and out.decode().split() == ["lo"]


def test_embedded_model_answers_paris(smollm2_dir: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    result = cli("model", "embedded")
    assert result.returncode == 0, result.stderr
    folder = Path(result.stdout.strip().splitlines()[-1])
    assert folder == smollm2_dir
    for name in ("config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja"):
        assert (folder / name).is_file(), name
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    assert model.config.architectures == ["LlamaForCausalLM"]
    assert model.dtype == torch.bfloat16 and model.config.tie_word_embeddings
    inputs = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True, return_tensors="pt", return_dict=True,
    )
    output = model.generate(**inputs, max_new_tokens=16, do_sample=False)
    answer = tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    assert "Paris" in answer


def test_doctor_reports_required_items_ok(smollm2_dir, base_image) -> None:
    result = cli("doctor", timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    for item in ("python", "torch", "transformers", "docker engine", "base image", "bundled model"):
        line = next(ln for ln in result.stdout.splitlines() if f" {item} " in f" {ln} ")
        assert line.startswith("OK"), line


def test_help_lists_the_design_verbs_and_each_answers() -> None:
    from harness.cli import app

    verbs = {name for name in app if not name.startswith("-")}
    assert verbs == {"model", "doctor", "abliterate", "smoke", "serve", "run", "analyze", "plan", "sft", "tasks", "view"}
    result = cli("--help", timeout=60)
    assert result.returncode == 0
    for verb in sorted(verbs):
        assert f"│ {verb} " in result.stdout
        sub = cli(verb, "--help", timeout=60)  # a real verb, not a stub: it has its own help
        assert sub.returncode == 0 and "Usage: ablbench " + verb in " ".join(sub.stdout.split()), verb


def test_model_embedded_rejects_a_file_as_out(tmp_path: Path) -> None:
    target = tmp_path / "a-file"
    target.write_text("x")
    result = cli("model", "embedded", "--out", str(target / "model"), timeout=120)
    assert result.returncode != 0
    assert "error:" in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.docker
def test_setup_script_is_idempotent(base_image, smollm2_dir) -> None:
    result = subprocess.run(["bash", "scripts/setup.sh"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "ready:" in result.stdout
