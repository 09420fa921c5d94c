"""SFT training throughput: ``ablbench sft``'s batched loop vs naive batch-1 training.

    .venv/bin/python benchmarks/bench_sft.py [--model DIR] [--seqs 16] [--threads 2] [--batch-tokens 4096]
                                             [--modes full-naive,lora-naive,sft]

Default model: the bundled SmolLM2-135M-Instruct, fp32 on the CPU. Data: agent trajectories in
the Terminus format (system prompt, task, 1-3 turns with observations), rendered and masked by
:mod:`sft.tokens` exactly as ``ablbench sft`` does. Modes, each over the same sequences after one
warm-up step:

- full-naive: a plain full fine-tune, batch 1, ``model(input_ids, labels=...)`` (every logit),
  AdamW on all weights: the issue's reference (about 130 tokens/s on 2 threads);
- lora-naive: the same with LoRA adapters (rank 16, all linear layers);
- sft: ``sft.train``'s own step: length-grouped batches under ``--batch-tokens``, logits only
  where the loss is taken.

Prints tokens/s (input tokens, padding excluded) per mode, the speed-up of sft over each naive
mode, and the load average (the machine may be shared: rerun on a quiet one for real figures).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

_COMMANDS = ["ls -la /app", "mkdir -p /app/out/logs", "cp /etc/hostname /app/host.txt", "wc -l /etc/passwd",
             "chmod 600 /app/key.pem", "echo done >> /app/log.txt", "mv /app/a.txt /app/b.txt", "rm -f /app/tmp",
             "touch /app/new.txt", "find /app -name '*.py' | head", "grep -c root /etc/passwd", "du -sh /var/log"]


def _samples(n: int):
    from harness.agents.terminus import history_reply
    from harness.prompt import initial_messages
    from sft.data import samples_from_trace

    out = []
    for i in range(n):
        cmds = [_COMMANDS[(i + k) % len(_COMMANDS)] for k in range(1 + i % 3)]
        screen = "root@box:/app#"
        recs = [{"event": "start", "messages": initial_messages(f"Task {i}: run {' then '.join(cmds)}.", screen)}]
        for t, cmd in enumerate(cmds, start=1):
            reply = json.dumps({"analysis": f"Step {t}: the screen shows the prompt; {cmd.split()[0]} is next.",
                                "plan": f"Run `{cmd}` and check the output.",
                                "commands": [{"keystrokes": cmd + "\n", "duration": 0.5}],
                                "task_complete": t == len(cmds)})
            out_lines = "\n".join(f"line {j} of {cmd.split()[0]} output" for j in range(2 + 3 * (i % 4)))
            recs.append({"turn": t, "reply": reply, "request": {"trimmed_turns": 0},
                         "next_message": f"New terminal output:\n{screen} {cmd}\n{out_lines}\n{screen}"})
        out += samples_from_trace(recs, f"task-{i}", "bench", history_reply)
    return out


def _naive(model, seqs, params, steps_tokens) -> tuple[int, float]:
    import torch

    opt = torch.optim.AdamW(params, lr=1e-5)
    tokens, secs = 0, 0.0
    for k, s in enumerate(seqs):
        t0 = time.perf_counter()
        ids = torch.tensor([s.input_ids])
        loss = model(input_ids=ids, labels=torch.tensor([s.labels])).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if k:  # the first step is the warm-up
            secs += time.perf_counter() - t0
            tokens += len(s.input_ids)
    return tokens, secs


def _batched(model, seqs, params, batch_tokens) -> tuple[int, float]:
    import torch

    from sft.train import batch_loss, collate, make_batches

    opt = torch.optim.AdamW(params, lr=1e-5)
    tokens, secs = 0, 0.0
    batches = make_batches(seqs, batch_tokens, 0, 1)
    for k, idx in enumerate([batches[0], *batches]):
        t0 = time.perf_counter()
        batch = collate(seqs, idx, 0, torch.device("cpu"))
        loss, n = batch_loss(model, batch)
        (loss / n).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if k:
            secs += time.perf_counter() - t0
            tokens += int(batch["attention_mask"].sum())
    return tokens, secs


def main() -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from sft.tokens import encode_all
    from sft.train import LoraSettings, add_lora, setup_threads

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--seqs", type=int, default=16, help="trajectories (one sequence each)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-tokens", type=int, default=4096)
    ap.add_argument("--modes", default="full-naive,lora-naive,sft")
    a = ap.parse_args()
    model_dir = a.model
    if model_dir is None:
        from harness.embedded_model import materialize

        model_dir = materialize()
    threads = setup_threads(a.threads)
    tok = AutoTokenizer.from_pretrained(model_dir)
    seqs, _ = encode_all(tok, _samples(a.seqs), 4096)
    lens = sorted(len(s.input_ids) for s in seqs)
    print(f"model {model_dir.name}, fp32, {threads} threads; {len(seqs)} sequences of {lens[0]}-{lens[-1]} tokens "
          f"({sum(s.trained_tokens for s in seqs) / sum(lens):.0%} with loss)")
    results = {}
    for mode in a.modes.split(","):
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
        if mode == "full-naive":
            params = list(model.parameters())
        else:
            model = add_lora(model, LoraSettings(rank=16, alpha=32))
            params = [p for p in model.parameters() if p.requires_grad]
        model.train()
        load0 = os.getloadavg()[0]
        n, secs = _batched(model, seqs, params, a.batch_tokens) if mode == "sft" else _naive(model, seqs, params, 0)
        results[mode] = n / secs
        print(f"{mode:>11}: {n / secs:7.1f} tokens/s ({n} tokens in {secs:.1f} s; load average "
              f"{load0:.1f} -> {os.getloadavg()[0]:.1f})")
        del model
    if "sft" in results:
        for mode in ("full-naive", "lora-naive"):
            if mode in results:
                print(f"sft vs {mode}: {results['sft'] / results[mode]:.2f}x")
    print(f"load average now: {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs", flush=True)


if __name__ == "__main__":
    main()
