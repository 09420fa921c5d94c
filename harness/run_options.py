"""``RunOptions``: everything ``ablbench run`` was asked to do, as one frozen, typed object.

Rules, in order:

1. The CLI (``harness/commands/run.py``) builds one ``RunOptions`` from its flags, and Python
   users build one by hand (``harness.api``); ``Job`` reads nothing else.
2. Every field says what it is for in its ``role`` metadata:
   ``experiment`` (changes what is measured: part of the resume fingerprint),
   ``agent`` (a Terminus knob: it reaches the fingerprint through the agent's own settings,
   so an oracle run does not care about ``--max-turns``),
   ``run`` (how this invocation runs: parallelism, output, resume flags; never fingerprinted).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from harness.agents import defaults
from harness.structured_check import GRAMMAR_LIMIT_S

EXPERIMENT = {"role": "experiment"}
AGENT = {"role": "agent"}
RUN = {"role": "run"}


@dataclass(frozen=True)
class RunOptions:
    """The options of one ``ablbench run`` invocation (see the module doc for ``role``)."""

    agent: str = field(default="terminus", metadata=EXPERIMENT)
    tasks: Path | None = field(default=None, metadata=RUN)  # the tasks' names and hashes are fingerprinted
    include: tuple[str, ...] = field(default=(), metadata=RUN)
    exclude: tuple[str, ...] = field(default=(), metadata=RUN)
    model_url: str | None = field(default=None, metadata=RUN)  # a restarted server gets another port
    model: str | None = field(default=None, metadata=RUN)  # fingerprinted as the served identity
    attempts: int = field(default=1, metadata=EXPERIMENT)
    timeout_multiplier: float = field(default=1.0, metadata=EXPERIMENT)
    base_image_map: tuple[str, ...] = field(default=(), metadata=EXPERIMENT)
    offline: bool = field(default=False, metadata=EXPERIMENT)
    no_network: bool = field(default=False, metadata=EXPERIMENT)
    max_turns: int = field(default=defaults.MAX_TURNS, metadata=AGENT)
    max_tokens: int = field(default=defaults.MAX_TOKENS, metadata=AGENT)
    temperature: float = field(default=defaults.TEMPERATURE, metadata=AGENT)
    top_p: float = field(default=defaults.TOP_P, metadata=AGENT)
    seed: int = field(default=defaults.SEED, metadata=AGENT)
    context_length: int | None = field(default=None, metadata=AGENT)
    structured: bool = field(default=False, metadata=AGENT)  # fingerprinted as the agent's response_format
    grammar_limit: float = field(default=GRAMMAR_LIMIT_S, metadata=RUN)  # --structured preflight: grammar seconds
    parallel: int = field(default=1, metadata=RUN)
    out: Path | None = field(default=None, metadata=RUN)
    resume: bool = field(default=False, metadata=RUN)
    rerun_errors: bool = field(default=False, metadata=RUN)
    rerun: tuple[str, ...] = field(default=(), metadata=RUN)
    rerun_unscored: bool = field(default=False, metadata=RUN)
    infra_retries: int = field(default=1, metadata=RUN)
    #: seconds a model request may go unanswered before the server is checked for a hang (harness.llm_client)
    llm_stall_s: float = field(default=60.0, metadata=RUN)
    quiet: bool = field(default=False, metadata=RUN)

    def with_role(self, role: str) -> dict[str, Any]:
        """The fields whose ``role`` metadata is ``role``, as JSON-ready values."""
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self) if f.metadata.get("role") == role}

    def as_dict(self) -> dict[str, Any]:
        """Every field as JSON-ready values (for run.json's provenance)."""
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}


def _plain(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    return value
