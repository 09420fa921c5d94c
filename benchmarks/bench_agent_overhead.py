"""Agent loop overhead and the wall-clock saved by idle detection, over a scripted episode.

A scripted OpenAI-compatible server (real HTTP on 127.0.0.1) replays a fixed episode of
ordinary shell work with the generous durations models tend to ask for; the Terminus agent
drives a real tmux in a real base-image container. The episode runs twice:

* idle detection (``runners.terminal.TmuxTerminal``: return as soon as the shell is idle);
* fixed sleeps (Terminus-2 behaviour: type, then sleep the full ``duration``).

Printed per variant: harness overhead per turn (reply arrival -> next request leaving, minus
terminal time; measured inside the agent, and from the server's side, which adds the HTTP
round trip), terminal time, episode wall-clock; then the time saved.

    .venv/bin/python benchmarks/bench_agent_overhead.py [--repeats 1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import docker
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from test_agent_scripted_server import ScriptedServer  # noqa: E402

from ablbench.paths import BASE_IMAGE  # noqa: E402
from harness.agents.terminus import AgentConfig, TerminusAgent  # noqa: E402
from harness.llm_client import LLMClient  # noqa: E402
from harness.trace import read_trace  # noqa: E402
from runners.environment import TaskEnvironment  # noqa: E402
from runners.terminal import MAX_DURATION_S, SendResult, TmuxTerminal  # noqa: E402

#: (keystrokes, duration) per turn: a plausible "write a script, run it, check it" episode
EPISODE: list[list[tuple[str, float]]] = [
    [("ls -la /app\n", 1.0)],
    [("cd /app && mkdir -p work\n", 0.5), ("cd work\n", 0.5)],
    [("cat > sum.py << 'EOF'\nimport sys\nprint(sum(int(x) for x in sys.stdin))\nEOF\n", 1.0)],
    [("seq 1 1000 | python3 sum.py\n", 2.0)],
    [("python3 -c 'import json; print(json.dumps({\"a\": 1}))' > out.json\n", 1.0), ("cat out.json\n", 0.5)],
    [("sleep 1.5; echo built\n", 5.0)],
    [("grep -c a out.json\n", 1.0)],
    [("python3\n", 2.0), ("print(6 * 7)\n", 1.0), ("exit()\n", 1.0)],
    [("wc -l sum.py out.json\n", 1.0)],
    [("ls\n", 0.5)],
]


def _reply(cmds: list[tuple[str, float]], done: bool = False) -> str:
    return json.dumps({
        "analysis": "Looking at the output.", "plan": "Next step.",
        "commands": [{"keystrokes": k, "duration": d} for k, d in cmds], "task_complete": done,
    })


class FixedSleepTerminal(TmuxTerminal):
    """Terminus-2's terminal: type the keystrokes, then sleep the whole ``duration``."""

    def send(self, keystrokes: str, duration: float = 1.0, *, deadline: float | None = None) -> SendResult:
        t0 = time.monotonic()
        super().send(keystrokes, 0.0, deadline=deadline)
        limit = min(max(duration, 0.0), MAX_DURATION_S)
        if deadline is not None:
            limit = min(limit, max(0.0, deadline - t0))
        time.sleep(max(0.0, limit - (time.monotonic() - t0)))
        return SendResult("timeout", time.monotonic() - t0)


def run_episode(container, terminal_cls: type[TmuxTerminal], logs: Path) -> dict:
    """One scripted episode; figures from the trace and from the server's request log."""
    replies = [_reply(c) for c in EPISODE] + [_reply([], True), _reply([], True)]
    with ScriptedServer(replies) as srv:
        client = LLMClient(srv.base_url, srv.model, max_retries=0)
        agent = TerminusAgent(client, AgentConfig(max_turns=len(replies)))
        agent.terminal_cls = terminal_cls
        t0 = time.monotonic()
        res = agent.run(TaskEnvironment.attach(container), "Sum the numbers 1..1000 with a script.", logs, time.monotonic() + 600, logs)
        wall = time.monotonic() - t0
        requests = list(srv.requests)
    turns = [t for t in read_trace(logs / "trace.jsonl") if "turn" in t]
    assert res.stop.value == "completed", res
    harness = [t["timings"]["harness_s"] for t in turns[:-1]]  # the last reply ends the episode
    terminal = [t["timings"]["terminal_s"] for t in turns]
    server_gap = [
        requests[i + 1]["arrived"] - requests[i]["answered"] - terminal[i] for i in range(len(requests) - 1)
    ]
    asked = sum(min(c["duration"], MAX_DURATION_S) for t in turns for c in t["commands"])
    return {"turns": res.turns, "wall": wall, "gap_in_agent": res.extra["harness_s"] / max(1, res.turns - 1), "terminal": sum(terminal), "asked": asked,
            "harness": harness, "server_gap": server_gap, "commands": sum(len(t["commands"]) for t in turns)}


def parser_worst_cases(console: Console) -> None:
    """Parse time of ordinary and pathological replies (the parser runs on every turn)."""
    from harness.parser import parse_action

    std = _reply([("ls -la\n", 1.0)])
    cases = {
        "ordinary reply": std,
        "fenced + split + think": f"<think>{'x' * 2000}</think>```json\n{{\"analysis\": \"a\"}}\n```\n{std}",
        "50 KB valid reply": '{"analysis": "' + "y" * 50_000 + '", "commands": []}',
        "50 KB single-quoted (repair)": "{'analysis': '" + "word " * 10_000 + "', 'commands': [],",
        "20,000 open braces": "{" * 20_000,
        "20 KB random JSON-ish junk": "".join(["{\"a\": ", "[", "\"x\", ", "}", "]", "'y', "][i % 6] for i in range(4000)),
        "400 KB junk": "a{" * 200_000,
    }
    table = Table(title="parse_action time")
    table.add_column("reply")
    table.add_column("chars")
    table.add_column("ms (best of 3)")
    table.add_column("status")
    for name, text in cases.items():
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            got = parse_action(text)
            best = min(best, time.perf_counter() - t0)
        table.add_row(name, str(len(text)), f"{1000 * best:.2f}", got.status)
    console.print(table)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    console = Console(width=170)
    parser_worst_cases(console)
    client = docker.from_env()
    results: dict[str, list[dict]] = {"idle detection": [], "fixed sleeps": []}
    container = client.containers.run(BASE_IMAGE, ["sleep", "infinity"], detach=True, network_mode="none",
                                      name=f"ablbench-bench-agent-{uuid.uuid4().hex[:8]}")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for r in range(args.repeats):
                for label, cls in (("idle detection", TmuxTerminal), ("fixed sleeps", FixedSleepTerminal)):
                    logs = Path(tmp) / f"{label.replace(' ', '-')}-{r}"
                    container.exec_run(["rm", "-rf", "/app/work"])
                    results[label].append(run_episode(container, cls, logs))
    finally:
        container.remove(force=True)

    table = Table(title=f"Scripted episode: {len(EPISODE) + 2} turns, repeats={args.repeats}")
    for col in ("variant", "turns", "commands", "parse+bookkeeping ms/turn (mean / p50 / max)",
                "reply->next request ms/turn, agent side", "same, server side (+HTTP)", "terminal s", "asked durations s", "episode wall s"):
        table.add_column(col)
    for label, runs in results.items():
        h = [x for run in runs for x in run["harness"]]
        g = [x for run in runs for x in run["server_gap"]]
        table.add_row(
            label, str(runs[0]["turns"]), str(runs[0]["commands"]),
            f"{1000 * statistics.mean(h):.1f} / {1000 * statistics.median(h):.1f} / {1000 * max(h):.1f}",
            f"{1000 * statistics.mean(r['gap_in_agent'] for r in runs):.1f}",
            f"{1000 * statistics.mean(g):.1f}",
            f"{statistics.mean(r['terminal'] for r in runs):.2f}",
            f"{statistics.mean(r['asked'] for r in runs):.2f}",
            f"{statistics.mean(r['wall'] for r in runs):.2f}",
        )
    console.print(table)
    idle = statistics.mean(r["wall"] for r in results["idle detection"])
    fixed = statistics.mean(r["wall"] for r in results["fixed sleeps"])
    console.print(f"wall-clock saved by idle detection: {fixed - idle:.2f} s of {fixed:.2f} s "
                  f"({100 * (fixed - idle) / fixed:.0f}%) over the episode")
    g = [x for r in results["idle detection"] for x in r["server_gap"]]
    console.print(f"harness overhead per turn (reply sent by the server -> next request received, minus "
                  f"command time): {1000 * statistics.mean(g):.1f} ms mean, {1000 * max(g):.1f} ms max "
                  "(goal <= 50 ms)")


if __name__ == "__main__":
    main()
