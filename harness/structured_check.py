"""Preflight for ``--structured``: does the server constrain replies to the run's own schema, and how
long does that schema take to start a reply?

Rules, in order:

1. Every request carries exactly the ``response_format`` the run will send (the action schema
   at the run's bounds), never a smaller stand-in: a schema too big for the server fails here,
   before any trial.
2. A streamed, greedy request without a schema asks a question whose free answer is prose;
   its time to the first token is the baseline (prompt processing, no grammar). It is sent
   before and after the schema's requests, and the faster counts (servers reuse a cached
   prompt, so the first one can be slower).
3. For each request shape of :data:`harness.action_schema.STYLES`, the same request with the
   run's schema. The shape is honoured when the reply opens the schema's object (``{`` and its
   first key). An HTTP error means the shape is not accepted; prose means the server ignored
   ``response_format`` (``transformers serve`` does). A dropped connection means the server
   died on the schema (llama.cpp crashes on a grammar it cannot parse).
4. The first honoured shape wins. Its time to the first token minus the baseline is the
   grammar's cost, paid on every request (llama.cpp compiles the grammar per request); above
   ``grammar_limit_s`` the run stops with one line naming the cause and the fix.
5. When no shape is honoured, :class:`AblbenchError` says what each shape got and which servers
   constrain decoding (llama.cpp, sglang, vLLM).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any

import httpx

from ablbench.errors import AblbenchError
from harness.action_schema import STYLES, Style, response_format

PROBE_MESSAGES = [{"role": "user", "content": "Write one short sentence about the sea."}]
#: enough tokens for ``{"analysis": "`` on any tokenizer; a server ignoring the schema is stopped soon after
PROBE_MAX_TOKENS = 16
#: default limit on the grammar's cost per request (``--grammar-limit``), in seconds
GRAMMAR_LIMIT_S = 20.0


@dataclass(frozen=True)
class StructuredPreflight:
    """What the preflight found: the honoured shape and the first-token times with and without the schema."""

    style: Style
    ttft_s: float
    plain_ttft_s: float

    @property
    def grammar_s(self) -> float:
        """The schema's own cost: the extra time before the first token."""
        return max(0.0, self.ttft_s - self.plain_ttft_s)

    def summary(self) -> str:
        """One line for the console."""
        return (f"--structured preflight: first token after {self.ttft_s:.2f} s with the action schema "
                f"({self.style}), {self.plain_ttft_s:.2f} s without it: the grammar costs {self.grammar_s:.2f} s "
                "per request")


@dataclass(frozen=True)
class ProbeReply:
    """One probe's time to its first content (seconds) and its whole content."""

    ttft_s: float
    content: str


class _Refused(Exception):
    """The server answered the request with an HTTP error or an unreadable stream."""


def probe(base_url: str, model: str, rf: dict[str, Any] | None, timeout_s: float) -> ProbeReply:
    """One streamed greedy probe request carrying ``rf`` as ``response_format`` (None: none).

    Raises ``_Refused`` on an HTTP error or an unreadable stream, ``httpx.HTTPError`` when the
    server cannot be reached or drops the connection.
    """
    body: dict[str, Any] = {"model": model, "messages": PROBE_MESSAGES, "max_tokens": PROBE_MAX_TOKENS,
                            "temperature": 0, "stream": True}
    if rf is not None:
        body["response_format"] = rf
    url = f"{base_url.rstrip('/')}/v1/chat/completions"
    started = time.monotonic()
    first: float | None = None
    parts: list[str] = []
    with httpx.stream("POST", url, json=body, timeout=timeout_s) as resp:
        if resp.status_code != 200:
            resp.read()
            raise _Refused(f"HTTP {resp.status_code}: {_one_line(resp.text, 160)}")
        for line in resp.iter_lines():
            if not line.startswith("data:") or line[5:].strip() == "[DONE]":
                continue
            try:
                delta = json.loads(line[5:])["choices"][0].get("delta") or {}
            except (ValueError, KeyError, IndexError, TypeError, AttributeError):
                raise _Refused(f"an unreadable stream chunk: {_one_line(line, 160)!r}") from None
            text = delta.get("content") or ""
            if text and first is None:
                first = time.monotonic() - started
            parts.append(text)
    total = time.monotonic() - started
    return ProbeReply(first if first is not None else total, "".join(parts))


def _one_line(text: str, limit: int) -> str:
    return " ".join(text.split())[:limit]


def _opens_object(content: str, schema: dict[str, Any]) -> bool:
    """The reply starts the schema's object: ``{`` then its first property's name."""
    props = list(schema.get("properties") or {})
    key = re.escape(json.dumps(props[0])) if props else '"'
    return re.match(r"\s*\{\s*" + key, content) is not None


def check_structured(base_url: str, model: str, schema: dict[str, Any], *,
                     grammar_limit_s: float = GRAMMAR_LIMIT_S, timeout_s: float = 300.0) -> StructuredPreflight:
    """The shape the server at ``base_url`` honours for ``schema``, with the schema's first-token cost.

    Raises :class:`AblbenchError` when the server is unreachable, dies on the schema, ignores
    it in every shape, or needs more than ``grammar_limit_s`` seconds per request for it.
    """
    try:
        plain = probe(base_url, model, None, timeout_s)
    except _Refused as exc:
        raise AblbenchError(f"--structured: the server at {base_url} refused a plain chat request ({exc}) -- "
                            "check the server's log") from None
    except httpx.HTTPError as exc:
        raise AblbenchError(f"cannot reach the model server at {base_url} ({exc}) -- start it with `ablbench serve`"
                            ) from None
    notes = []
    for style in STYLES:
        try:
            reply = probe(base_url, model, response_format(schema, style), timeout_s)
        except _Refused as exc:
            notes.append(f"{style}: {exc}")
            continue
        except httpx.HTTPError as exc:
            raise AblbenchError(
                f"--structured: the server at {base_url} dropped the request carrying the action schema "
                f"({type(exc).__name__}: {_one_line(str(exc), 120)}); it answered the same request without the "
                "schema, so it most likely crashed compiling the schema's grammar -- see the server's log, "
                "restart it, and run without --structured or on a server whose grammar engine takes the schema"
            ) from None
        if _opens_object(reply.content, schema):
            again = probe(base_url, model, None, timeout_s)  # like the schema's request, after the same prompt
            found = StructuredPreflight(style, reply.ttft_s, min(plain.ttft_s, again.ttft_s))
            _check_cost(found, base_url, grammar_limit_s)
            return found
        notes.append(f"{style}: the schema was ignored (reply {_one_line(reply.content, 80)!r})")
    raise AblbenchError(
        f"--structured: the server at {base_url} does not constrain replies to a JSON schema "
        f"({'; '.join(notes)}) -- serve the model with llama.cpp (`ablbench serve --backend llamacpp`), "
        "sglang or vLLM, or run without --structured (transformers serve ignores response_format)"
    )


def _check_cost(found: StructuredPreflight, base_url: str, limit_s: float) -> None:
    if found.grammar_s > limit_s:
        raise AblbenchError(
            f"--structured: the action schema delays every reply of the server at {base_url} by "
            f"{found.grammar_s:.1f} s (first token after {found.ttft_s:.1f} s, {found.plain_ttft_s:.1f} s without "
            f"it), over --grammar-limit {limit_s:g} s: its grammar is slow to compile there -- serve with a "
            "faster grammar engine (sglang, vLLM), raise --grammar-limit, or run without --structured"
        )
