"""A sample in the model's own chat template, with the loss on the assistant replies only.

Rules, in order:
1. The whole sample is rendered once with ``tokenizer.apply_chat_template`` (no generation
   prompt) and tokenized once, without extra special tokens (the template has its own).
2. Each trained reply's span is found by rendering: its start is the length of the render of the
   messages before it with the generation prompt, its end the length of the render through it,
   less trailing whitespace: the reply's text and the template's end-of-turn token carry the
   loss, the template's line break after it (never generated) does not.
3. This needs the earlier renders to be prefixes of the later ones. A template that rewrites
   earlier turns (Qwen3 drops old reasoning) fails that check, and then each trained reply
   becomes its own sequence: the request as the agent sent it plus that reply.
4. A token carries loss when its first character lies in a trained span. Labels are the token
   ids there, -100 elsewhere; sequences longer than ``max_len`` are cut from the left only when
   a trained token survives, else dropped (counted by the caller).
"""

from __future__ import annotations

from dataclasses import dataclass

from sft.data import Sample
from sft.errors import SftError

IGNORE = -100


@dataclass(frozen=True)
class Encoded:
    """One tokenized training sequence."""

    task: str
    input_ids: list[int]
    labels: list[int]

    @property
    def trained_tokens(self) -> int:
        return sum(1 for x in self.labels if x != IGNORE)


def _render(tokenizer, messages: list[dict], gen: bool) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen)


def _spans(tokenizer, messages: list[dict], trained: list[bool]) -> tuple[str, list[tuple[int, int]]] | None:
    """(the full render, trained character spans), or None when the template is not prefix-stable."""
    full = _render(tokenizer, messages, False)
    spans = []
    for i, (m, t) in enumerate(zip(messages, trained, strict=True)):
        if not t:
            continue
        if m["role"] != "assistant":
            raise SftError(f"internal: message {i} is trained but is a {m['role']} message")
        before = _render(tokenizer, messages[:i], True)
        through = _render(tokenizer, messages[: i + 1], False)
        if not (full.startswith(through) and through.startswith(before)):
            return None
        spans.append((len(before), len(through.rstrip())))
    return full, spans


def _tokenize(tokenizer, text: str, spans: list[tuple[int, int]]) -> tuple[list[int], list[int]]:
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(enc["input_ids"])
    labels = [IGNORE] * len(ids)
    k = 0
    for j, (a, _b) in enumerate(enc["offset_mapping"]):
        while k < len(spans) and a >= spans[k][1]:
            k += 1
        if k < len(spans) and spans[k][0] <= a < spans[k][1]:
            labels[j] = ids[j]
    return ids, labels


def encode_sample(tokenizer, sample: Sample) -> list[tuple[list[int], list[int]]]:
    """(input ids, labels) sequences of one sample (rules 1-3)."""
    if not getattr(tokenizer, "is_fast", False):
        raise SftError("the tokenizer has no fast (tokenizer.json) form, which the loss mask needs; "
                       "save the model with a tokenizer.json")
    got = _spans(tokenizer, sample.messages, sample.trained)
    if got is not None:
        text, spans = got
        return [_tokenize(tokenizer, text, spans)]
    out = []
    for i, t in enumerate(sample.trained):
        if not t:
            continue
        msgs = sample.messages[: i + 1]
        one = _spans(tokenizer, msgs, [False] * i + [True])
        if one is None:
            raise SftError("the chat template renders a reply differently from its generation prompt; "
                           "this template cannot be trained on (check its add_generation_prompt branch)")
        out.append(_tokenize(tokenizer, *one))
    return out


def encode_all(tokenizer, samples: list[Sample], max_len: int) -> tuple[list[Encoded], int]:
    """(the sequences, how many were dropped for having no trained token within ``max_len``) (rule 4)."""
    out, dropped = [], 0
    for s in samples:
        for ids, labels in encode_sample(tokenizer, s):
            if len(ids) > max_len:
                ids, labels = ids[-max_len:], labels[-max_len:]
            if all(x == IGNORE for x in labels[1:]):
                dropped += 1
                continue
            out.append(Encoded(s.task, ids, labels))
    return out, dropped
