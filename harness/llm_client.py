"""The OpenAI-compatible chat client used by the agent and the smoke test.

Rules, in order:

1. The openai client's own retries are switched off (they are silent); tenacity retries every
   transient fault the same way, a bounded number of times with exponential backoff: connection
   errors, timeouts, 5xx, 408/409/429, a 200 whose body is not JSON or has no choices, a hung
   server (rule 2). Every retry is logged and counted in ``ChatResult.retries``; giving up
   raises :class:`LLMError` with one line naming the last fault.
2. Hung versus slow: a request still unanswered after ``stall_s`` seconds makes the client
   knock on the server (``GET /health``, any HTTP answer counts, within ``PROBE_TIMEOUT_S``)
   and again every ``stall_s``; a server that answers is slow and the request waits on (up to
   ``timeout_s``), one that does not is hung: the request is abandoned and retried.
3. A connection error to a server that ablbench started and that has died
   (``runners.servers.watch``) raises :class:`ServerDiedError` at once: one line naming the
   server, how it ended (signal, exit code) and its log. It is never retried.
4. A request that does not fit the context window raises :class:`ContextOverflowError` and is
   never retried.
A server that rejects the ``seed`` field (HTTP 400/422 whose message mentions ``seed``) gets
the request again without it, once; from then on this client sends no seed
(``seed_supported`` False) and ``ChatResult.seed_sent`` says whether a reply was seeded.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import openai
import tenacity

from harness.llm_types import ChatResult, ContextOverflowError, LLMError, SamplingParams, ServerDiedError, Usage
from runners.servers.watch import death_line

logger = logging.getLogger("ablbench.llm")

#: server messages meaning "the prompt (plus max_tokens) does not fit the context window";
#: each names the context/model length explicitly so unrelated 400s do not match
_OVERFLOW_PATTERNS = (
    r"longer than the model'?s (maximum )?context length",          # sglang
    r"exceeds? the model'?s (maximum )?context (length|window)",    # sglang
    r"maximum context length is \d+",                               # vLLM, OpenAI
    r"longer than the maximum model length",                        # vLLM decoder prompt
    r"context[_ ]length[_ ]exceeded",                               # OpenAI error code
    r"(prompt|input) is too long.*(context|max(imum)?[_ ]model[_ ]len)",  # vLLM "too long and exceeds"
    r"too many tokens.*(context|model length|max_model_len)",       # generic, only with a length word
    r"(context|max_model_len).*too many tokens",
)
_OVERFLOW = re.compile("|".join(f"(?:{p})" for p in _OVERFLOW_PATTERNS), re.IGNORECASE | re.DOTALL)
_RETRY_STATUS = {408, 409, 429}
_SEED_REJECTED = re.compile(r"\bseed\b", re.IGNORECASE)
MAX_BACKOFF_S = 30.0
#: seconds a request may go unanswered before the client checks that the server still answers
DEFAULT_STALL_S = 60.0
#: how long the liveness knock (rule 2) may take before the server counts as hung
PROBE_TIMEOUT_S = 10.0


def is_context_overflow(message: str) -> bool:
    """True when an error message says the request does not fit the model's context window."""
    return bool(_OVERFLOW.search(message or ""))


class LLMClient:
    """Chat with one model on an OpenAI-compatible server rooted at ``base_url`` (no ``/v1``).

    ``timeout_s`` bounds each request; ``stall_s`` is the hung-server bound (module rule 2);
    ``max_retries`` retries follow the first attempt, waiting ``backoff_s * 2**k`` (at most 30 s). ``log`` is a Logger for retry warnings, or a callable
    that also receives each warning line (e.g. a trial's log writer).
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str = "EMPTY",
        timeout_s: float = 600.0,
        stall_s: float = DEFAULT_STALL_S,
        max_retries: int = 3,
        backoff_s: float = 1.0,
        log: logging.Logger | Callable[[str], Any] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.timeout_s = timeout_s
        self.stall_s = stall_s
        self.max_retries = max(0, int(max_retries))
        self.backoff_s = backoff_s
        self._log = log
        #: retries made over this client's life (all calls)
        self.total_retries = 0
        #: False once the server rejected the ``seed`` field (no later request carries it)
        self.seed_supported = True
        self._context_length: int | None = None
        self._context_known = False
        self._client = openai.OpenAI(
            base_url=f"{self.base_url}/v1",
            api_key=api_key,
            timeout=httpx.Timeout(timeout_s, connect=min(10.0, timeout_s)),
            max_retries=0,  # tenacity's bounded, logged retries in chat()
            # uvicorn-based servers drop idle keep-alive connections after 5 s, the same as httpx's
            # default expiry: reusing one at that moment fails the request, so expire ours sooner
            http_client=openai.DefaultHttpxClient(limits=httpx.Limits(keepalive_expiry=2.0)),
        )

    # -- requests -----------------------------------------------------------------------------
    def chat(self, messages: list[dict], params: SamplingParams) -> ChatResult:
        """One chat completion with explicit sampling parameters.

        Raises :class:`ContextOverflowError` (no retry) or :class:`LLMError` (after the retries).
        """
        kwargs: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "max_tokens": params.max_tokens,
        }
        if params.seed is not None and self.seed_supported:
            kwargs["seed"] = params.seed
        extra_body: dict[str, Any] = {}
        if params.enable_thinking is not None:
            extra_body["chat_template_kwargs"] = {"enable_thinking": params.enable_thinking}
        if params.response_format is not None:
            # raw, not the SDK's typed argument: llama-cpp-python's shape is not OpenAI's
            extra_body["response_format"] = params.response_format
        if extra_body:
            kwargs["extra_body"] = extra_body
        started = time.monotonic()
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.max_retries + 1),
            wait=tenacity.wait_exponential(multiplier=self.backoff_s, max=MAX_BACKOFF_S),
            retry=tenacity.retry_if_exception_type(_Retryable),
            before_sleep=self._note_retry,
            reraise=True,
        )
        try:
            result = retrying(self._once, kwargs)
        except _Retryable as exc:
            attempts = retrying.statistics.get("attempt_number", 1)
            died = death_line(self.base_url)
            if died:
                raise ServerDiedError(died) from exc.__cause__
            raise LLMError(f"model server {self.base_url} failed after {attempts} attempt(s); last fault: "
                           f"{exc.why}") from exc.__cause__
        result.retries = retrying.statistics.get("attempt_number", 1) - 1
        result.latency_s = time.monotonic() - started
        result.seed_sent = "seed" in kwargs  # _once drops a rejected seed from kwargs
        return result

    def _once(self, kwargs: dict[str, Any]) -> ChatResult:
        """One request, watched for a hung server (module rule 2)."""
        box: dict[str, Any] = {}
        worker = threading.Thread(target=self._into, args=(box, kwargs), daemon=True, name="llm-request")
        started = time.monotonic()
        worker.start()
        knock_at = started + self.stall_s
        while True:
            worker.join(max(0.0, min(knock_at, started + self.timeout_s + 5.0) - time.monotonic()))
            if not worker.is_alive():
                break
            now = time.monotonic()
            if now >= started + self.timeout_s + 5.0:  # httpx should have timed out: do not wait forever
                raise _Retryable(f"no reply within {self.timeout_s:g} s")
            if not self._answers():
                # abandoned: its thread ends when httpx times out; its answer, if any, is dropped
                raise _Retryable(f"server hung: no reply for {now - started:.0f} s and it no longer answers HTTP "
                                 f"(hung-server bound {self.stall_s:g} s, --llm-stall-s)")
            knock_at = time.monotonic() + self.stall_s
        if "err" in box:
            raise box["err"]
        return box["ok"]

    def _answers(self) -> bool:
        """True when the server answers any HTTP request within ``PROBE_TIMEOUT_S`` (alive, maybe busy)."""
        try:
            httpx.get(f"{self.base_url}/health", timeout=min(PROBE_TIMEOUT_S, self.stall_s))
        except httpx.HTTPError:
            return False
        return True

    def _into(self, box: dict[str, Any], kwargs: dict[str, Any]) -> None:
        try:
            box["ok"] = self._request(kwargs)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            box["err"] = exc

    def _request(self, kwargs: dict[str, Any]) -> ChatResult:
        """One HTTP request; a failure worth retrying raises :class:`_Retryable`."""
        try:
            return _to_result(self._client.chat.completions.create(**kwargs))
        except openai.APIStatusError as exc:
            message = _error_text(exc)
            if exc.status_code in (400, 422) and "seed" in kwargs and _SEED_REJECTED.search(message):
                kwargs.pop("seed")
                self.seed_supported = False
                self._note(f"{self.base_url} rejected the seed field (HTTP {exc.status_code}: {message[:120]}); "
                           "sending requests without a seed from now on")
                return self._request(kwargs)  # once: the seed is gone now
            if is_context_overflow(message):
                raise ContextOverflowError(f"context overflow (HTTP {exc.status_code}): {message}") from exc
            if not (exc.status_code >= 500 or exc.status_code in _RETRY_STATUS):
                raise LLMError(f"HTTP {exc.status_code} from {self.base_url}: {message}") from exc
            raise _Retryable(f"HTTP {exc.status_code}: {message[:200]}") from exc
        except openai.APITimeoutError as exc:
            raise _Retryable(f"no reply within {self.timeout_s:g} s (APITimeoutError)") from exc
        except openai.APIConnectionError as exc:
            died = death_line(self.base_url)
            if died:
                raise ServerDiedError(died) from exc
            cause = exc.__cause__
            raise _Retryable(f"cannot connect ({type(cause or exc).__name__}: {cause or exc})") from exc
        except (openai.APIResponseValidationError, ValueError) as exc:  # JSONDecodeError is a ValueError
            raise _Retryable(f"the server answered with a body that is not a chat completion "
                             f"({type(exc).__name__}: {str(exc)[:120]})") from exc
        except _MalformedReply as exc:
            raise _Retryable(f"malformed reply: {exc}") from exc

    def _note_retry(self, state: tenacity.RetryCallState) -> None:
        """tenacity's before-sleep hook: count and log the retry about to happen."""
        self.total_retries += 1
        why = state.outcome.exception().why if state.outcome is not None else "?"
        delay = state.next_action.sleep if state.next_action is not None else 0.0
        self._note(f"LLM request failed ({why}); retry {state.attempt_number}/{self.max_retries} in {delay:.1f} s")

    def probe_seed(self) -> bool | None:
        """Does the server accept ``seed``? One 1-token request: True, False (rejected; this
        client then sends none), or None when the request failed for another reason."""
        try:
            reply = self.chat([{"role": "user", "content": "hi"}], SamplingParams(max_tokens=1, seed=0))
        except LLMError:
            return None
        return reply.seed_sent

    def context_length(self) -> int | None:
        """The served context window (``max_model_len`` of ``/v1/models``), cached; None if unknown."""
        if self._context_known:
            return self._context_length
        try:
            page = self._client.models.list()
        except openai.APIStatusError as exc:  # the server answered: it will not say, don't ask again
            self._note(f"{self.base_url}/v1/models answered HTTP {exc.status_code}: context length unknown")
            self._context_known = True
            return None
        except openai.OpenAIError as exc:
            self._note(f"cannot read {self.base_url}/v1/models ({type(exc).__name__}): context unknown")
            return None
        entries = list(page.data)
        chosen = next((m for m in entries if m.id == self.model), entries[0] if len(entries) == 1 else None)
        value = None
        if chosen is not None:
            extra = chosen.model_extra or {}
            value = extra.get("max_model_len") or extra.get("context_length")
        self._context_length = int(value) if isinstance(value, int | float) and value > 0 else None
        self._context_known = True
        return self._context_length

    def close(self) -> None:
        """Close the underlying HTTP connections."""
        self._client.close()

    def _note(self, message: str) -> None:
        """Log a warning (to ``log`` when it is a Logger, else ours; a callable ``log`` also gets it)."""
        if callable(self._log) and not isinstance(self._log, logging.Logger):
            self._log(message)
        (self._log if isinstance(self._log, logging.Logger) else logger).warning(message)


class _MalformedReply(Exception):
    """A 200 answer without a usable choice (retried like a server error)."""


class _Retryable(Exception):
    """A failed request worth another try; ``why`` is the line logged for it."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


def _error_text(exc: openai.APIStatusError) -> str:
    """The server's error message, wherever the server put it."""
    body = exc.body
    parts: list[str] = []
    if isinstance(body, dict):
        inner = body.get("error") if isinstance(body.get("error"), dict) else body
        for key in ("message", "detail", "error"):
            value = inner.get(key)
            if isinstance(value, str):
                parts.append(value)
    elif isinstance(body, str):
        parts.append(body)
    if not parts:
        parts.append(exc.message or "")
    return " ".join(parts)


def _to_result(response: Any) -> ChatResult:
    if not getattr(response, "choices", None):
        raise _MalformedReply("no choices in the reply")
    choice = response.choices[0]
    message = choice.message
    extra = message.model_extra or {}
    reasoning = extra.get("reasoning_content") or extra.get("reasoning") or None
    usage = Usage()
    if response.usage is not None:
        u = response.usage
        details = getattr(u, "completion_tokens_details", None)
        reasoning_tokens = getattr(details, "reasoning_tokens", None) if details is not None else None
        if reasoning_tokens is None:
            reasoning_tokens = (u.model_extra or {}).get("reasoning_tokens")
        usage = Usage(
            prompt_tokens=int(u.prompt_tokens or 0),
            completion_tokens=int(u.completion_tokens or 0),
            reasoning_tokens=int(reasoning_tokens or 0),
        )
    return ChatResult(
        content=message.content or "",
        reasoning=reasoning if isinstance(reasoning, str) else None,
        finish_reason=choice.finish_reason,
        usage=usage,
        model=getattr(response, "model", None),
    )
