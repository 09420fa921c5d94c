"""Plain types shared by the LLM client (``harness.llm_client``) and its users (agent, smoke)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class SamplingParams:
    """Sampling settings sent explicitly with every request."""

    temperature: float = 0.7
    top_p: float = 0.95
    max_tokens: int = 4096
    seed: int | None = 0
    enable_thinking: bool | None = None  # None: leave the server's default
    #: sent as the request's ``response_format`` when set (``--structured``; harness.action_schema)
    response_format: dict | None = None


@dataclass
class Usage:
    """Token accounting of one reply."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0


@dataclass
class ChatResult:
    """One chat completion: the reply text, separate reasoning, usage and timings."""

    content: str
    reasoning: str | None = None
    finish_reason: str | None = None
    usage: Usage = field(default_factory=Usage)
    latency_s: float = 0.0
    retries: int = 0
    model: str | None = None
    #: the request that produced this reply carried a ``seed`` (False: none asked, or the server rejected it)
    seed_sent: bool = False


class LLMError(Exception):
    """The server failed (after bounded retries): an infrastructure error, not a task failure."""


class ContextOverflowError(LLMError):
    """The request does not fit the model's context window; retrying cannot help."""


class ServerDiedError(LLMError):
    """The model server this machine started has died (its signal and log are in the message)."""
