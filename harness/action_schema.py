"""The JSON schema of one agent action, sent as ``response_format`` by ``ablbench run --structured``.

Rules, in order:

1. The schema is the prompt's action shape (``harness.prompt``): ``analysis``, ``plan``,
   ``commands`` (objects with ``keystrokes`` and ``duration``) and ``task_complete``, all
   required, in that order (so the model states its analysis first), no other keys.
2. Every string and the command list are bounded (``maxLength``, ``maxItems``): in proportion
   to the reply budget (about 3 characters per token) for small budgets, and never above the
   fixed :data:`CEILING`, whatever ``--max-tokens``. A small model that loops inside one field
   is forced on long before ``max_tokens``, and the grammar a server derives from the schema
   stays small: llama.cpp writes a ``maxLength`` of N as N nested optionals and cannot parse
   (then crashes on) about 1000 or more. See :func:`bounds_for`.
3. ``duration`` is a number from 0 to 60 (the parser caps it at 60 too; a server that ignores
   ``minimum``/``maximum`` still bounds its digits).
4. Two request shapes carry the same schema: ``json_schema`` (OpenAI's shape: sglang, vLLM) and
   ``json_object`` with a ``schema`` (llama-cpp-python's server, which rejects the other).
   The preflight (``harness.structured_check``) finds which one a server honours, with this very schema.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

#: the request shapes, in the order the preflight tries them
STYLES: tuple[str, ...] = ("json_schema", "json_object")
Style = Literal["json_schema", "json_object"]
CHARS_PER_TOKEN = 3
MAX_DURATION_S = 60


@dataclass(frozen=True)
class ActionBounds:
    """Upper bounds of one action: characters per field, and the number of commands."""

    analysis: int
    plan: int
    keystrokes: int
    commands: int


#: the largest bounds at any budget: each string well under llama.cpp's limit (see rule 2); the
#: largest action (about 7,600 characters, some 2,500 tokens) fits a 4096-token reply
CEILING = ActionBounds(analysis=800, plan=400, keystrokes=800, commands=8)


def _clamp(value: float, low: int, high: int) -> int:
    return int(max(low, min(high, value)))


def bounds_for(max_tokens: int) -> ActionBounds:
    """Bounds for a reply budget of ``max_tokens``: analysis 25 %, plan 15 %, commands 40 % of it,
    each at most :data:`CEILING`.

    256 tokens give analysis 192, plan 115, one command of 307 characters; from about 2700
    tokens on, exactly the ceiling: 800, 400 and eight commands of up to 800 characters.
    """
    chars = CHARS_PER_TOKEN * max(1, max_tokens)
    commands = _clamp(chars // 1000, 1, CEILING.commands)
    return ActionBounds(
        analysis=_clamp(chars * 0.25, 64, CEILING.analysis),
        plan=_clamp(chars * 0.15, 64, CEILING.plan),
        keystrokes=_clamp(chars * 0.4 / min(commands, 2), 32, CEILING.keystrokes),
        commands=commands,
    )


def action_schema(bounds: ActionBounds) -> dict[str, Any]:
    """The JSON schema of one action under ``bounds``."""
    command = {
        "type": "object",
        "properties": {
            "keystrokes": {"type": "string", "maxLength": bounds.keystrokes},
            "duration": {"type": "number", "minimum": 0, "maximum": MAX_DURATION_S},
        },
        "required": ["keystrokes", "duration"],
        "additionalProperties": False,
    }
    return {
        "type": "object",
        "properties": {
            "analysis": {"type": "string", "maxLength": bounds.analysis},
            "plan": {"type": "string", "maxLength": bounds.plan},
            "commands": {"type": "array", "items": command, "maxItems": bounds.commands},
            "task_complete": {"type": "boolean"},
        },
        "required": ["analysis", "plan", "commands", "task_complete"],
        "additionalProperties": False,
    }


def response_format(schema: dict[str, Any], style: Style, name: str = "terminal_action") -> dict[str, Any]:
    """The ``response_format`` request field carrying ``schema`` in the shape ``style``."""
    if style == "json_schema":
        return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}
    if style == "json_object":
        return {"type": "json_object", "schema": schema}
    raise ValueError(f"unknown response_format style {style!r}: use one of {', '.join(STYLES)}")
