"""SFT training throughput: ``ablbench sft``'s loop vs naive batch-1 training, and each speed-up alone.

    .venv/bin/python benchmarks/bench_sft.py [--model DIR] [--seqs 16] [--threads 2] [--batch-tokens 4096]
                                             [--modes full-naive,lora-naive,sft-base,sft] [--repeat 1]

Quick: ``--seqs 8``. Default model: the bundled SmolLM2-135M-Instruct on the CPU. Data: agent
trajectories in the Terminus format (system prompt, task, 1-3 turns with observations), rendered
and masked by :mod:`sft.tokens` exactly as ``ablbench sft`` does. Modes, each over the same
sequences after one warm-up step:

- full-naive: a plain full fine-tune, fp32, batch 1, ``model(input_ids, labels=...)`` (every
  logit), AdamW on all weights: the issue's reference (about 130 tokens/s on 2 threads);
- lora-naive: the same with LoRA adapters (rank 16, all linear layers of all layers);
- sft-base: ``sft.train``'s step with none of the options below (fp32, adapters on all layers,
  no shared prefix): length-grouped batches, logits only where the loss is taken;
- sft+share: sft-base plus one pass over the batch's shared prompt prefix;
- sft+share+upper: plus adapters on the upper half of the layers only (no backward below them);
- sft+bf16: sft-base in bf16 (fp32 adapters);
- sft+share+upper+bf16: all three;
- sft: ``ablbench sft``'s defaults on this machine (``SftOptions``: dtype auto, layers, prefix).

Prints tokens/s (input tokens, padding excluded) per mode and repeat, the best of the repeats,
the speed-up of each sft mode over each naive one, the threads, and the load average (the
machine may be shared: rerun on a quiet one for real figures).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the CLI: set before torch loads OpenMP

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


def _batched(model, seqs, params, batch_tokens, share: bool) -> tuple[int, float]:
    import torch

    from sft.train import batch_loss, collate, make_batches

    opt = torch.optim.AdamW(params, lr=1e-5)
    tokens, secs = 0, 0.0
    batches = make_batches(seqs, batch_tokens, 0, 1)
    for k, idx in enumerate([batches[0], *batches]):
        t0 = time.perf_counter()
        batch = collate(seqs, idx, 0, torch.device("cpu"))
        loss, n = batch_loss(model, batch, share)
        (loss / n).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if k:
            secs += time.perf_counter() - t0
            tokens += int(batch["attention_mask"].sum())
    return tokens, secs


def _mode(mode: str) -> dict:
    """(dtype, adapters' layer share, shared prefix) of an sft mode."""
    import torch

    from sft.run import SftOptions
    from sft.train import pick_device

    if mode == "sft":
        d = SftOptions()
        return {"dtype": pick_device("cpu", d.dtype)[1], "lora_layers": d.lora_layers, "share": d.share_prefix}
    base = {"dtype": torch.float32, "lora_layers": 1.0, "share": False}
    opts = {"sft-base": {}, "sft+share": {"share": True}, "sft+share+upper": {"share": True, "lora_layers": 0.5},
            "sft+bf16": {"dtype": torch.bfloat16},
            "sft+share+upper+bf16": {"share": True, "lora_layers": 0.5, "dtype": torch.bfloat16}}
    if mode not in opts:
        raise SystemExit(f"unknown mode {mode!r}")
    return base | opts[mode]


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
    ap.add_argument("--modes", default="full-naive,lora-naive,sft-base,sft+share,sft+share+upper,sft+bf16,sft")
    ap.add_argument("--repeat", type=int, default=1, help="runs of each mode (the best counts)")
    a = ap.parse_args()
    model_dir = a.model
    if model_dir is None:
        from harness.embedded_model import materialize

        model_dir = materialize()
    threads = setup_threads(a.threads)
    tok = AutoTokenizer.from_pretrained(model_dir)
    seqs, _ = encode_all(tok, _samples(a.seqs), 4096)
    lens = sorted(len(s.input_ids) for s in seqs)
    print(f"model {model_dir.name}, {threads} threads, --batch-tokens {a.batch_tokens}; {len(seqs)} sequences of "
          f"{lens[0]}-{lens[-1]} tokens ({sum(s.trained_tokens for s in seqs) / sum(lens):.0%} with loss); "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '-')}", flush=True)
    results: dict[str, float] = {}
    modes = a.modes.split(",")
    for _rep in range(a.repeat):
        for mode in modes:
            torch.manual_seed(0)
            m = {"dtype": torch.float32, "lora_layers": 1.0, "share": False} if "naive" in mode else _mode(mode)
            model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=m["dtype"])
            if mode == "full-naive":
                params = list(model.parameters())
            else:
                model = add_lora(model, LoraSettings(rank=16, alpha=32, lora_layers=m["lora_layers"]))
                params = [p for p in model.parameters() if p.requires_grad]
            model.train()
            load0 = os.getloadavg()[0]
            if "naive" in mode:
                n, secs = _naive(model, seqs, params, 0)
            else:
                n, secs = _batched(model, seqs, params, a.batch_tokens, m["share"])
            results[mode] = max(results.get(mode, 0.0), n / secs)
            what = "" if "naive" in mode else (f" [{str(m['dtype']).removeprefix('torch.')}, adapters on "
                                               f"{m['lora_layers']:.0%} of layers, shared prefix {m['share']}]")
            print(f"{mode:>16}: {n / secs:7.1f} tokens/s ({n} tokens in {secs:.1f} s; load average "
                  f"{load0:.1f} -> {os.getloadavg()[0]:.1f}){what}", flush=True)
            del model
    print(f"best of {a.repeat}: " + ", ".join(f"{k} {v:.1f}" for k, v in results.items()))
    for mode in [m for m in modes if "naive" not in m]:
        for ref in ("full-naive", "lora-naive"):
            if ref in results:
                print(f"{mode} vs {ref}: {results[mode] / results[ref]:.2f}x")
    print(f"load average now: {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs", flush=True)


if __name__ == "__main__":
    main()
