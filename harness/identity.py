"""The harness identity of a run: every setting of ablbench itself that can move a score.

Rules, in order:

1. ``run.json`` records it under ``harness`` (:data:`IDENTITY_VERSION` under ``identity_version``):
   the ablbench version and git commit (``+dirty`` when the tree had uncommitted changes), the
   sha256 of the agent's prompt texts, the parser's rules version (``harness.parser.RULES_VERSION``),
   ``--structured``, max turns and tokens, the sampling settings and the timeout multiplier.
2. Fields an agent does not use (an oracle or nop run has no prompt, parser or sampling) are
   recorded as null: "not used" is a value, and it equals itself.
3. Two identities are compared field by field (:func:`identity_differences`). A field absent
   from one side (a run.json written before the identity existed, or by an older identity
   version) is unknown, never a difference: it is reported as unknown instead.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import re
from typing import Any

IDENTITY_VERSION = 1
#: the fields of an identity, in report order
FIELDS = ("ablbench_version", "git_commit", "prompt_sha256", "parser_rules", "structured", "max_turns",
          "max_tokens", "sampling", "timeout_multiplier")
#: the agent settings that are sampling settings
SAMPLING_KEYS = ("temperature", "top_p", "seed", "enable_thinking")


def prompt_sha256() -> str:
    """sha256 of every text the Terminus agent sends a model besides the task and the screen.

    The system prompt, the task template, the confirmation message and the source of the
    functions that word the feedback (parse errors, cut-off replies): editing any of them changes it.
    """
    from harness.agents import terminus
    from harness.prompt import AGENT_SYSTEM_PROMPT, TASK_TEMPLATE

    digest = hashlib.sha256()
    for text in (AGENT_SYSTEM_PROMPT, TASK_TEMPLATE, terminus.CONFIRM_MESSAGE,
                 inspect.getsource(terminus._feedback), inspect.getsource(terminus._cut_off_message)):
        digest.update(text.encode() + b"\0")
    return "sha256:" + digest.hexdigest()


def harness_identity(agent_settings: dict, timeout_multiplier: float, version: str | None,
                     git: dict | None) -> dict[str, Any]:
    """The identity of a run (rule 1) from its agent settings (run.json's ``agent``) and provenance."""
    from harness.parser import RULES_VERSION

    model_driven = agent_settings.get("name") == "terminus"
    sha = (git or {}).get("sha")
    commit = f"{sha}+dirty" if sha and (git or {}).get("dirty") else sha
    return {
        "identity_version": IDENTITY_VERSION,
        "ablbench_version": version,
        "git_commit": commit,
        "prompt_sha256": prompt_sha256() if model_driven else None,
        "parser_rules": RULES_VERSION if model_driven else None,
        "structured": bool(agent_settings.get("response_format")),
        "max_turns": agent_settings.get("max_turns") if model_driven else None,
        "max_tokens": agent_settings.get("max_tokens") if model_driven else None,
        "sampling": {k: agent_settings.get(k) for k in SAMPLING_KEYS} if model_driven else None,
        "timeout_multiplier": float(timeout_multiplier),
    }


def identity_differences(identities: dict[str, dict | None]) -> tuple[list[str], list[str]]:
    """(fields that differ between runs whose value is known, ``run: field`` pairs that are unknown).

    ``identities`` maps a run name to its identity (None: the run recorded none; rule 3).
    """
    differ: list[str] = []
    unknown: list[str] = []
    for name, ident in identities.items():
        if ident is None:
            unknown.append(f"{name}: all fields (no harness identity recorded)")
            continue
        missing = [f for f in FIELDS if f not in ident]
        if missing:
            unknown.append(f"{name}: {', '.join(missing)}")
    for key in FIELDS:
        values = {name: ident[key] for name, ident in identities.items() if ident is not None and key in ident}
        if len({_canon(v) for v in values.values()}) > 1:
            shown = ", ".join(f"{name} {_show(v)}" for name, v in values.items())
            differ.append(f"{key} ({shown})")
    return differ, unknown


def _canon(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _show(value: Any) -> str:
    text = "not used" if value is None else value if isinstance(value, str) else _canon(value)
    if text.startswith("sha256:"):
        text = text[7:19]  # a prompt hash: its first 12 hex digits tell two apart
    elif re.fullmatch(r"[0-9a-f]{40}(\+dirty)?", text):
        text = text[:12] + text[40:]  # a git commit
    return text if len(text) <= 40 else text[:39] + "…"
