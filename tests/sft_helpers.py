"""Run folders for the SFT tests: trials laid out as ``ablbench run`` writes them, with traces in the
Terminus agent's format (start record with the first request, one record per turn, end record)."""

from __future__ import annotations

import json
from pathlib import Path

from harness.prompt import initial_messages

SCREEN = "root@box:/app#"


def reply(cmd: str, done: bool = False) -> str:
    """A reply in the agent's action format."""
    return json.dumps({"analysis": f"Need to run {cmd.split()[0]}.", "plan": f"Run `{cmd}`.",
                       "commands": [{"keystrokes": cmd + "\n", "duration": 0.5}], "task_complete": done})


def trace_records(instruction: str, cmds: list[str], trimmed: list[int] | None = None) -> list[dict]:
    """The records of one episode: each command one turn, the last turn also claims completion."""
    recs: list[dict] = [{"t": 1.0, "event": "start", "instruction": instruction, "model": "m",
                         "messages": initial_messages(instruction, SCREEN)}]
    for i, cmd in enumerate(cmds, start=1):
        recs.append({"t": 1.0 + i, "turn": i, "reply": reply(cmd, done=i == len(cmds)),
                     "request": {"messages": 2 * i, "trimmed_turns": (trimmed or [0] * len(cmds))[i - 1]},
                     "commands": [{"keystrokes": cmd + "\n", "duration": 0.5}],
                     "observation": f"{SCREEN} {cmd}\n{SCREEN}",
                     "next_message": f"New terminal output:\n{SCREEN} {cmd}\n{SCREEN}"})
    recs.append({"t": 99.0, "event": "end", "stop": "completed"})
    return recs


TASKS = {
    "make-notes": ("Create the file /app/notes.txt.", ["touch /app/notes.txt"]),
    "copy-config": ("Copy /etc/hostname to /app/host.txt.", ["cp /etc/hostname /app/host.txt", "ls /app"]),
    "count-lines": ("Write the number of lines of /etc/passwd to /app/n.txt.", ["wc -l < /etc/passwd > /app/n.txt"]),
    "make-tree": ("Create the folders /app/a/b/c.", ["mkdir -p /app/a/b/c", "ls -R /app/a"]),
    "remove-tmp": ("Delete /app/tmp.log.", ["rm -f /app/tmp.log"]),
}


def write_run(root: Path, tasks: dict[str, tuple[str, list[str]]] = TASKS, failed: tuple[str, ...] = ()) -> Path:
    """An ``ablbench run`` results folder with one finished trial per task (reward 1 unless in ``failed``)."""
    for name, (instruction, cmds) in tasks.items():
        trial = root / name / "1"
        trial.mkdir(parents=True, exist_ok=True)
        (trial / "trace.jsonl").write_text("".join(json.dumps(r) + "\n" for r in trace_records(instruction, cmds)))
        reward = 0.0 if name in failed else 1.0
        (trial / "result.json").write_text(json.dumps({"task": name, "attempt": 1, "finished": True,
                                                       "reward": reward, "outcome": "passed" if reward else "failed"}))
        (trial / "reward.txt").write_text(f"{reward:g}\n")
    return root


def lora_model(tiny: Path, settings):
    """``tiny`` in fp32 with ``settings``' LoRA adapters, their B matrices seeded non-zero (PEFT starts
    them at zero, which would make any merge or comparison trivially exact)."""
    import torch
    from transformers import AutoModelForCausalLM

    from sft import train

    model = train.add_lora(AutoModelForCausalLM.from_pretrained(tiny, dtype=torch.float32), settings)
    with torch.no_grad():
        g = torch.Generator().manual_seed(5)
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(0.05 * torch.randn(p.shape, generator=g))
    return model
