"""Results folders for the HTML report tests and benchmark, written with the project's own writers
(``harness.trace.TraceWriter``, ``ablbench.results``), and a headless Chromium driven by selenium.

A trial is described by a :class:`TrialPlan`; :func:`write_trial` turns it into the files
``ablbench run`` leaves in ``<results>/<task>/<attempt>/`` (trace.jsonl, result.json, reward.txt,
verifier.log, runner.stdout) and :func:`write_run` adds run.json and master_summary.csv.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ablbench.paths import BUNDLED_TASKS
from ablbench.results import write_json_atomic, write_summary, write_text_atomic
from harness.trace import TraceWriter

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
REWARD = {"passed": 1.0}
STOP = {"passed": "completed", "failed": "completed", "agent_timeout": "timeout",
        "context_exceeded": "context_exceeded", "parse_fail_exhausted": "parse_fail_exhausted",
        "llm_error": "llm_error", "infra_error": "error", "verifier_error": "completed"}


@dataclass
class Turn:
    """One agent turn: what the model replied and what the terminal showed after it."""

    keystrokes: list[str]
    observation: str
    status: str = "ok"
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    reasoning: str | None = None
    task_complete: bool = False

    def reply(self) -> str:
        if self.status == "parse_fail":
            return "I will now list the files: ls -la (no JSON here)"
        cmds = [{"keystrokes": k, "duration": 1.0} for k in self.keystrokes]
        return json.dumps({"analysis": "Looking at the terminal.", "plan": "Run the next command.",
                           "commands": cmds, "task_complete": self.task_complete})


@dataclass
class TrialPlan:
    """One trial to write."""

    task: str
    outcome: str
    turns: list[Turn]
    attempt: int = 1
    verifier_log: str = "============================= 1 passed in 0.02s ==============================\n"
    error: str = ""
    finished: bool = True


def write_trial(results: Path, plan: TrialPlan) -> dict:
    """Write one trial folder; returns its result.json content (None-like dict when unfinished)."""
    folder = results / plan.task / str(plan.attempt)
    if folder.exists():
        shutil.rmtree(folder)  # as the scheduler does before (re)running a trial
    folder.mkdir(parents=True)
    tokens_in = tokens_out = parse_fail = no_cmd = 0
    with TraceWriter(folder) as trace:
        trace.write({"event": "start", "config": {"max_turns": 20, "max_tokens": 4096, "temperature": 0.6,
                                                   "seed": 7}, "screen": "root@task:/app# ", "idle_detection": True})
        for n, turn in enumerate(plan.turns, start=1):
            usage = {"prompt_tokens": 900 + 400 * n, "completion_tokens": 60 + 10 * n}
            tokens_in += usage["prompt_tokens"]
            tokens_out += usage["completion_tokens"]
            parse_fail += turn.status == "parse_fail"
            no_cmd += turn.status == "no_cmd"
            trace.write({
                "turn": n,
                "request": {"messages": 2 * n, "chars": 4000 * n, "approx_tokens": 1000 * n, "max_tokens": 4096,
                            "trimmed_turns": 0},
                "reply": turn.reply(), "reasoning": turn.reasoning, "finish_reason": "stop", "usage": usage,
                "retries": 0,
                "parse": {"status": turn.status, "error": turn.error, "warnings": turn.warnings,
                          "task_complete": turn.task_complete, "analysis": "Looking at the terminal.",
                          "plan": "Run the next command."},
                "commands": [{"keystrokes": k, "duration": 1.0, "waited_s": 0.21, "ended": "prompt"}
                             for k in turn.keystrokes],
                "observation": turn.observation, "next_message": "New terminal output:\n" + turn.observation,
                "confirm_pending": False,
                "timings": {"model_s": 2.5, "model_latency_s": 2.4, "terminal_s": 0.3, "harness_s": 0.01},
            })
        if plan.finished:
            trace.write({"event": "end", "stop": STOP.get(plan.outcome, "completed"), "error": plan.error or None,
                         "counters": {"turns": len(plan.turns)}, "extra": {}})
    write_text_atomic(folder / "runner.stdout", f"[00:00:00.000] trial {plan.task} attempt {plan.attempt}\n")
    if not plan.finished:
        return {}
    reward = REWARD.get(plan.outcome, 0.0)
    result = {
        "task": plan.task, "attempt": plan.attempt, "finished": True, "interrupted": False, "agent": "terminus",
        "reward": reward, "outcome": plan.outcome, "error": plan.error, "agent_stop": STOP.get(plan.outcome),
        "counters": {"turns": len(plan.turns), "parse_fail": parse_fail, "no_cmd": no_cmd, "retries": 0,
                     "context_events": 0, "tokens_in": tokens_in, "tokens_out": tokens_out},
        "verifier": {"exit_code": 0 if reward else 1, "timed_out": False, "reward": reward,
                     "reward_source": "reward.txt", "error": None, "duration_s": 1.5},
        "timings": {"env_setup": 1.2, "agent": 12.5 * max(1, len(plan.turns)), "verifier": 1.5,
                    "total": 15.0 + 12.5 * len(plan.turns)},
    }
    write_text_atomic(folder / "verifier.log", plan.verifier_log)
    write_text_atomic(folder / "reward.txt", f"{reward:g}\n")
    write_json_atomic(folder / "result.json", result)
    return result


def write_run(results: Path, name: str, plans: list[TrialPlan], *, model: str, tasks_root: Path = BUNDLED_TASKS,
              attempts: int = 1, tasks: list[str] | None = None) -> Path:
    """A results folder as ``ablbench run`` leaves it: trial folders, master_summary.csv, run.json."""
    finished = [r for r in (write_trial(results, p) for p in plans) if r]
    write_summary(results, finished)
    write_json_atomic(results / "run.json", {
        "name": name, "run_id": name, "command": ["ablbench", "run", "--model", model],
        "tasks_root": str(tasks_root), "tasks": tasks or sorted({p.task for p in plans}), "attempts": attempts,
        "parallel": 2, "timeout_multiplier": 1.0,
        "agent": {"name": "terminus", "max_turns": 20, "max_tokens": 4096, "temperature": 0.6, "top_p": 0.95,
                  "seed": 7, "context_length": 8192},
        "model": {"base_url": "http://127.0.0.1:30000", "model": model,
                  "server_entry": {"id": model, "root": f"/models/{model}", "max_model_len": 8192}},
        "git": {"sha": "0123456789abcdef0123456789abcdef01234567", "dirty": False},
        "versions": {"ablbench": "0.1.0", "python": "3.11.7", "docker_engine": "20.10.24"},
        "sessions": [{"start": "2025-01-01T10:00:00Z", "end": "2025-01-01T11:10:00Z", "status": "complete"}],
        "start": "2025-01-01T10:00:00Z", "end": "2025-01-01T11:10:00Z",
    })
    return results


def screen(*lines: str) -> str:
    """A terminal screen ending at a prompt."""
    return "\n".join([*lines, "root@task:/app# "])


# ---------------------------------------------------------------- headless chromium

def chrome_missing() -> str | None:
    """Why a headless Chromium cannot run here, or None."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not path.exists():
            return f"{path} missing: run scripts/setup.sh (installs Debian's chromium and chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium missing: pip install -e .[dev]"
    return None


class Browser:
    """A headless Chromium (Debian's, driven by its chromedriver) with a fresh profile.

    Selenium is pointed at ``/usr/bin/chromedriver`` and ``/usr/bin/chromium`` and run with
    ``SE_OFFLINE=true``, so selenium-manager never downloads a driver or a browser. The
    performance log records every request the page makes.
    """

    def __init__(self, width: int = 1500, height: int = 1000) -> None:
        os.environ["SE_OFFLINE"] = "true"
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        self.profile = tempfile.mkdtemp(prefix="ablbench-chromium-")
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--disable-dev-shm-usage", f"--user-data-dir={self.profile}", f"--window-size={width},{height}"):
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
        self.driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
        self._sent: dict[str, dict] = {}

    def requests(self) -> list[dict]:
        """Every request the browser started since :meth:`clear`: ``url`` and, when the browser
        stopped it before it left, ``blocked`` (e.g. "csp")."""
        for entry in self.driver.get_log("performance"):
            msg = json.loads(entry["message"])["message"]
            params = msg.get("params", {})
            if msg.get("method") == "Network.requestWillBeSent":
                self._sent[params["requestId"]] = {"url": params["request"]["url"], "blocked": None}
            elif msg.get("method") == "Network.loadingFailed" and params.get("requestId") in self._sent:
                self._sent[params["requestId"]]["blocked"] = params.get("blockedReason")
        return list(self._sent.values())

    def clear(self) -> None:
        """Forget the requests and console messages so far."""
        self.driver.get_log("performance")
        self.driver.get_log("browser")
        self._sent = {}

    def console_errors(self) -> list[str]:
        """SEVERE console messages (CSP violations, script errors) since the last call."""
        return [e["message"] for e in self.driver.get_log("browser") if e["level"] == "SEVERE"]

    def quit(self) -> None:
        self.driver.quit()
        shutil.rmtree(self.profile, ignore_errors=True)
