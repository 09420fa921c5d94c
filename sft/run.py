"""One ``ablbench sft`` run: data -> split -> validation loss -> LoRA training -> merged outputs -> sft.json.

Rules, in order:
1. ``out`` holds ``sft.json``, ``adapter/``, ``merged/`` (HF), ``merged.gguf`` with ``gguf``, and
   ``checkpoints/epoch-N/``. Its ``fingerprint.json`` (data hashes + settings but the epoch count
   and outputs) must match a rerun's: a different training into the same folder is an error, the
   same one resumes after its last finished epoch up to ``epochs`` (or does nothing when sft.json
   says it is complete with those epochs and outputs).
2. The validation loss is measured on the held-out tasks' trajectories before training (the base
   model with a zero-initialized adapter, i.e. the base) and after. On the CPU both are measured
   in fp32 and the merge is done and saved in fp32, whatever dtype the training step used; on a
   GPU all of it is in the training dtype.
3. The merged outputs name every task the data came from (:mod:`sft.provenance`), so an
   evaluation of them, or of an edit of them, can refuse those tasks.
4. sft.json is written atomically last; it records the data files and hashes, the split, the
   settings, the loss curve, the validation loss before and after, the seed, versions, timings.
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from importlib import metadata
from pathlib import Path

from ablbench.atomic import write_json_atomic
from sft.errors import SftError

SFT_FILE = "sft.json"


@dataclass(frozen=True, kw_only=True)
class SftOptions:
    """The options of ``ablbench sft`` (each field's docstring is its flag's help)."""

    model: Path | None = None  # None: the bundled SmolLM2 (the caller resolves it)
    """HF model folder (default: the bundled SmolLM2)."""
    traces: tuple[Path, ...] = ()
    """ablbench run folder, harbor job or trial folder (repeat for more); passed trials only unless --include-failed."""
    replay: bool = False
    """First replay the reference solutions of --tasks through the agent loop in containers (into OUT/replays, resumed on a rerun); the passed replays are training data."""
    tasks: Path | None = None  # None with --replay: the bundled training tasks (disjoint from the evaluation set)
    """With --replay: the task folder to replay (default: the bundled training tasks, tasks/train)."""
    parallel: int = 2
    """With --replay: replays running at once."""
    out: Path = Path("results/sft")
    """Output folder (adapter, merged, sft.json)."""
    gguf: Path | None = None
    """The base model's GGUF: also write merged.gguf."""
    include_failed: bool = False
    """Train on failed trials too."""
    epochs: int = 3
    """Passes over the training trajectories."""
    lr: float = 1e-3
    """AdamW learning rate (LoRA)."""
    rank: int = 16
    """LoRA rank."""
    alpha: int = 32
    """LoRA alpha."""
    dropout: float = 0.0
    """LoRA dropout."""
    target_modules: str = "all-linear"
    """PEFT target_modules."""
    batch_tokens: int = 4096
    """Padded tokens per batch (length-grouped)."""
    lora_layers: float = 0.5
    """Share of the decoder layers, the top ones, that get adapters (1: all)."""
    share_prefix: bool = True
    """Run a batch's common prompt prefix once (exact; off: every row whole)."""
    max_len: int = 2048
    """Longest sequence in tokens (longer: cut on the left)."""
    val_fraction: float = 0.2
    """Share of TASKS held out for validation."""
    seed: int = 0
    """Seed of the split, the LoRA init and the batch order."""
    device: str = "auto"
    """auto (GPU when present) | cpu | cuda."""
    dtype: str = "auto"
    """auto (bf16 on a GPU or CPU that has it, else float32)."""
    threads: int = 0
    """Torch threads (0: ABLBENCH_TORCH_THREADS, else the idle CPUs)."""
    quiet: bool = False
    """No progress bar."""


def training_fingerprint(o: SftOptions, files: list[dict]) -> tuple[dict, str]:
    """(the settings that define the training, their hash with the data's): rule 1. The epoch count
    and the outputs asked for are not part of it: more epochs extend a training, fewer pick an
    earlier checkpoint, and --gguf only adds an output."""
    skip = {"out", "quiet", "threads", "traces", "replay", "tasks", "parallel", "epochs", "gguf", "share_prefix"}
    settings = {k: v for k, v in asdict(o).items() if k not in skip}
    blob = json.dumps({"settings": settings, "data": sorted(f["sha256"] for f in files)}, sort_keys=True, default=str)
    return settings, hashlib.sha256(blob.encode()).hexdigest()


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in ("ablbench", "torch", "transformers", "peft", "gguf"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "missing"
    return out


def _progress(quiet: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("loss {task.fields[loss]}"), TextColumn("{task.fields[tps]} tok/s"),
                    TimeRemainingColumn(), disable=quiet, transient=False)


def run_sft(o: SftOptions, *, history_reply: Callable[[str], str] | None = None,
            log: Callable[[str], None] = print, replay: dict | None = None) -> dict:
    """Train, merge and describe (module rules); returns the sft.json content.

    ``replay`` describes the replay run that made ``o.traces``' last entry (``--replay``), for sft.json."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from sft import data, tokens, train
    from sft.merge import merge_gguf, merge_hf
    from sft.provenance import SIDE_FILE, write_side_file

    t_all = time.monotonic()
    if o.model is None or not (Path(o.model) / "config.json").is_file():
        raise SftError(f"--model {o.model}: not an HF model folder (no config.json); pass one "
                       "(`ablbench model embedded` prints the bundled model's)")
    if not o.traces:
        raise SftError("no training data: pass --traces RUN (ablbench run folders or harbor jobs) or --replay "
                       "(the reference solutions of --tasks, default the bundled training tasks)")
    if o.epochs < 1 or o.rank < 1 or o.lr <= 0 or o.batch_tokens < 16 or o.max_len < 16:
        raise SftError("--epochs, --rank, --lr must be positive and --batch-tokens, --max-len at least 16")
    if not 0 < o.lora_layers <= 1:
        raise SftError(f"--lora-layers {o.lora_layers}: give the share of layers (the top ones) that get "
                       "adapters, above 0 and at most 1")
    if o.gguf is not None and not Path(o.gguf).is_file():
        raise SftError(f"--gguf {o.gguf}: no such file; pass the base model's .gguf")
    model_dir, out = Path(o.model), Path(o.out)
    timings: dict[str, float] = {}

    t = time.monotonic()
    trials, dropped = data.select_trials(o.traces, include_failed=o.include_failed)
    if not trials:
        raise SftError(f"no passed trial in {', '.join(map(str, o.traces))} ({dropped} failed ones left out); "
                       "train on passed trajectories or pass --include-failed")
    files = data.describe(trials)
    device, dtype = train.pick_device(o.device, o.dtype)
    settings, fingerprint = training_fingerprint(
        replace(o, device=device.type, dtype=str(dtype).removeprefix("torch.")), files)
    out.mkdir(parents=True, exist_ok=True)
    fp_file = out / "fingerprint.json"
    if fp_file.is_file():
        old = json.loads(fp_file.read_text()).get("fingerprint")
        if old != fingerprint:
            raise SftError(f"{out} holds another training (other data or settings); choose another --out or delete it")
        done = json.loads((out / SFT_FILE).read_text()) if (out / SFT_FILE).is_file() else {}
        if (done.get("hyperparameters", {}).get("epochs") == o.epochs and (out / "merged").is_dir()
                and (o.gguf is None or (out / "merged.gguf").is_file())):
            if not (out / "merged" / SIDE_FILE).is_file():  # an output from before the record existed
                write_side_file(out / "merged", fingerprint,
                                [*done["split"]["train_tasks"], *done["split"]["validation_tasks"]])
            log(f"up to date: {out / SFT_FILE}")
            return done
    else:
        write_json_atomic(fp_file, {"fingerprint": fingerprint, "settings": settings})

    if o.quiet:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)  # peft's
    threads = train.setup_threads(o.threads)
    tok = AutoTokenizer.from_pretrained(model_dir)
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    samples = [s for tr in trials for s in data.samples_from_trial(tr, history_reply or (lambda r: r.strip()))]
    train_tasks, val_tasks = data.split_tasks([s.task for s in samples], o.val_fraction, o.seed)
    tr_seqs, drop_tr = tokens.encode_all(tok, [s for s in samples if s.task in train_tasks], o.max_len)
    va_seqs, drop_va = tokens.encode_all(tok, [s for s in samples if s.task in val_tasks], o.max_len)
    timings["data_s"] = time.monotonic() - t
    log(f"data: {len(trials)} trajectories ({dropped} not passed, left out), {len(tr_seqs)} training / "
        f"{len(va_seqs)} validation sequences, {sum(len(s.input_ids) for s in tr_seqs)} training tokens "
        f"({sum(s.trained_tokens for s in tr_seqs)} with loss); {device} {str(dtype).removeprefix('torch.')}, "
        f"{threads} threads")

    t = time.monotonic()
    eval_dtype = torch.float32 if device.type == "cpu" else dtype  # rule 2
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=eval_dtype).to(device)
    s = train.LoraSettings(epochs=o.epochs, lr=o.lr, rank=o.rank, alpha=o.alpha, dropout=o.dropout,
                           target_modules=o.target_modules, batch_tokens=o.batch_tokens, seed=o.seed,
                           lora_layers=o.lora_layers, share_prefix=o.share_prefix)
    model = train.add_lora(model, s)
    val_before_file = out / "val_before.json"
    if val_before_file.is_file():
        val_before = json.loads(val_before_file.read_text())["loss"]
    else:
        val_before = train.evaluate(model, va_seqs, pad_id, device, o.batch_tokens)
        write_json_atomic(val_before_file, {"loss": val_before})
    timings["val_before_s"] = time.monotonic() - t
    base_weights = train.cast_frozen(model, dtype)

    t = time.monotonic()
    with _progress(o.quiet) as bar:
        task = bar.add_task("sft", total=None, loss="-", tps="-")

        def on_epoch_start(epoch: int, n: int) -> None:
            bar.update(task, description=f"sft epoch {epoch}/{o.epochs}", total=n, completed=0)

        def on_step(st: train.TrainState, loss: float, n_tok: int) -> None:
            bar.update(task, advance=1, loss=f"{loss:.4f}", tps=f"{st.tokens / max(st.seconds, 1e-9):.0f}")

        state = train.train(model, tr_seqs, s, pad_id=pad_id, device=device, ckpt_dir=out / "checkpoints",
                            on_step=on_step, on_epoch_start=on_epoch_start)
    timings["train_s"] = time.monotonic() - t

    t = time.monotonic()
    train.restore_frozen(model, base_weights)
    val_after = train.evaluate(model, va_seqs, pad_id, device, o.batch_tokens)
    timings["val_after_s"] = time.monotonic() - t
    t = time.monotonic()
    model.save_pretrained(out / "adapter")
    merge_hf(model, tok, out / "merged", eval_dtype)
    seen = sorted({*train_tasks, *val_tasks})
    write_side_file(out / "merged", fingerprint, seen)
    gguf_report = None
    if o.gguf is not None:
        (out / "merged.gguf").unlink(missing_ok=True)
        gguf_report = merge_gguf(Path(o.gguf), model_dir, out / "merged", out / "merged.gguf",
                                 provenance={"fingerprint": fingerprint, "val_loss_after": val_after, "tasks": seen})
    timings["merge_s"] = time.monotonic() - t
    timings["total_s"] = time.monotonic() - t_all
    report = {
        "tool": "ablbench sft", "format_version": 1,
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "fingerprint": fingerprint,
        "model": str(model_dir.resolve()),
        "data": {"sources": [str(p) for p in o.traces], "files": files, "not_passed_left_out": dropped,
                 "include_failed": o.include_failed, "replay": replay,
                 "sequences": {"train": len(tr_seqs), "validation": len(va_seqs),
                               "dropped_no_trained_token": drop_tr + drop_va},
                 "tokens": {"train": sum(len(x.input_ids) for x in tr_seqs),
                            "train_with_loss": sum(x.trained_tokens for x in tr_seqs),
                            "validation": sum(len(x.input_ids) for x in va_seqs)}},
        "split": {"by": "task", "val_fraction": o.val_fraction, "train_tasks": train_tasks,
                  "validation_tasks": val_tasks},
        "hyperparameters": {**asdict(s), "max_len": o.max_len, "device": str(device),
                            "dtype": str(dtype).removeprefix("torch."), "threads": threads,
                            "validation_and_merge_dtype": str(eval_dtype).removeprefix("torch."),
                            "optimizer": "AdamW", "schedule": "linear warm-up over 10 % of an epoch, then constant",
                            "grad_clip": 1.0},
        "seed": o.seed,
        "loss_curve": state.curve, "epoch_losses": state.epoch_losses,
        "validation_loss": {"before": val_before, "after": val_after},
        "throughput_tokens_per_s": round(state.tokens / max(state.seconds, 1e-9), 1),
        "resumed_from_epoch": state.resumed_from,
        "outputs": {"adapter": str((out / "adapter").resolve()), "merged": str((out / "merged").resolve()),
                    "gguf": gguf_report},
        "versions": _versions(),
        "timings": {k: round(v, 2) for k, v in timings.items()},
    }
    write_json_atomic(out / SFT_FILE, report)
    return report
