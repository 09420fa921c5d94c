"""The LoRA training loop: length-grouped batches, a shared prompt prefix run once, loss on trained tokens only.

Rules, in order:
1. Device: ``auto`` is CUDA when there is one, else the CPU; dtype ``auto`` is bf16 on a GPU that
   has it and on a CPU with native bf16 (avx512_bf16 or AMX), else fp32; the base weights take
   that dtype, the adapters stay fp32 (PEFT's default). Torch uses ``threads``, else
   ``ABLBENCH_TORCH_THREADS``, else the CPUs this process may run on that the load average leaves
   idle (at least one); one inter-op thread; tokenizers do not fork their own pool. The CLI asks
   OpenMP to sleep, not spin, while waiting.
2. Batches: sequences sorted by length (ties in seeded order) are cut into batches whose padded
   size (longest x count) stays within ``batch_tokens``; each epoch shuffles the batch order with
   ``seed + epoch``. Padding is on the right, masked out of attention and loss.
3. Loss: the decoder's hidden states are projected to logits only at positions whose next token
   is trained (most positions are prompt and observation), then mean cross-entropy per batch.
   The validation loss is the token-weighted mean over all validation tokens.
4. Shared prefix (``share_prefix``): every agent sample starts with the same system prompt. The
   tokens all rows of a batch share, up to the first position whose next token carries loss,
   run once (one row, keys and values kept with their graph), and the rows' remainders attend to
   them; loss and gradients are those of the full batch (within float rounding). Only models whose
   layers all use plain full attention share; others run the whole batch.
5. Adapters: ``lora_layers`` below 1 puts them on that share of the decoder layers, the top ones
   (at least one), with ``target_modules`` resolved to module names; the frozen layers below need
   no backward pass, which autograd skips by itself (nothing below them requires a gradient).
6. Schedule: AdamW, linear warm-up over the first 10 % of the first epoch's steps (at least
   one), then a constant learning rate, so that epoch N is the same whatever ``epochs`` says and
   a training can be extended by more epochs; gradients clipped at norm 1.
7. After each epoch, ``checkpoints/epoch-N/`` gets the adapter, the optimizer and scheduler
   state, the RNG states and the loss curve so far, staged then renamed; a new run with the same
   fingerprint resumes after the last complete epoch up to ``epochs``.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import math
import os
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from sft.errors import SftError
from sft.tokens import IGNORE, Encoded


@dataclass(frozen=True)
class LoraSettings:
    """The hyperparameters of one training (all of them go to sft.json)."""

    epochs: int = 3
    lr: float = 1e-3
    rank: int = 16
    alpha: int = 32
    dropout: float = 0.0
    target_modules: str = "all-linear"
    batch_tokens: int = 4096
    weight_decay: float = 0.0
    seed: int = 0
    lora_layers: float = 1.0  # share of the decoder layers, the top ones, that get adapters
    share_prefix: bool = True  # one pass over the rows' common prompt prefix per batch


@dataclass
class TrainState:
    """What the loop reports back (and checkpoints)."""

    epoch: int = 0
    step: int = 0
    curve: list[dict] = field(default_factory=list)
    epoch_losses: list[float] = field(default_factory=list)
    tokens: int = 0
    seconds: float = 0.0
    resumed_from: int | None = None


def default_threads(sample_s: float = 1.0) -> int:
    """``ABLBENCH_TORCH_THREADS``, else the usable CPUs left idle now (at least 1).

    "Now" is a ``sample_s`` sample of CPU use, not the load average, which still holds the last
    minute's work (a demo's replay step just before). On an oversubscribed CPU, OpenMP threads
    wait for each other at every barrier: one thread is then many times faster than two
    (README, "Measured here"), so a CPU counts as idle only when at least 80 % of it is."""
    env = os.environ.get("ABLBENCH_TORCH_THREADS", "")
    if env.strip().isdigit() and int(env) > 0:
        return int(env)
    import psutil

    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    busy = psutil.cpu_percent(interval=sample_s, percpu=True)
    idle = sum(100.0 - busy[c] for c in cpus if c < len(busy)) / 100.0
    return max(1, min(len(cpus), int(idle + 0.2)))


def setup_threads(threads: int = 0) -> int:
    """Rule 1's thread settings; returns the thread count used."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    torch.set_num_threads(max(1, threads or default_threads()))
    with contextlib.suppress(RuntimeError):  # already set once in this process
        torch.set_num_interop_threads(1)
    return torch.get_num_threads()


def cpu_has_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (avx512_bf16 or AMX), per /proc/cpuinfo (Linux)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(f in flags.split() for f in ("avx512_bf16", "amx_bf16"))


def pick_device(device: str = "auto", dtype: str = "auto") -> tuple[torch.device, torch.dtype]:
    """(device, dtype) per rule 1."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SftError("--device cuda but torch sees no GPU; use --device cpu")
    names = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
             "float16": torch.float16, "fp16": torch.float16}
    if dtype == "auto":
        bf16 = torch.cuda.is_bf16_supported() if dev.type == "cuda" else cpu_has_bf16()
        return dev, torch.bfloat16 if bf16 else torch.float32
    if dtype not in names:
        raise SftError(f"--dtype {dtype!r} is unknown: use auto, float32, bfloat16 or float16")
    return dev, names[dtype]


def make_batches(seqs: list[Encoded], batch_tokens: int, seed: int, epoch: int) -> list[list[int]]:
    """Rule 2: index batches of ``seqs``, length-grouped under a padded-token budget."""
    rng = random.Random(seed)
    order = list(range(len(seqs)))
    rng.shuffle(order)
    order.sort(key=lambda i: len(seqs[i].input_ids))
    batches: list[list[int]] = []
    cur: list[int] = []
    for i in order:
        longest = len(seqs[i].input_ids)  # sorted: the newest is the longest
        if cur and longest * (len(cur) + 1) > batch_tokens:
            batches.append(cur)
            cur = []
        cur.append(i)
    if cur:
        batches.append(cur)
    random.Random(seed + epoch).shuffle(batches)
    return batches


def collate(seqs: list[Encoded], idx: list[int], pad_id: int, device: torch.device) -> dict[str, torch.Tensor]:
    """Right-padded ``input_ids``, ``attention_mask`` and ``labels`` of one batch."""
    n = max(len(seqs[i].input_ids) for i in idx)
    ids = torch.full((len(idx), n), pad_id, dtype=torch.long)
    labels = torch.full((len(idx), n), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(idx), n), dtype=torch.long)
    for row, i in enumerate(idx):
        s = seqs[i]
        ids[row, : len(s.input_ids)] = torch.tensor(s.input_ids)
        labels[row, : len(s.labels)] = torch.tensor(s.labels)
        mask[row, : len(s.input_ids)] = 1
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device), "labels": labels.to(device)}


def _parts(model) -> tuple[Any, Any, float | None]:
    """(decoder, lm_head, final logit softcap) of a causal LM, PEFT-wrapped or not."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    decoder = getattr(base, base.base_model_prefix)
    cap = getattr(base.config, "final_logit_softcapping", None)
    return decoder, base.get_output_embeddings(), cap


#: a common prefix shorter than this is not worth a separate pass
MIN_SHARED = 16


def shared_prefix(batch: dict[str, torch.Tensor]) -> int:
    """Rule 4: the tokens every row starts with, up to the first position whose next token carries loss
    in any row and short of every row's end (0 for a batch of one row)."""
    ids, labels, mask = batch["input_ids"], batch["labels"], batch["attention_mask"]
    if ids.shape[0] < 2:
        return 0
    differs = (ids != ids[:1]).any(0).nonzero()
    trained = (labels != IGNORE).any(0).nonzero()
    p = min(int(mask.sum(1).min()) - 1, int(differs[0]) if len(differs) else ids.shape[1],
            int(trained[0]) - 1 if len(trained) else ids.shape[1])
    return max(p, 0)


def _plain_cache(decoder):
    """A fresh DynamicCache of full-attention layers only, or None when the model has other kinds
    (sliding windows, linear attention): those are not shared."""
    from transformers.cache_utils import DynamicCache, DynamicLayer

    cache = DynamicCache(config=decoder.config)
    return cache if cache.layers and all(type(x) is DynamicLayer for x in cache.layers) else None


def _hidden(decoder, batch: dict[str, torch.Tensor], share: bool) -> tuple[torch.Tensor, int]:
    """(the last hidden states from position ``p`` on, ``p``): rule 4's shared prefix runs once."""
    ids, mask = batch["input_ids"], batch["attention_mask"]
    p = shared_prefix(batch) if share else 0
    cache = _plain_cache(decoder) if p >= MIN_SHARED else None
    if cache is None:
        return decoder(input_ids=ids, attention_mask=mask).last_hidden_state, 0
    # transformers 5.x renamed past_key_values to cache (the old name warns, then goes in 5.40)
    kw = "cache" if "cache" in inspect.signature(decoder.forward).parameters else "past_key_values"
    decoder(input_ids=ids[:1, :p], use_cache=True, **{kw: cache})
    cache.batch_repeat_interleave(ids.shape[0])
    out = decoder(input_ids=ids[:, p:], attention_mask=mask, use_cache=True, **{kw: cache})
    return out.last_hidden_state, p


def batch_loss(model, batch: dict[str, torch.Tensor], share_prefix: bool = True) -> tuple[torch.Tensor, int]:
    """(summed cross-entropy, trained tokens) of one batch (rules 3-4)."""
    decoder, head, cap = _parts(model)
    hidden, p = _hidden(decoder, batch, share_prefix)
    target = batch["labels"][:, p + 1:]
    sel = target != IGNORE
    logits = head(hidden[:, :-1][sel]).float()
    if cap:
        logits = torch.tanh(logits / cap) * cap
    n = int(sel.sum())
    return torch.nn.functional.cross_entropy(logits, target[sel], reduction="sum"), n


@torch.no_grad()
def evaluate(model, seqs: list[Encoded], pad_id: int, device: torch.device, batch_tokens: int,
             share_prefix: bool = True) -> float | None:
    """Token-weighted mean loss over ``seqs`` (None when there are none)."""
    if not seqs:
        return None
    was = model.training
    model.eval()
    total, count = 0.0, 0
    for idx in make_batches(seqs, batch_tokens, 0, 0):
        loss, n = batch_loss(model, collate(seqs, idx, pad_id, device), share_prefix)
        total += float(loss)
        count += n
    model.train(was)
    return total / max(count, 1)


def _rng_state() -> dict:
    state = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def last_checkpoint(ckpt_dir: Path, up_to: int | None = None) -> Path | None:
    """The newest complete ``epoch-N`` folder (N <= ``up_to``), or None."""
    done = [p for p in ckpt_dir.glob("epoch-*") if (p / "state.json").is_file()
            and (up_to is None or int(p.name.split("-")[1]) <= up_to)]
    return max(done, key=lambda p: int(p.name.split("-")[1]), default=None)


def _save(ckpt_dir: Path, model, opt, sched, state: TrainState) -> None:
    final = ckpt_dir / f"epoch-{state.epoch}"
    stage = ckpt_dir / f".epoch-{state.epoch}.partial-{os.getpid()}"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    model.save_pretrained(stage / "adapter")
    torch.save({"optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "rng": _rng_state()},
               stage / "trainer.pt")
    (stage / "state.json").write_text(json.dumps(state.__dict__, indent=1))
    shutil.rmtree(final, ignore_errors=True)
    os.replace(stage, final)


def _load(ckpt: Path, model, opt, sched) -> TrainState:
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    set_peft_model_state_dict(model, load_file(str(ckpt / "adapter" / "adapter_model.safetensors")))
    blob = torch.load(ckpt / "trainer.pt", weights_only=False)
    opt.load_state_dict(blob["optimizer"])
    sched.load_state_dict(blob["scheduler"])
    _set_rng_state(blob["rng"])
    state = TrainState(**json.loads((ckpt / "state.json").read_text()))
    state.resumed_from = state.epoch
    return state


def _schedule(per_epoch: int) -> Callable[[int], float]:
    warm = max(1, round(0.1 * per_epoch))

    def f(step: int) -> float:
        return min(1.0, (step + 1) / warm)

    return f


def lora_target(model, s: LoraSettings) -> dict[str, Any]:
    """Rule 5: PEFT's ``target_modules`` and ``layers_to_transform`` for ``s``."""
    if s.lora_layers >= 1:
        return {"target_modules": s.target_modules}
    if not 0 < s.lora_layers < 1:
        raise SftError(f"--lora-layers {s.lora_layers}: give the share of layers that get adapters, in (0, 1]")
    n = model.config.get_text_config().num_hidden_layers
    k = max(1, round(n * s.lora_layers))
    if s.target_modules == "all-linear":
        decoder, _, _ = _parts(model)
        names = {name.rsplit(".", 1)[-1] for name, m in decoder.named_modules()
                 if isinstance(m, torch.nn.Linear) and ".layers." in f".{name}"}
    elif all(x.strip().isidentifier() for x in s.target_modules.split(",")):
        names = {x.strip() for x in s.target_modules.split(",")}
    else:
        raise SftError(f"--target-modules {s.target_modules!r} is a pattern, which PEFT cannot combine with "
                       "--lora-layers below 1: give all-linear or module names (q_proj,v_proj)")
    return {"target_modules": sorted(names), "layers_to_transform": list(range(n - k, n)), "layers_pattern": "layers"}


def cast_frozen(model, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Cast the frozen (base) weights to ``dtype`` in place, the trained adapters keep theirs; returns
    the weights as they were, for :func:`restore_frozen` (a round trip through bf16 would round them)."""
    saved = {}
    for name, p in model.named_parameters():
        if not p.requires_grad and p.is_floating_point() and p.dtype != dtype:
            saved[name] = p.data
            p.data = p.data.to(dtype)
    return saved


def restore_frozen(model, saved: dict[str, torch.Tensor]) -> None:
    """Put back the frozen weights :func:`cast_frozen` returned."""
    for name, p in model.named_parameters():
        if name in saved:
            p.data = saved[name]


def add_lora(model, s: LoraSettings):
    """``model`` wrapped with fresh LoRA adapters (seeded) on rule 5's layers."""
    from peft import LoraConfig, get_peft_model

    target = lora_target(model, s)
    torch.manual_seed(s.seed)
    cfg = LoraConfig(r=s.rank, lora_alpha=s.alpha, lora_dropout=s.dropout, task_type="CAUSAL_LM", **target)
    return get_peft_model(model, cfg)


def train(model, train_seqs: list[Encoded], s: LoraSettings, *, pad_id: int, device: torch.device,
          ckpt_dir: Path, on_step: Callable[[TrainState, float, int], None] | None = None,
          on_epoch_start: Callable[[int, int], None] | None = None) -> TrainState:
    """Train the PEFT ``model`` for ``s.epochs`` (resuming from ``ckpt_dir``); returns the state."""
    if not train_seqs:
        raise SftError("no training sequence: every trial was held out or dropped; add trials or lower --val-fraction")
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=s.lr, weight_decay=s.weight_decay)
    per_epoch = len(make_batches(train_seqs, s.batch_tokens, s.seed, 1))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _schedule(per_epoch))
    random.seed(s.seed)
    torch.manual_seed(s.seed)
    state = TrainState()
    ckpt = last_checkpoint(ckpt_dir, s.epochs)
    if ckpt is not None:
        state = _load(ckpt, model, opt, sched)
    model.train()
    for epoch in range(state.epoch + 1, s.epochs + 1):
        batches = make_batches(train_seqs, s.batch_tokens, s.seed, epoch)
        if on_epoch_start:
            on_epoch_start(epoch, len(batches))
        ep_loss, ep_tokens = 0.0, 0
        for idx in batches:
            t0 = time.perf_counter()
            batch = collate(train_seqs, idx, pad_id, device)
            loss_sum, n = batch_loss(model, batch, s.share_prefix)
            (loss_sum / max(n, 1)).backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            tokens = int(batch["attention_mask"].sum())
            state.step += 1
            state.tokens += tokens
            state.seconds += time.perf_counter() - t0
            loss = float(loss_sum.detach()) / max(n, 1)
            ep_loss += float(loss_sum.detach())
            ep_tokens += n
            state.curve.append({"epoch": epoch, "step": state.step, "loss": round(loss, 5), "tokens": tokens,
                                "lr": sched.get_last_lr()[0]})
            if on_step:
                on_step(state, loss, tokens)
        if not math.isfinite(ep_loss):
            raise SftError(f"the training loss became {ep_loss} in epoch {epoch}; lower --lr")
        state.epoch = epoch
        state.epoch_losses.append(round(ep_loss / max(ep_tokens, 1), 5))
        _save(ckpt_dir, model, opt, sched, state)
    return state
