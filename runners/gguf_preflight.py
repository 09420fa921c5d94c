"""Preflight check of a GGUF file before it is served (and against its base GGUF).

The GGUF counterpart of :mod:`runners.preflight`, returning the same :class:`Problem` list:

1. The file must be a readable GGUF (error otherwise).
2. A missing chat template is a warning: the server then falls back to a generic format, so
   the agent's prompt is not rendered the way the model was trained.
3. Against a base GGUF: the tokenizer (every ``tokenizer.ggml.*`` key) and the chat template
   must be identical, and the architecture the same (errors): an edit may change weights only.
"""

from __future__ import annotations

from pathlib import Path

from runners.gguf_info import GGUFError, read_facts
from runners.preflight import Problem


def check_gguf(path: Path, base: Path | None = None) -> list[Problem]:
    """All problems of the GGUF ``path`` (and its differences from the GGUF ``base``)."""
    try:
        facts = read_facts(path)
    except GGUFError as exc:
        return [Problem("error", str(exc))]
    problems: list[Problem] = []
    if not facts.chat_template:
        problems.append(Problem("warning", f"{path} has no tokenizer.chat_template: the server will guess a chat format"))
    if base is None:
        return problems
    try:
        ref = read_facts(base)
    except GGUFError as exc:
        return [*problems, Problem("error", f"base: {exc}")]
    if facts.architecture != ref.architecture:
        problems.append(Problem("error", f"architecture {facts.architecture} differs from the base's {ref.architecture}"))
    if facts.tokenizer_digest != ref.tokenizer_digest:
        problems.append(Problem("error", "the tokenizer (tokenizer.ggml.*) differs from the base's: "
                                "an edited model must keep the base tokenizer"))
    if facts.chat_template != ref.chat_template:
        problems.append(Problem("error", "the chat template differs from the base's: both arms must render prompts alike"))
    return problems
