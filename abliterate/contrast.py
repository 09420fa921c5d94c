"""Render the contrast set with the model's own chat template and split it.

``abliterate`` does not import the agent: the caller passes the two message builders
(for the mission contrast, ``harness.prompt.initial_messages`` without / with the system
prompt), so the contrast is exactly what the model sees on a benchmark's first turn.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from abliterate.errors import AbliterationError
from abliterate.fsio import read_jsonl, write_jsonl
from abliterate.options import ContrastOptions as ContrastOptions  # re-exported: the step's own options
from abliterate.prompts import PromptItem, split_ids

MessageBuilder = Callable[[str], list[dict]]
#: appended after the generation prompt of thinking models when the template did not close it
CLOSED_THINK = "<think>\n\n</think>\n\n"
REFUSE_FILE = "contrast_refuse.jsonl"
COMPLY_FILE = "contrast_comply.jsonl"


def plain_user(prompt: str) -> list[dict]:
    """Messages for the classic contrast: the prompt as the only user turn."""
    return [{"role": "user", "content": prompt}]


def merge_system(messages: list[dict]) -> list[dict]:
    """Fold a leading system message into the first user message."""
    system, rest = messages[0]["content"], [dict(m) for m in messages[1:]]
    if rest and rest[0]["role"] == "user":
        rest[0]["content"] = f"{system}\n\n{rest[0]['content']}"
        return rest
    return [{"role": "user", "content": system}, *rest]


def render(tokenizer, messages: list[dict]) -> str:
    """Chat-template text ending where the assistant's answer starts (closed think block for thinkers)."""
    template = getattr(tokenizer, "chat_template", None)
    if not template:
        raise AbliterationError(
            "the model has no chat template: add chat_template.jinja to the model folder "
            "(contrast prompts must use the model's own format)"
        )
    thinking = "<think>" in template
    kwargs = {"enable_thinking": False} if thinking else {}
    try:
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, **kwargs)
    except Exception as exc:  # noqa: BLE001 - jinja raises TemplateError, or whatever raise_exception() gives
        if not (messages and messages[0]["role"] == "system" and "system" in str(exc).lower()):
            raise AbliterationError(f"the chat template failed on a prompt: {exc}") from exc
        # templates without a system role (Gemma 2/3): the system prompt opens the first user turn
        text = tokenizer.apply_chat_template(merge_system(messages), tokenize=False, add_generation_prompt=True,
                                             **kwargs)
    if not isinstance(text, str):
        raise AbliterationError("apply_chat_template did not return text: the tokenizer's chat template is broken")
    if thinking and "</think>" not in text[-64:]:
        text += CLOSED_THINK
    return text


def make_records(
    tokenizer,
    items: list[PromptItem],
    builder: MessageBuilder,
    bucket: str,
    splits: dict[str, str],
) -> list[dict]:
    """One JSON-ready record per prompt: id, bucket, split, category, prompt, messages, rendered text."""
    records = []
    for it in items:
        messages = builder(it.prompt)
        rec = {
            "id": it.id, "bucket": bucket, "split": splits[it.id], "category": it.category,
            "prompt": it.prompt, "messages": messages, "text": render(tokenizer, messages),
        }
        if it.label is not None:
            rec["label"] = it.label
        records.append(rec)
    return records


def build_contrast(
    tokenizer,
    *,
    refuse_items: list[PromptItem],
    comply_items: list[PromptItem],
    refuse_messages: MessageBuilder,
    comply_messages: MessageBuilder,
    eval_fraction: float = 0.2,
    seed: int = 0,
    disjoint_categories: bool = False,
) -> tuple[list[dict], list[dict]]:
    """Render both buckets; returns (refuse records, comply records).

    When both buckets hold the same prompts (the mission contrast) they share one split, so a
    held-out task is held out in both buckets.
    """
    if not refuse_items or not comply_items:
        raise AbliterationError("a contrast needs prompts in both buckets (refuse and comply): one is empty")
    for bucket, items in (("refuse", refuse_items), ("comply", comply_items)):
        ids = [i.id for i in items]
        if len(set(ids)) != len(ids):
            raise AbliterationError(f"duplicate prompt ids in the {bucket} bucket: give every prompt a unique id")
    paired = [i.id for i in refuse_items] == [i.id for i in comply_items]
    kw = {"eval_fraction": eval_fraction, "seed": seed, "disjoint_categories": disjoint_categories}
    refuse_split = split_ids(refuse_items, **kw)
    comply_split = refuse_split if paired else split_ids(comply_items, **{**kw, "seed": seed + 1})
    return (
        make_records(tokenizer, refuse_items, refuse_messages, "refuse", refuse_split),
        make_records(tokenizer, comply_items, comply_messages, "comply", comply_split),
    )


def write_contrast(out: Path, refuse: list[dict], comply: list[dict]) -> tuple[Path, Path]:
    """Write ``contrast_refuse.jsonl`` and ``contrast_comply.jsonl`` into ``out``."""
    out = Path(out)
    write_jsonl(out / REFUSE_FILE, refuse)
    write_jsonl(out / COMPLY_FILE, comply)
    return out / REFUSE_FILE, out / COMPLY_FILE


def read_contrast(folder: Path) -> tuple[list[dict], list[dict]]:
    """Read both contrast files from a run folder (errors when missing or empty)."""
    folder = Path(folder)
    refuse, comply = read_jsonl(folder / REFUSE_FILE), read_jsonl(folder / COMPLY_FILE)
    for name, recs in ((REFUSE_FILE, refuse), (COMPLY_FILE, comply)):
        if not recs:
            raise AbliterationError(f"{folder / name} is empty: rerun `ablbench abliterate contrast`")
        if any("text" not in r for r in recs):
            raise AbliterationError(f"{folder / name}: records lack the rendered 'text' field: rerun contrast")
    return refuse, comply


def select(records: list[dict], split: str | None) -> list[dict]:
    """Records of one split ("train" / "eval"), or all when ``split`` is None."""
    return [r for r in records if split is None or r.get("split") == split]
