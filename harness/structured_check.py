"""Preflight for ``--structured``: does the server really constrain replies to a JSON schema?

Rules, in order:

1. For each request shape of :data:`harness.action_schema.STYLES`, one greedy chat request
   asks a question whose free answer is prose, with a tiny probe schema (one key, one enum
   value) that no model writes unprompted.
2. The shape is honoured when the reply is exactly that object. An HTTP error means the shape
   is not accepted; any other reply means the server ignored ``response_format``
   (``transformers serve`` does: it is on its unsupported list).
3. The first honoured shape is returned; when none is, :class:`AblbenchError` says what each
   shape got and which servers constrain decoding (llama.cpp, sglang, vLLM).
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from ablbench.errors import AblbenchError
from harness.action_schema import STYLES, Style, response_format

PROBE_KEY = "ablbench_probe"
PROBE_VALUE = "q7x"
PROBE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {PROBE_KEY: {"type": "string", "enum": [PROBE_VALUE]}},
    "required": [PROBE_KEY],
    "additionalProperties": False,
}
PROBE_MESSAGES = [{"role": "user", "content": "Write one short sentence about the sea."}]
#: the probe object is about 12 tokens; a server that ignores the schema is stopped soon after
PROBE_MAX_TOKENS = 24


def _try(base_url: str, model: str, style: Style, timeout_s: float) -> str | None:
    """None when ``style`` is honoured, else what happened instead."""
    body = {"model": model, "messages": PROBE_MESSAGES, "max_tokens": PROBE_MAX_TOKENS, "temperature": 0,
            "response_format": response_format(PROBE_SCHEMA, style, name="ablbench_probe")}
    try:
        resp = httpx.post(f"{base_url.rstrip('/')}/v1/chat/completions", json=body, timeout=timeout_s)
    except httpx.HTTPError as exc:
        raise AblbenchError(f"cannot reach the model server at {base_url} ({exc}) -- start it with `ablbench serve`") from None
    if resp.status_code != 200:
        return f"HTTP {resp.status_code}: {_one_line(resp.text, 160)}"
    try:
        content = resp.json()["choices"][0]["message"]["content"] or ""
    except (ValueError, KeyError, IndexError, TypeError):
        return f"an unreadable reply: {_one_line(resp.text, 160)!r}"
    try:
        if json.loads(content) == {PROBE_KEY: PROBE_VALUE}:
            return None
    except ValueError:
        pass
    return f"the schema was ignored (reply {_one_line(content, 80)!r})"


def _one_line(text: str, limit: int) -> str:
    return " ".join(text.split())[:limit]


def check_structured(base_url: str, model: str, timeout_s: float = 120.0) -> Style:
    """The ``response_format`` shape the server at ``base_url`` honours for ``model``."""
    notes = []
    for style in STYLES:
        problem = _try(base_url, model, style, timeout_s)
        if problem is None:
            return style
        notes.append(f"{style}: {problem}")
    raise AblbenchError(
        f"--structured: the server at {base_url} does not constrain replies to a JSON schema "
        f"({'; '.join(notes)}) -- serve the model with llama.cpp (`ablbench serve --backend llamacpp`), "
        "sglang or vLLM, or run without --structured (transformers serve ignores response_format)"
    )
