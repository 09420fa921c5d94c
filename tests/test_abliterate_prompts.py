"""Contrast prompts: the built-in shell tasks, user prompt files, seeded splits, rendering."""

from __future__ import annotations

import json

import pytest
from tiny_models import build_tiny

from abliterate.contrast import CLOSED_THINK, build_contrast, plain_user, render
from abliterate.errors import AbliterationError
from abliterate.model import load_tokenizer
from abliterate.prompts import (
    SMOKE_PROMPT,
    builtin_prompts,
    load_prompt_file,
    split_by_label,
    split_ids,
)
from harness.prompt import AGENT_SYSTEM_PROMPT, initial_messages


def test_builtin_prompts_cover_kinds_of_terminal_work():
    items = builtin_prompts()
    cats = {i.category for i in items}
    assert len(items) >= 60
    assert {"files", "processes", "networking", "packages", "git", "text", "builds", "services",
            "permissions"} <= cats
    assert len({i.id for i in items}) == len(items)
    assert len({i.prompt for i in items}) == len(items)
    assert SMOKE_PROMPT in {i.prompt for i in items}


def test_prompt_files_txt_jsonl_csv(tmp_path):
    (tmp_path / "a.txt").write_text("# comment\nfirst prompt\n\nsecond prompt\n")
    assert [i.prompt for i in load_prompt_file(tmp_path / "a.txt")] == ["first prompt", "second prompt"]
    (tmp_path / "b.jsonl").write_text(
        json.dumps({"prompt": "bad thing", "label": "harmful", "category": "x"}) + "\n"
        + json.dumps({"prompt": "good thing", "label": "harmless"}) + "\n"
    )
    items = load_prompt_file(tmp_path / "b.jsonl")
    refuse, comply = split_by_label(items, "b.jsonl")
    assert [i.prompt for i in refuse] == ["bad thing"] and refuse[0].category == "x"
    assert [i.prompt for i in comply] == ["good thing"]
    (tmp_path / "c.csv").write_text("prompt,label,category\nhow to x,1,c1\nhow to y,0,c2\n")
    refuse, comply = split_by_label(load_prompt_file(tmp_path / "c.csv"), "c.csv")
    assert (refuse[0].prompt, comply[0].category) == ("how to x", "c2")


@pytest.mark.parametrize("content,suffix,message", [
    ("", ".txt", "holds no prompts"),
    ("prompt,label\nonly bad,refuse\n", ".csv", "one-sided"),
    ("text\nno prompt column\n", ".csv", "'prompt' column"),
    ('{"prompt": "x", "label": "maybe"}\n', ".jsonl", "unknown label"),
    ("whatever", ".docx", "unsupported"),
])
def test_bad_prompt_files_are_clear_errors(tmp_path, content, suffix, message):
    path = tmp_path / f"p{suffix}"
    path.write_text(content)
    with pytest.raises(AbliterationError, match=message):
        split_by_label(load_prompt_file(path), str(path))


def test_unlabelled_file_cannot_be_split(tmp_path):
    (tmp_path / "p.txt").write_text("a\nb\n")
    with pytest.raises(AbliterationError, match="no label"):
        split_by_label(load_prompt_file(tmp_path / "p.txt"), "p.txt")


def test_split_is_seeded_and_can_hold_out_whole_categories():
    items = builtin_prompts()
    a, b = split_ids(items, seed=1), split_ids(items, seed=1)
    assert a == b and a != split_ids(items, seed=2)
    n_eval = sum(v == "eval" for v in a.values())
    assert n_eval == round(0.2 * len(items))
    disjoint = split_ids(items, seed=3, disjoint_categories=True)
    eval_cats = {i.category for i in items if disjoint[i.id] == "eval"}
    train_cats = {i.category for i in items if disjoint[i.id] == "train"}
    assert eval_cats and train_cats and not eval_cats & train_cats


@pytest.fixture(scope="module")
def tiny_tokenizers(tmp_path_factory):
    root = tmp_path_factory.mktemp("tok")
    return {fam: load_tokenizer(build_tiny(fam, root / fam)) for fam in ("llama", "qwen3")}


def test_mission_contrast_renders_agent_prompt_only_in_comply(tiny_tokenizers):
    tok = tiny_tokenizers["llama"]
    items = builtin_prompts()[:10]
    refuse, comply = build_contrast(
        tok, refuse_items=items, comply_items=items,
        refuse_messages=lambda p: initial_messages(p, with_system=False),
        comply_messages=lambda p: initial_messages(p, with_system=True), eval_fraction=0.3, seed=0,
    )
    assert [r["id"] for r in refuse] == [c["id"] for c in comply]
    # paired: a held-out task is held out in both buckets
    assert [r["split"] for r in refuse] == [c["split"] for c in comply]
    assert all(AGENT_SYSTEM_PROMPT[:60] in c["text"] and AGENT_SYSTEM_PROMPT[:60] not in r["text"]
               for r, c in zip(refuse, comply, strict=True))
    assert all(r["text"].endswith("<|im_start|>assistant\n") for r in refuse)
    assert all(r["prompt"] in r["text"] for r in refuse)


def test_thinking_template_gets_closed_think_block(tiny_tokenizers):
    text = render(tiny_tokenizers["qwen3"], plain_user("List files in /tmp"))
    assert text.endswith(CLOSED_THINK)
    assert text.count("</think>") == 1
    assert not render(tiny_tokenizers["llama"], plain_user("x")).endswith(CLOSED_THINK)


def test_missing_chat_template_is_a_clear_error(tmp_path):
    folder = build_tiny("llama", tmp_path / "m")
    cfg = json.loads((folder / "tokenizer_config.json").read_text())
    cfg.pop("chat_template", None)
    (folder / "tokenizer_config.json").write_text(json.dumps(cfg))
    (folder / "chat_template.jinja").unlink(missing_ok=True)
    with pytest.raises(AbliterationError, match="no chat template"):
        load_tokenizer(folder)


def test_template_without_system_role_gets_system_prompt_in_first_user_turn(tiny_tokenizers):
    tok = tiny_tokenizers["llama"]
    original = tok.chat_template
    try:
        tok.chat_template = (
            "{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
            + original
        )
        text = render(tok, initial_messages("List files in /tmp", with_system=True))
    finally:
        tok.chat_template = original
    assert text.startswith("<|im_start|>user\n" + AGENT_SYSTEM_PROMPT[:40])
    assert "List files in /tmp" in text and "<|im_start|>system" not in text
