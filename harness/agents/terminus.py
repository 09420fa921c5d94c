"""The Terminus-style agent: model reply -> tolerant parse -> keystrokes in tmux -> observation.

One episode (``TerminusAgent.run``):

* The first request is ``harness.prompt.initial_messages(instruction, screen)`` (the same
  template the abliteration contrast set uses).
* Each reply's reasoning (``ChatResult.reasoning`` and ``<think>`` blocks) is kept in the trace
  and removed before parsing and from the history sent back.
* Parse errors go back to the model ("Previous response had parsing errors: ..."), as do
  warnings; ``max_parse_failures`` consecutive failures end the episode (PARSE_FAIL_EXHAUSTED).
* ``task_complete`` must be sent twice in a row; the first time the model is asked to confirm.
* Deadline: every request waits at most the time left, every command at most the time left.
* Context management = trimming, not summarising (deterministic, no extra model call): before
  each request the prompt size is estimated (characters x the tokens-per-character ratio seen
  in the last reply's usage, 1/3 before any reply); if prompt + ``max_tokens`` does not fit
  ``client.context_length()`` (minus a margin), the oldest exchanges after the task message are
  replaced by one line saying how many were omitted; each trim is a context event. If even the
  task plus the latest exchange cannot fit with a useful reply budget, or the server reports an
  overflow that trimming cannot fix, the episode ends with CONTEXT_EXCEEDED.
* ``LLMError`` ends it with LLM_ERROR; any other exception with ERROR (an infrastructure fault).
  Either way the counters keep what the turns so far counted (the trace holds those turns).
* Seeds: each request carries ``harness.seeds.request_seed(run seed, task, attempt, turn)``
  (task and attempt come from :meth:`TerminusAgent.for_trial`); the trace records it and whether
  it was sent (``seed_sent``: False when ``send_seed`` is off or the server rejected seeds).
* Cut-off replies (``finish_reason == "length"``), as Terminus-2: none of their commands run
  unless a complete action object closed before the cut (``harness.parser`` rule 8; the trace's
  ``cut_off`` says "dropped" or "salvaged"). The next message says the reply was cut off and asks
  for a shorter one. They are counted in ``cut_off``, not in ``parse_fail``/``no_cmd``; a dropped
  one counts toward the ``max_parse_failures`` consecutive-failure cap.

``trace.jsonl`` gets a ``start`` record (settings, model, instruction, the first request's messages),
one line per turn and a final ``{"event": "end"}``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ablbench.agent_api import AgentResult, AgentStop, Environment
from harness.agents import defaults
from harness.llm_types import ChatResult, ContextOverflowError, LLMError, SamplingParams, ServerDiedError
from harness.parser import ParsedAction, parse_action, strip_reasoning
from harness.prompt import initial_messages
from harness.seeds import request_seed
from harness.trace import TraceWriter
from harness.trial_behaviour import metrics_from_file
from runners.terminal import TerminalError, TmuxTerminal

CONFIRM_MESSAGE = (
    "You set \"task_complete\": true. Are you sure the task is fully done? Your work will be graded "
    "and you cannot change anything afterwards. If so, reply again with \"task_complete\": true; "
    "otherwise continue working."
)
#: tokens kept free besides the reply budget (template overhead, estimation error)
CONTEXT_MARGIN_TOKENS = 256
#: a reply budget below this is useless: the episode ends instead (CONTEXT_EXCEEDED)
MIN_REPLY_TOKENS = 256


class ChatClient(Protocol):
    """What the agent needs from ``harness.llm_client.LLMClient``."""

    def chat(self, messages: list[dict], params: SamplingParams) -> ChatResult: ...

    def context_length(self) -> int | None: ...


@dataclass
class AgentConfig:
    """Knobs of the Terminus agent (defaults = the user's runs)."""

    max_turns: int = defaults.MAX_TURNS
    max_tokens: int = defaults.MAX_TOKENS
    temperature: float = defaults.TEMPERATURE
    top_p: float = defaults.TOP_P
    #: the run seed every request's seed derives from (harness.seeds); None: send no seed
    seed: int | None = defaults.SEED
    #: False when the server rejects ``seed`` (seeds are then derived and traced, not sent)
    send_seed: bool = True
    max_parse_failures: int = 5
    enable_thinking: bool | None = None
    observation_bytes: int = 10_000
    with_system_prompt: bool = True
    #: override the server's context length (tokens); None = ask the server
    context_length: int | None = None
    history_limit: int = 100_000
    #: ``response_format`` sent with every request (``--structured``: harness.action_schema); None: free text
    response_format: dict | None = None


@dataclass
class _Episode:
    messages: list[dict]
    head: int  # messages[:head] are never trimmed (system + task)
    task_content: str = ""
    trimmed: int = 0
    tokens_per_char: float = 1 / 3
    result: AgentResult = field(default_factory=lambda: AgentResult(stop=AgentStop.MAX_TURNS))


class _Timeout(Exception):
    pass


def history_reply(content: str) -> str:
    """A raw reply as the agent keeps it in its history (reasoning removed); ``ablbench sft`` trains on this."""
    visible, _, _ = strip_reasoning(content)
    return visible.strip() or "(empty reply)"


def _chars(messages: list[dict]) -> int:
    return sum(len(str(m.get("content") or "")) for m in messages)


def _cut_off_message(parsed: ParsedAction, max_tokens: int) -> str:
    if parsed.cut_off == "salvaged":
        return (f"WARNING: your previous response was cut off at the token limit ({max_tokens} tokens). Only the "
                "commands of the complete JSON object before the cut were run; the rest was ignored. Keep your "
                "replies shorter.")
    return (f"ERROR: your previous response was cut off at the token limit ({max_tokens} tokens) before its JSON "
            "object was complete, so NONE of its commands were run. Reply again with a shorter response: less "
            "analysis, fewer commands, and long files written in several smaller commands.")


def _feedback(parsed: ParsedAction, observation: str, confirm: bool, max_tokens: int = 0) -> str:
    parts = []
    if parsed.cut_off is not None:
        parts.append(_cut_off_message(parsed, max_tokens))
    if parsed.status == "parse_fail" and parsed.cut_off is None:
        parts.append(
            f"Previous response had parsing errors:\nERROR: {parsed.error}\n\n"
            "Please fix these issues and reply with one proper JSON object."
        )
    if parsed.warnings:
        parts.append("Previous response had warnings:\n" + "\n".join(f"- {w}" for w in parsed.warnings))
    if parsed.status == "no_cmd":
        parts.append("Your previous response ran no command.")
    if confirm:
        parts.append(CONFIRM_MESSAGE)
    parts.append("New terminal output:\n" + (observation if observation.strip() else "(no new output)"))
    return "\n\n".join(parts)


class TerminusAgent:
    """The Terminus-style agent (``harness.agents.terminus`` module doc)."""

    name = "terminus"
    #: the terminal class (benchmarks swap in a fixed-sleep variant for comparison)
    terminal_cls: type[TmuxTerminal] = TmuxTerminal

    def __init__(self, client: ChatClient, config: AgentConfig | None = None) -> None:
        self.client = client
        self.config = config or AgentConfig()
        #: the trial this agent works on (seeds derive from them); set by :meth:`for_trial`
        self.task = ""
        self.attempt = 1

    def for_trial(self, task: str, attempt: int) -> TerminusAgent:
        """This agent for attempt ``attempt`` of ``task`` (the trial calls it before ``run``)."""
        self.task, self.attempt = task, int(attempt)
        return self

    # ------------------------------------------------------------------ public
    def run(
        self, env: Environment, instruction: str, logs_dir: Path, deadline: float,
        task_dir: Path | None = None,
    ) -> AgentResult:
        """Work on the task until done, out of turns, or past ``deadline`` (monotonic seconds)."""
        logs_dir = Path(logs_dir)
        trace = TraceWriter(logs_dir)
        terminal: TmuxTerminal | None = None
        result = AgentResult(stop=AgentStop.MAX_TURNS)
        retries_before = getattr(self.client, "total_retries", None)
        try:
            terminal = self.terminal_cls(
                env, observation_bytes=self.config.observation_bytes,
                history_limit=self.config.history_limit,
            )
            screen = terminal.start()
            trace.write({"event": "start", "config": asdict(self.config), "screen": screen,
                         "idle_detection": terminal.counter_ok,
                         # for the report and the ATIF export (ablbench.atif): who answered, and the first request
                         "model": getattr(self.client, "model", None), "instruction": instruction,
                         "messages": initial_messages(instruction, screen, with_system=self.config.with_system_prompt)})
            self._loop(terminal, trace, instruction, screen, deadline, result)
        except TerminalError as exc:  # the counters so far stay: the record says what happened
            result.stop = AgentStop.ERROR
            result.error = str(exc)
        except Exception as exc:  # noqa: BLE001 - reported to the trial as an infrastructure error
            result.stop = AgentStop.ERROR
            result.error = f"{type(exc).__name__}: {exc}"
        finally:
            total = getattr(self.client, "total_retries", None)
            if isinstance(total, int) and isinstance(retries_before, int):
                # also counts the retries of a request that finally failed (LLM_ERROR)
                result.retries = max(result.retries, total - retries_before)
            if terminal is not None:
                result.extra["terminal_restarts"] = terminal.restarts
                terminal.close()
            trace.write({"event": "end", "stop": result.stop.value, "error": result.error,
                         "counters": {k: v for k, v in asdict(result).items() if k not in ("extra",)},
                         "extra": result.extra})
            trace.close()
            try:  # the behaviour columns of master_summary.csv (harness.trial_behaviour)
                result.extra["behaviour"] = metrics_from_file(trace.path)
            except Exception as exc:  # noqa: BLE001 - metrics must never cost a trial; analyze recomputes them
                result.extra["behaviour_error"] = f"{type(exc).__name__}: {exc}"
        return result

    # ------------------------------------------------------------------ the loop
    def _loop(self, terminal: TmuxTerminal, trace: TraceWriter, instruction: str, screen: str,
              deadline: float, res: AgentResult) -> AgentResult:
        """The turns; counts into ``res`` as they happen (an exception leaves what was counted)."""
        cfg = self.config
        messages = initial_messages(instruction, screen, with_system=cfg.with_system_prompt)
        ep = _Episode(messages=messages, head=len(messages), task_content=messages[-1]["content"], result=res)
        res = ep.result
        ctx_len = cfg.context_length or self.client.context_length()
        res.extra.update({"context_length": ctx_len, "model_s": 0.0, "terminal_s": 0.0, "harness_s": 0.0,
                          "wait_saved_s": 0.0})
        consecutive_fail = 0
        confirm_pending = False
        t_reply: float | None = None  # when the previous reply arrived (harness overhead)
        terminal_prev = 0.0
        while True:
            now = time.monotonic()
            if now >= deadline:
                res.stop = AgentStop.TIMEOUT
                return res
            if res.turns >= cfg.max_turns:
                res.stop = AgentStop.MAX_TURNS
                return res
            max_tokens = self._fit_context(ep, ctx_len)
            if max_tokens is None:
                res.stop = AgentStop.CONTEXT_EXCEEDED
                res.error = f"conversation no longer fits the context window ({ctx_len} tokens)"
                return res
            seed = None if cfg.seed is None else request_seed(cfg.seed, self.task, self.attempt, res.turns + 1)
            params = SamplingParams(temperature=cfg.temperature, top_p=cfg.top_p, max_tokens=max_tokens,
                                    seed=seed if cfg.send_seed else None, enable_thinking=cfg.enable_thinking,
                                    response_format=cfg.response_format)
            req_chars = _chars(ep.messages)
            t_request = time.monotonic()
            if t_reply is not None:
                res.extra["harness_s"] += max(0.0, t_request - t_reply - terminal_prev)
            try:
                reply = self._chat(list(ep.messages), params, deadline)
            except _Timeout:
                res.stop = AgentStop.TIMEOUT
                res.error = "agent deadline passed while waiting for the model"
                return res
            except ContextOverflowError as exc:
                res.context_events += 1
                ep.tokens_per_char *= 1.25  # our estimate was too low: be more careful from now on
                if self._trim(ep, keep_last=1):
                    trace.write({"event": "context_overflow", "error": str(exc), "trimmed_total": ep.trimmed})
                    t_reply, terminal_prev = None, 0.0
                    continue
                res.stop = AgentStop.CONTEXT_EXCEEDED
                res.error = str(exc)
                return res
            except LLMError as exc:
                res.stop = AgentStop.LLM_ERROR
                res.error = str(exc)
                if isinstance(exc, ServerDiedError):  # the scheduler stops the run at once
                    res.extra["server_died"] = True
                return res
            t_reply = time.monotonic()
            res.turns += 1
            res.retries += reply.retries
            res.tokens_in += reply.usage.prompt_tokens
            res.tokens_out += reply.usage.completion_tokens
            res.extra["model_s"] += t_reply - t_request
            if reply.usage.prompt_tokens > 0 and req_chars > 0:
                ep.tokens_per_char = reply.usage.prompt_tokens / req_chars

            content = reply.content or ""
            _, inline_reasoning, _ = strip_reasoning(content)
            reasoning = "\n".join(r for r in (reply.reasoning, inline_reasoning) if r)
            parsed = parse_action(content, cut_off=reply.finish_reason == "length")
            if parsed.cut_off is not None:
                res.cut_off += 1
            elif parsed.status == "parse_fail":
                res.parse_fail += 1
            elif parsed.status == "no_cmd":
                res.no_cmd += 1
            consecutive_fail = consecutive_fail + 1 if parsed.status == "parse_fail" else 0
            if seed is not None and cfg.send_seed and not reply.seed_sent:
                res.extra["seed_rejected"] = True

            # execute
            t_term = time.monotonic()
            executed: list[dict] = []
            try:
                for cmd in parsed.commands:
                    if time.monotonic() >= deadline:
                        break
                    sent = terminal.send(cmd.keystrokes, cmd.duration, deadline=deadline)
                    res.extra["wait_saved_s"] += max(0.0, min(cmd.duration, 60.0) - sent.waited_s)
                    executed.append({"keystrokes": cmd.keystrokes, "duration": cmd.duration,
                                     "waited_s": round(sent.waited_s, 4), "ended": sent.how})
                observation = terminal.observe()  # also after a parse failure: background output counts
            except Exception as exc:
                # the turn is counted: the trace gets it too, with what ran before the fault
                trace.write({"turn": res.turns, "reply": content, "finish_reason": reply.finish_reason,
                             "usage": asdict(reply.usage), "retries": reply.retries,
                             "parse": {"status": parsed.status, "error": parsed.error,
                                       "task_complete": parsed.task_complete},
                             "commands": executed, "error": f"{type(exc).__name__}: {exc}"})
                raise
            terminal_prev = time.monotonic() - t_term
            res.extra["terminal_s"] += terminal_prev

            done = parsed.task_complete and confirm_pending
            confirm = parsed.task_complete and not confirm_pending
            confirm_pending = confirm
            exhausted = consecutive_fail >= cfg.max_parse_failures
            next_user = _feedback(parsed, observation, confirm, max_tokens)
            ep.messages.append({"role": "assistant", "content": history_reply(content)})
            ep.messages.append({"role": "user", "content": next_user})
            harness_turn = time.monotonic() - t_reply - terminal_prev
            trace.write({
                "turn": res.turns,
                "request": {"messages": len(ep.messages) - 2, "chars": req_chars,
                            "approx_tokens": round(req_chars * ep.tokens_per_char), "max_tokens": max_tokens,
                            "trimmed_turns": ep.trimmed},
                "reply": content, "reasoning": reasoning or None, "finish_reason": reply.finish_reason,
                "seed": seed, "seed_sent": reply.seed_sent, "cut_off": parsed.cut_off,
                "usage": asdict(reply.usage), "retries": reply.retries,
                "parse": {"status": parsed.status, "error": parsed.error, "warnings": parsed.warnings,
                          "task_complete": parsed.task_complete, "analysis": parsed.analysis,
                          "plan": parsed.plan},
                "commands": executed, "observation": observation, "next_message": next_user,
                "confirm_pending": confirm_pending,
                "timings": {"model_s": round(t_reply - t_request, 4), "model_latency_s": round(reply.latency_s, 4),
                            "terminal_s": round(terminal_prev, 4), "harness_s": round(harness_turn, 4)},
            })
            if done:
                res.stop = AgentStop.COMPLETED
                return res
            if exhausted:
                res.stop = AgentStop.PARSE_FAIL_EXHAUSTED
                res.error = f"{consecutive_fail} consecutive replies could not be parsed (last: {parsed.error})"
                return res

    # ------------------------------------------------------------------ helpers
    def _chat(self, messages: list[dict], params: SamplingParams, deadline: float) -> ChatResult:
        """``client.chat`` bounded by the deadline (the request is abandoned, not awaited, after it)."""
        box: dict[str, Any] = {}

        def call() -> None:
            try:
                box["ok"] = self.client.chat(messages, params)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                box["err"] = exc

        worker = threading.Thread(target=call, daemon=True, name="agent-chat")
        worker.start()
        worker.join(max(0.0, deadline - time.monotonic()))
        if worker.is_alive():
            raise _Timeout()
        if "err" in box:
            raise box["err"]
        return box["ok"]

    def _estimate(self, ep: _Episode) -> int:
        return int(_chars(ep.messages) * ep.tokens_per_char) + 8 * len(ep.messages)

    def _fit_context(self, ep: _Episode, ctx_len: int | None) -> int | None:
        """Trim old exchanges until prompt + reply budget fits; the reply budget to use (None: no fit)."""
        want = self.config.max_tokens
        if not ctx_len:
            return want
        budget = ctx_len - CONTEXT_MARGIN_TOKENS
        trimmed_now = False
        while self._estimate(ep) + want > budget and self._trim(ep, keep_last=1):
            trimmed_now = True
        if trimmed_now:
            ep.result.context_events += 1
        room = budget - self._estimate(ep)
        if room < min(want, MIN_REPLY_TOKENS):
            return None
        return min(want, room)

    @staticmethod
    def _trim(ep: _Episode, keep_last: int) -> bool:
        """Drop the oldest exchange (assistant + user) after the task message, keeping the last
        ``keep_last``; the task message gets a note saying how many were dropped. Roles keep
        alternating (task user message, then an assistant reply), which strict templates need."""
        body = ep.messages[ep.head:]
        if len(body) <= 2 * keep_last:
            return False
        ep.trimmed += 1
        ep.messages[ep.head:] = body[2:]
        note = f"\n\n[{ep.trimmed} earlier turn(s) omitted to fit the context window]"
        ep.messages[ep.head - 1] = {**ep.messages[ep.head - 1], "content": ep.task_content + note}
        return True
